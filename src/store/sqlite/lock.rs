//! One engine per SQLite file: an exclusive `flock(2)` on the database file itself, taken
//! before anything is written to the store (before migrations and before the redo log is
//! replayed) and held until the store is closed or the process dies.
//!
//! The lock is on the file's inode, so another path to the same file (relative, through a
//! symlink, from another working directory) meets it too, and the kernel drops it with the
//! process, so an engine that was SIGKILLed never blocks its own restart. On Linux `flock`
//! locks are apart from the POSIX (`fcntl`) locks SQLite takes on the same file: tools that
//! only read or write through SQLite (the `sqlite3` shell, a backup) are not kept out.
//!
//! One caveat of POSIX locks holds for any descriptor of the file: closing one drops every
//! POSIX lock the process holds on it, SQLite's included. The descriptor here is therefore
//! opened once, before SQLite opens the file, and closed after SQLite's connections are
//! closed (`Store::close`); a refused engine closes it before it ever opened SQLite.
//!
//! Beside the file, `<file>-engine` names the engine holding the lock (pid, host, listen
//! address), so a refused engine can say which one: written after the lock is taken, read
//! only by an engine that could not take it, removed at a clean stop.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// Who opens a store: named in the side file, and to an engine that is refused.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub host: String,
    /// The address the engine serves on; None for a process that serves nothing (a tool, a
    /// test).
    #[serde(default)]
    pub listen: Option<String>,
}

impl Owner {
    /// This process, serving on `listen`.
    pub fn this_process(listen: Option<String>) -> Owner {
        Owner {
            pid: std::process::id(),
            host: host_name().unwrap_or_else(|| "(unnamed)".into()),
            listen,
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on host {}", self.pid, self.host)?;
        match &self.listen {
            Some(listen) => write!(f, ", listening on {listen}"),
            None => f.write_str(", serving no port"),
        }
    }
}

/// This machine's name (`/etc/hostname`), if it has one.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// How long a start waits for a lock that another process holds before it is refused.
const LOCK_WAIT: Duration = Duration::from_millis(500);
const LOCK_POLL: Duration = Duration::from_millis(25);

/// The lock on one SQLite file, held until [`EngineLock::release`] or drop.
#[derive(Debug)]
pub(in crate::store) struct EngineLock {
    /// The locked descriptor; None once released.
    file: Mutex<Option<File>>,
    owner_file: PathBuf,
    /// The database file, symlinks resolved.
    pub database: PathBuf,
}

/// `<database>-engine`: who holds the lock.
pub(in crate::store) fn owner_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-engine");
    PathBuf::from(name)
}

impl EngineLock {
    /// Open the database file for writing (created when missing) and lock it for `owner`.
    ///
    /// Fails at once, naming the file, when it cannot be opened for writing (a read-only file
    /// or folder, missing permission) or when another engine holds it.
    pub async fn take(database: &Path, owner: &Owner) -> Result<EngineLock, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(database)
            .map_err(|reason| StoreError::Unwritable {
                path: database.display().to_string(),
                reason,
            })?;
        // The file itself, whatever the path to it: its side files are beside it.
        let database = std::fs::canonicalize(database).unwrap_or_else(|_| database.into());
        // A lock held for a moment longer than its engine (a process still exiting, or a child
        // forked by its last owner that has not yet executed its program) is waited for, a
        // little: well within the second in which a second engine is refused.
        let mut waited = Duration::ZERO;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if waited < LOCK_WAIT => {
                    tokio::time::sleep(LOCK_POLL).await;
                    waited += LOCK_POLL;
                }
                Err(std::fs::TryLockError::WouldBlock) => return Err(in_use(&database)),
                Err(std::fs::TryLockError::Error(reason)) => {
                    return Err(StoreError::Lock {
                        path: database.display().to_string(),
                        reason,
                    })
                }
            }
        }
        if let Some((path, reason)) = unwritable_side_file(&database) {
            return Err(StoreError::Unwritable {
                path: path.display().to_string(),
                reason,
            });
        }
        let owner_file = owner_path(&database);
        write_owner(&owner_file, owner).map_err(|reason| StoreError::Unwritable {
            path: owner_file.display().to_string(),
            reason,
        })?;
        Ok(EngineLock {
            file: Mutex::new(Some(file)),
            owner_file,
            database,
        })
    }

    /// The error a new engine would meet on `database` now, if another engine holds it;
    /// nothing is created or written.
    pub fn held(database: &Path) -> Option<StoreError> {
        let file = File::open(database).ok()?;
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) => {
                let database = std::fs::canonicalize(database).ok()?;
                Some(in_use(&database))
            }
            _ => None,
        }
    }

    /// Give the file up: the side file goes first, so a new holder's is never removed.
    pub fn release(&self) {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if file.take().is_some() {
            let _ = std::fs::remove_file(&self.owner_file);
        }
    }
}

impl Drop for EngineLock {
    fn drop(&mut self) {
        self.release();
    }
}

/// `database` is another engine's: say whose.
fn in_use(database: &Path) -> StoreError {
    StoreError::InUse {
        path: database.display().to_string(),
        holder: match read_owner(&owner_path(database)) {
            Some(holder) => holder.to_string(),
            None => "its pid, host and address are not recorded yet".into(),
        },
    }
}

/// SQLite writes its -wal and -shm files beside the database, tocsin its -redo log: the
/// first of them that is there and cannot be opened for writing, with the OS's reason
/// (SQLite creates those that are missing).
fn unwritable_side_file(database: &Path) -> Option<(PathBuf, std::io::Error)> {
    ["-wal", "-shm", "-redo"].into_iter().find_map(|suffix| {
        let mut side = database.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        match OpenOptions::new().read(true).write(true).open(&side) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Some((side, e)),
            _ => None,
        }
    })
}

/// The database file or a file beside it that cannot be written, in words: what the file
/// system says of a store whose writes fail. Asked with access(2), which sees a read-only
/// file system, the immutable flag and permissions, without opening the files: closing a
/// descriptor of them would drop the POSIX locks SQLite holds on them in this process.
pub(in crate::store) fn why_unwritable(database: &Path) -> Option<String> {
    ["", "-wal", "-shm", "-redo"]
        .into_iter()
        .find_map(|suffix| {
            let mut path = database.as_os_str().to_owned();
            path.push(suffix);
            let path = PathBuf::from(path);
            match rustix::fs::access(&path, rustix::fs::Access::WRITE_OK) {
                Err(rustix::io::Errno::NOENT) if !suffix.is_empty() => None,
                Err(errno) => Some(format!(
                    "{} cannot be written: {}",
                    path.display(),
                    std::io::Error::from(errno)
                )),
                Ok(()) => None,
            }
        })
}

/// Written whole under another name and renamed, so a reader never sees half of it.
fn write_owner(path: &Path, owner: &Owner) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    let mut file = File::create(&temporary)?;
    let mut line = serde_json::to_string(owner).map_err(std::io::Error::other)?;
    line.push('\n');
    file.write_all(line.as_bytes())?;
    drop(file);
    std::fs::rename(&temporary, path)
}

fn read_owner(path: &Path) -> Option<Owner> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_second_lock_on_the_same_file_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("tocsin.db");
        let first = Owner {
            pid: 4242,
            host: "alpha".into(),
            listen: Some("127.0.0.1:9470".into()),
        };
        let lock = EngineLock::take(&database, &first).await.unwrap();
        // Another path to the same file: through a symlink.
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&database, &link).unwrap();
        let refused = EngineLock::take(&link, &Owner::this_process(None))
            .await
            .unwrap_err();
        let text = refused.to_string();
        assert!(
            text.contains("pid 4242 on host alpha, listening on 127.0.0.1:9470"),
            "{text}"
        );
        assert!(
            text.contains(&database.canonicalize().unwrap().display().to_string()),
            "the file itself is named: {text}"
        );
        lock.release();
        assert!(!owner_path(&database).exists(), "the side file goes too");
        EngineLock::take(&link, &Owner::this_process(None))
            .await
            .expect("free again");
    }

    /// A lock let go within the wait (its engine still exiting) is taken, not refused.
    #[tokio::test(start_paused = true)]
    async fn a_lock_let_go_within_the_wait_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("tocsin.db");
        let first = EngineLock::take(&database, &Owner::this_process(None))
            .await
            .unwrap();
        let letting_go = tokio::spawn(async move {
            tokio::time::sleep(LOCK_WAIT / 2).await;
            first.release();
        });
        EngineLock::take(&database, &Owner::this_process(None))
            .await
            .expect("taken once the first lets go");
        letting_go.await.unwrap();
    }
}
