//! Atomic file replacement: write a temporary file beside the target, flush it to disk, then
//! rename it over the target. A rename within one directory is atomic, so a reader (or a
//! restart after a crash) sees either the old complete file or the new complete one, never a
//! half-written checkpoint in place of a good one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tapegrad_autograd::{Error, Result};

/// Distinguishes temporary files of concurrent saves within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_err(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        msg: format!("{what}: {e}"),
    }
}

/// The temporary name: hidden, in the target's directory (a rename across file systems would
/// not be atomic), unique to this process and call.
fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| Error::Io {
        path: path.display().to_string(),
        msg: "the path names no file".into(),
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".{}.{}-{n}.tmp", name.to_string_lossy(), std::process::id());
    Ok(path.with_file_name(tmp))
}

/// Writes `bytes` to `path` atomically, replacing any existing file. On error the temporary
/// file is removed and `path` is untouched.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path)?;
    let result = write_then_rename(&tmp, path, bytes);
    if result.is_err() {
        // Best effort: the temporary may not exist if creating it was what failed.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| io_err(tmp, "cannot create a temporary file for the checkpoint", e))?;
    f.write_all(bytes)
        .map_err(|e| io_err(tmp, "cannot write the checkpoint", e))?;
    // The data must be on disk before the rename makes it visible, or a crash could leave
    // the new name pointing at an empty or partial file.
    f.sync_all()
        .map_err(|e| io_err(tmp, "cannot flush the checkpoint to disk", e))?;
    drop(f);
    fs::rename(tmp, path).map_err(|e| io_err(path, "cannot move the checkpoint into place", e))?;
    sync_dir(path);
    Ok(())
}

/// Flushes the directory entry of the rename. Best effort: the rename is already atomic (old or
/// new file, both complete), this only makes the new one durable sooner; some platforms
/// cannot open a directory for syncing.
fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
