//! The periodic-job loop shared by the background jobs of a replica (webhook deliveries, scheduled
//! status checks, retention): each keeps its own tick function; the timing, the shutdown and the
//! logging of a failed tick are here, once.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// Runs `tick` every `period` until `shutdown` turns true (or its sender is dropped), then returns.
///
/// The first tick runs at once; a tick that overruns delays the next one (no burst of missed
/// ticks). A tick in progress is never cancelled: shutdown is looked at between ticks, so the caller
/// drains whatever the tick started after this returns. A failed tick is logged as a warning,
/// "`{name}` failed", and the loop goes on.
pub async fn every<F, Fut, T, E>(
    name: &str,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Display,
{
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = interval.tick() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        if let Err(e) = tick().await {
            tracing::warn!(error = %e, "{name} failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn ticks_until_shutdown_and_survives_failures() {
        let (tx, rx) = watch::channel(false);
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = ticks.clone();
        let job = tokio::spawn(every("test job", Duration::from_millis(5), rx, move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n % 2 == 0 {
                    Err::<(), _>("every other tick fails")
                } else {
                    Ok(())
                }
            }
        }));
        // Failed ticks do not end the loop.
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while ticks.load(Ordering::SeqCst) < 4 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        waited.await.expect("four ticks");
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), job)
            .await
            .expect("stops at shutdown")
            .unwrap();
        let after = ticks.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            after,
            "no tick after shutdown"
        );
    }

    #[tokio::test]
    async fn a_dropped_sender_stops_the_loop() {
        let (tx, rx) = watch::channel(false);
        let job = tokio::spawn(every("test job", Duration::from_secs(3600), rx, || async {
            Ok::<(), String>(())
        }));
        drop(tx);
        tokio::time::timeout(Duration::from_secs(10), job)
            .await
            .expect("stops")
            .unwrap();
    }
}
