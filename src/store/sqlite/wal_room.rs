//! Room made in the SQLite WAL file before the engine's first commit, as PostgreSQL fills a
//! new WAL segment with zeros (`wal_init_zero`).
//!
//! SQLite writes its WAL from the start of the file again once a checkpoint has copied all
//! of it, and never shrinks the file: a running engine commits into blocks the file already
//! has. The first burst after a start does not (SQLite removes the file at a clean stop), and
//! an append costs the file system more than a write over blocks it has (new page-cache
//! pages, reserved blocks, a journal commit with each fsync). That first burst is the one
//! that meets a restart in the middle of an outage; the effect on the ingest benchmark's
//! first pass is in BENCHMARKS.md ("The store's mechanisms").
//!
//! The room is zeros past the end of the file, written while this connection holds SQLite's
//! write lock, so no frame is appended meanwhile; frames already there are never touched.
//! SQLite reads a WAL only up to the first frame whose salt and checksum do not follow on,
//! so zeros after the last commit are as good as the end of the file, after a crash too.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rusqlite::Connection;

/// Zeros written per call: large writes, a bounded buffer.
const CHUNK: usize = 1 << 20;

/// Grow the WAL file at `wal` to `bytes` with zeros, under the write lock of `conn` (a
/// connection to its database, in WAL mode, outside a transaction). Returns the file's
/// length before and after; `None` when there is no WAL file (SQLite kept a rollback
/// journal) or it was long enough. If writing fails (a full disk), the file is cut back to
/// its length before, so the room never takes space the database needs.
pub(super) fn make_room(
    conn: &Connection,
    wal: &Path,
    bytes: u64,
) -> io::Result<Option<(u64, u64)>> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(io::Error::other)?;
    let grown = grow(wal, bytes);
    // Nothing was written through SQLite: the transaction only held the lock.
    let ended = conn.execute_batch("ROLLBACK").map_err(io::Error::other);
    let grown = grown?;
    ended?;
    Ok(grown)
}

fn grow(wal: &Path, bytes: u64) -> io::Result<Option<(u64, u64)>> {
    let file = match std::fs::OpenOptions::new().write(true).open(wal) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let before = file.metadata()?.len();
    if before >= bytes {
        return Ok(None);
    }
    let zeros = vec![0u8; CHUNK];
    let written = (|| {
        let mut at = before;
        while at < bytes {
            let n = usize::try_from(bytes - at).map_or(CHUNK, |left| left.min(CHUNK));
            file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        // On disk now, so that the first commit's fsync does not write them too.
        file.sync_data()
    })();
    if let Err(e) = written {
        let _ = file.set_len(before);
        return Err(e);
    }
    Ok(Some((before, bytes)))
}

/// The WAL's length when it holds `frames` frames of `page_size`-byte pages (a 32-byte
/// header, then each page after a 24-byte frame header), rounded up to whole MiB.
pub(super) fn wal_bytes(frames: u32, page_size: u32) -> u64 {
    let exact = 32 + u64::from(frames) * (u64::from(page_size) + 24);
    exact.div_ceil(CHUNK as u64) * CHUNK as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_holds_the_frames_asked_for_in_whole_mib() {
        // 16,384 frames of 4 KiB pages: 67,502,112 bytes, 65 MiB.
        assert_eq!(wal_bytes(16_384, 4096), 65 << 20);
        assert_eq!(wal_bytes(1, 4096), 1 << 20);
        assert_eq!(wal_bytes(0, 4096), 1 << 20);
    }
}
