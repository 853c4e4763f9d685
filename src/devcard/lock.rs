//! A directory lock shared by the threads and processes that use one test hierarchy.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A lock shared by threads and processes: the directory `DIR/.lock` exists while it is held.
///
/// `create_dir` is atomic, so exactly one holder wins; a lock older than two minutes is taken to be left over
/// from a crashed process and is broken.
pub(super) struct DirLock {
    path: PathBuf,
}

impl DirLock {
    pub(super) fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(".lock");
        let start = std::time::Instant::now();
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > std::time::Duration::from_secs(120));
                    if stale {
                        let _ = std::fs::remove_dir(&path);
                        continue;
                    }
                    if start.elapsed() > std::time::Duration::from_secs(180) {
                        bail!("{} is held by another process", path.display());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}
