//! Atomic file replacement: write a temporary file beside the target, flush it to disk, then
//! rename it over the target. A rename within one directory is atomic, so a reader (or a
//! restart after a crash) sees either the old complete file or the new complete one, never a
//! half-written checkpoint (or metrics file, or report) in place of a good one.
//!
//! A save killed before its rename leaves its temporary file (`.NAME.PID-N.tmp`) behind. Each
//! save first removes those of its own target whose process is gone: on Linux, a PID is alive
//! while `/proc/PID` exists. A temporary file of a live process (a concurrent save, in this
//! process or another) is never touched. This assumes that every process saving to the
//! directory runs on this machine, in this PID namespace (a save from another container or
//! host sharing the directory would look dead). Where there is no `/proc` (other systems, or
//! Linux without it mounted) liveness cannot be told, and stale files are left alone.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tapegrad_autograd::{Error, Result};

/// Distinguishes temporary files of concurrent saves within one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_err(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::io(path, what, e)
}

/// The temporary name: hidden, in the target's directory (a rename across file systems would
/// not be atomic), unique to this process and call.
fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::io_msg(path, "the path names no file"))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".{}.{}-{n}.tmp", name.to_string_lossy(), std::process::id());
    Ok(path.with_file_name(tmp))
}

/// The PID in `file_name` if it is a temporary file of the target named `target`:
/// `.{target}.{pid}-{n}.tmp`, with `pid` and `n` decimal.
fn temp_owner(file_name: &str, target: &str) -> Option<u32> {
    let rest = file_name
        .strip_prefix('.')?
        .strip_prefix(target)?
        .strip_prefix('.')?
        .strip_suffix(".tmp")?;
    let (pid, n) = rest.split_once('-')?;
    let decimal = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !decimal(pid) || !decimal(n) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` certainly no longer exists; `false` when that cannot be told.
fn is_dead(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let proc = Path::new("/proc");
    // Without a mounted /proc every PID would look dead: tell nothing instead.
    cfg!(target_os = "linux") && proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// Removes the temporary files of `path` left by processes that are gone. Best effort: a file
/// that cannot be listed or removed is left, and the save goes on.
fn remove_stale_temps(path: &Path) {
    let Some(target) = path.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| temp_owner(n, target)) else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && is_dead(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to `path` atomically, replacing any existing file. On error the temporary
/// file is removed and `path` is untouched. Stale temporary files of `path` (of processes that
/// are gone) are removed first: they may be as large as a checkpoint, and the disk may need the
/// room.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    remove_stale_temps(path);
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
        .map_err(|e| io_err(tmp, "cannot create a temporary file", e))?;
    f.write_all(bytes)
        .map_err(|e| io_err(tmp, "cannot write the temporary file", e))?;
    // The data must be on disk before the rename makes it visible, or a crash could leave
    // the new name pointing at an empty or partial file.
    f.sync_all()
        .map_err(|e| io_err(tmp, "cannot flush the temporary file to disk", e))?;
    drop(f);
    fs::rename(tmp, path).map_err(|e| io_err(path, "cannot move the new file into place", e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_temporary_names_of_the_target_are_recognised() {
        assert_eq!(temp_owner(".w.bin.123-0.tmp", "w.bin"), Some(123));
        assert_eq!(temp_owner(".w.bin.123-45.tmp", "w.bin"), Some(123));
        for other in [
            // Another target whose name extends this one's: its PID field is not decimal.
            ".w.bin.5.123-0.tmp",
            "w.bin.123-0.tmp",
            ".w.bin.123.tmp",
            ".w.bin.-0.tmp",
            ".w.bin.123-.tmp",
            ".w.bin.12a-0.tmp",
            ".w.bin.123-0.tmpx",
            ".x.bin.123-0.tmp",
            // PIDs are u32: an out-of-range number is no PID (and is left alone).
            ".w.bin.99999999999-0.tmp",
        ] {
            assert_eq!(temp_owner(other, "w.bin"), None, "{other}");
        }
    }
}
