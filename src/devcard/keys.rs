//! Deterministic RSA-2048 keys for the test hierarchy, cached on disk because key generation is slow.
//!
//! A key is a pure function of (seed, label), so a cache shared between hierarchies and test processes is
//! safe; files are written to a temporary name and renamed, so concurrent writers never expose half a file.

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::RsaPrivateKey;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Loads `dir/<label>.pem`, else copies it from `cache`, else generates it and writes both.
pub fn key(dir: &Path, cache: Option<&Path>, seed: u64, label: &str) -> Result<RsaPrivateKey> {
    let local = dir.join(format!("{label}.pem"));
    if let Ok(pem) = std::fs::read_to_string(&local) {
        return RsaPrivateKey::from_pkcs8_pem(&pem)
            .with_context(|| format!("{}: not a PKCS#8 key", local.display()));
    }
    let cached = cache.map(|c| c.join(format!("{seed}-{label}.pem")));
    let key = match cached
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        Some(pem) => {
            RsaPrivateKey::from_pkcs8_pem(&pem).context("key cache entry is not a PKCS#8 key")?
        }
        None => {
            let mut h = Sha256::new();
            h.update(b"jpki-face devcard key v1");
            h.update(seed.to_be_bytes());
            h.update(label.as_bytes());
            let mut rng = StdRng::from_seed(h.finalize().into());
            let key = RsaPrivateKey::new(&mut rng, 2048).context("RSA key generation")?;
            if let Some(path) = &cached {
                write_pem(path, &key)?;
            }
            key
        }
    };
    write_pem(&local, &key)?;
    Ok(key)
}

pub fn write_pem(path: &Path, key: &RsaPrivateKey) -> Result<()> {
    let pem = key.to_pkcs8_pem(LineEnding::LF)?;
    write_atomic(path, pem.as_bytes())
}

/// Writes via a temporary file in the same directory, then renames. The temporary name is unique per
/// call (process id and a counter), so threads of one process writing the same file do not share it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let parent = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&parent).with_context(|| format!("create {}", parent.display()))?;
    let tmp = parent.join(format!(
        ".{}.{}-{n}.tmp",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}
