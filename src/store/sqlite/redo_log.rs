//! A log of the engine's paging batches, `<file>-redo`, written ahead of their SQLite
//! transaction: a batch that pages is appended here with one `pwrite` and its pages go,
//! while the writer thread commits the same statements (its effect on the page's way out
//! is in BENCHMARKS.md, "The store's mechanisms").
//!
//! What the log guarantees is what a SQLite commit with `synchronous = NORMAL` did: the
//! record is in the OS's page cache when its pages go, so it survives the process being
//! killed. On the next start [`RedoLog::unapplied`] hands back every record SQLite had not
//! committed, in order, and the store commits them before anything reads it. Each record's
//! transaction also sets `redo_applied.seq` to the record's number, so a record is applied
//! exactly once. A power cut can lose a record whose pages went out, as it could lose that
//! commit before: the inputs that made it were not answered yet (answers still wait for the
//! WAL's fsync), so their sources send them again and the page goes out again, a duplicate,
//! never a loss. Every record carries the store's epoch (`redo_applied.epoch`, drawn on the
//! store's first start), so a log left beside a database that was deleted or swapped is
//! never replayed into the one in its place.
//!
//! Between a page going out and SQLite's commit (a fraction of a millisecond) a reader of
//! the store (the API, the dashboard) may not see the page's incident yet; the engine's own
//! state, which acks and resolves go through, has it.
//!
//! The file is reused from its start once every record in it is committed and it has grown
//! past [`RESTART_AT`]. Reading stops at the first record that is torn, fails its checksum,
//! belongs to another epoch or does not carry the next number, so what is left of older
//! records past the new ones is never read as new.
//!
//! Record: body length (u32 LE), FNV-1a 64 of the body (u64 LE), body. Body: the store's
//! epoch (u64), number (u64), statement count (u32), then per statement: SQL (u32 length +
//! UTF-8), needs-row flag (u8), value count (u32), values (tag u8: 0 i64, 1 i32, 2 text,
//! 3 null text, 4 text; then i64 LE, i32 LE, or u32 length + UTF-8).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::store::statements::{Statement, Val};

/// Past this size the file starts again from its beginning, once all of it is committed.
pub const RESTART_AT: u64 = 4 << 20;

/// The log of one SQLite file: `<database>-redo` beside it.
#[derive(Debug)]
pub struct RedoLog {
    file: File,
    /// Where the next record goes.
    end: u64,
    /// Where the last record went.
    last_at: u64,
    /// The number the next record gets.
    next: u64,
    /// The store's own number (`redo_applied.epoch`), in every record: a log left beside
    /// another store's file (a database deleted or swapped, its log not) is never replayed
    /// into this one.
    epoch: u64,
    /// Reused for each record's bytes.
    buffer: Vec<u8>,
}

/// The log's file name for the database at `database`.
pub fn path_for(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-redo");
    PathBuf::from(name)
}

impl RedoLog {
    /// Open the log at `path` (created when missing) and lock it for this process; `None`
    /// when another process holds it (an engine already runs on this database, and its
    /// log is its own). Read what it holds with [`RedoLog::unapplied`] before writing.
    pub fn open(path: &Path) -> io::Result<Option<RedoLog>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        Ok(Some(RedoLog {
            file,
            end: 0,
            last_at: 0,
            next: 1,
            epoch: 0,
            buffer: Vec::new(),
        }))
    }

    /// The records of the store numbered `epoch` after `applied` (the last one SQLite
    /// committed), in order. None when the first of them is not `applied + 1`: they are from
    /// before a commit SQLite lost to a power cut, and replaying them without it would be
    /// worse than not.
    pub fn unapplied(&self, epoch: u64, applied: u64) -> io::Result<Vec<(u64, Vec<Statement>)>> {
        let mut bytes = Vec::new();
        let mut file = &self.file;
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut bytes)?;
        let mut records = Vec::new();
        let mut at = 0;
        let mut previous: Option<u64> = None;
        while let Some((record_epoch, number, statements, next)) = decode_at(&bytes, at) {
            if record_epoch != epoch || previous.is_some_and(|p| number != p + 1) {
                break;
            }
            previous = Some(number);
            at = next;
            if number > applied {
                records.push((number, statements));
            }
        }
        if records.first().is_some_and(|(n, _)| *n != applied + 1) {
            return Ok(Vec::new());
        }
        Ok(records)
    }

    /// Empty the log (everything in it is committed) and number records of the store
    /// `epoch` from `next` on.
    pub fn start_empty(&mut self, epoch: u64, next: u64) -> io::Result<()> {
        self.file.set_len(0)?;
        self.end = 0;
        self.epoch = epoch;
        self.next = next;
        Ok(())
    }

    /// The number the next record will get.
    pub fn next_number(&self) -> u64 {
        self.next
    }

    /// Append `statements` as the next record; returns its number. On an error nothing
    /// counts as written: the next record goes at the same place with the same number.
    pub fn append(&mut self, statements: &[Statement]) -> io::Result<u64> {
        let number = self.next;
        encode(&mut self.buffer, self.epoch, number, statements);
        self.file.write_all_at(&self.buffer, self.end)?;
        self.last_at = self.end;
        self.end += self.buffer.len() as u64;
        self.next += 1;
        Ok(number)
    }

    /// The last record appended will not be committed (its batch was refused before it
    /// reached SQLite): the next record takes its place and its number.
    pub fn forget_last(&mut self) {
        self.end = self.last_at;
        self.next -= 1;
    }

    /// Every record up to `applied` is committed to SQLite: start the file again from its
    /// beginning if it has grown large and holds nothing newer.
    pub fn committed_up_to(&mut self, applied: u64) {
        if self.end >= RESTART_AT && applied + 1 == self.next {
            self.end = 0;
        }
    }
}

fn encode(out: &mut Vec<u8>, epoch: u64, number: u64, statements: &[Statement]) {
    out.clear();
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&number.to_le_bytes());
    put_len(out, statements.len());
    for statement in statements {
        put_text(out, &statement.sql);
        out.push(u8::from(statement.needs_row));
        put_len(out, statement.values.len());
        for value in &statement.values {
            match value {
                Val::I64(v) => {
                    out.push(0);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Val::I32(v) => {
                    out.push(1);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Val::Str(v) => {
                    out.push(2);
                    put_text(out, v);
                }
                Val::OptStr(None) => out.push(3),
                Val::OptStr(Some(v)) => {
                    out.push(4);
                    put_text(out, v);
                }
            }
        }
    }
    let body_len = u32::try_from(out.len() - 12).expect("a batch under 4 GiB");
    let checksum = fnv1a(&out[12..]);
    out[..4].copy_from_slice(&body_len.to_le_bytes());
    out[4..12].copy_from_slice(&checksum.to_le_bytes());
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).expect("under 4 GiB").to_le_bytes());
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    put_len(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// The record at `at`: its store's epoch, its number, statements and where the next one
/// starts; `None` when there is none there (the end, a torn write, a checksum that does not
/// match).
fn decode_at(bytes: &[u8], at: usize) -> Option<(u64, u64, Vec<Statement>, usize)> {
    let mut header = Reader {
        bytes: bytes.get(at..at.checked_add(12)?)?,
    };
    let body_len = header.u32()? as usize;
    let checksum = header.u64()?;
    let start = at + 12;
    let body = bytes.get(start..start.checked_add(body_len)?)?;
    if fnv1a(body) != checksum {
        return None;
    }
    let mut r = Reader { bytes: body };
    let epoch = r.u64()?;
    let number = r.u64()?;
    let count = r.u32()?;
    let mut statements = Vec::new();
    for _ in 0..count {
        let sql = r.text()?;
        let needs_row = r.u8()? != 0;
        let value_count = r.u32()?;
        let mut values = Vec::new();
        for _ in 0..value_count {
            values.push(match r.u8()? {
                0 => Val::I64(r.u64()? as i64),
                1 => Val::I32(r.u32()? as i32),
                2 => Val::Str(r.text()?),
                3 => Val::OptStr(None),
                4 => Val::OptStr(Some(r.text()?)),
                _ => return None,
            });
        }
        statements.push(Statement {
            sql: sql.into(),
            values,
            needs_row,
        });
    }
    r.bytes
        .is_empty()
        .then_some((epoch, number, statements, start + body_len))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn text(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

/// FNV-1a, 64 bits: catches a record torn by a crash (its tail is zeros or older bytes).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: u64 = 77;

    fn batch(tag: &str) -> Vec<Statement> {
        vec![
            Statement::new(
                "INSERT INTO t (id, data, note) VALUES ($1, $2, $3)",
                vec![
                    Val::I64(-7),
                    Val::Str(format!("{tag} \u{e9}\"quoted\"")),
                    Val::OptStr(None),
                ],
            ),
            Statement::needing_row(
                "UPDATE t SET n = $1, note = $2 WHERE id = $3",
                vec![
                    Val::I32(-3),
                    Val::OptStr(Some(tag.into())),
                    Val::I64(i64::MAX),
                ],
            ),
        ]
    }

    /// What a statement says, for comparing (statements are not `PartialEq`).
    fn shown(records: &[(u64, Vec<Statement>)]) -> Vec<(u64, String)> {
        records
            .iter()
            .map(|(n, statements)| (*n, format!("{statements:?}")))
            .collect()
    }

    fn fresh() -> (tempfile::TempDir, PathBuf, RedoLog) {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("tocsin.db"));
        let mut log = RedoLog::open(&path).unwrap().expect("not held");
        log.start_empty(EPOCH, 1).unwrap();
        (dir, path, log)
    }

    #[test]
    fn records_read_back_as_written_after_the_last_applied() {
        let (_dir, path, mut log) = fresh();
        assert!(path.ends_with("tocsin.db-redo"));
        for tag in ["a", "b", "c"] {
            log.append(&batch(tag)).unwrap();
        }
        let all = log.unapplied(EPOCH, 0).unwrap();
        assert_eq!(
            shown(&all),
            vec![
                (1, format!("{:?}", batch("a"))),
                (2, format!("{:?}", batch("b"))),
                (3, format!("{:?}", batch("c"))),
            ]
        );
        assert_eq!(shown(&log.unapplied(EPOCH, 2).unwrap()), shown(&all[2..]));
        assert!(log.unapplied(EPOCH, 3).unwrap().is_empty(), "all applied");
    }

    /// A crash in the middle of an append leaves a torn record at the end: it and anything
    /// after it are not read; the records before it are.
    #[test]
    fn a_torn_record_ends_the_log() {
        let (_dir, path, mut log) = fresh();
        log.append(&batch("a")).unwrap();
        let whole = std::fs::metadata(&path).unwrap().len();
        log.append(&batch("b")).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(std::fs::metadata(&path).unwrap().len() - 5)
            .unwrap();
        assert_eq!(
            log.unapplied(EPOCH, 0)
                .unwrap()
                .iter()
                .map(|r| r.0)
                .collect::<Vec<_>>(),
            vec![1]
        );
        // A flipped byte in a whole record: its checksum fails.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[whole as usize - 3] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        assert!(log.unapplied(EPOCH, 0).unwrap().is_empty());
    }

    /// Once every record is committed and the file is past its bound, records go at its
    /// start again; the older ones left after them are never read as new.
    #[test]
    fn the_file_starts_again_and_older_records_past_the_new_ones_are_not_read() {
        let (_dir, path, mut log) = fresh();
        let big = vec![Statement::new(
            "INSERT INTO t (data) VALUES ($1)",
            vec![Val::Str("x".repeat(300_000))],
        )];
        while std::fs::metadata(&path).unwrap().len() < RESTART_AT {
            log.append(&big).unwrap();
        }
        let last = log.next_number() - 1;
        log.committed_up_to(last - 1);
        log.append(&batch("not yet")).unwrap();
        // Not all committed: the file went on growing.
        assert!(log.end > RESTART_AT);
        let newest = log.next_number() - 1;
        log.committed_up_to(newest);
        assert_eq!(log.end, 0, "everything committed: back to the start");
        log.append(&batch("new")).unwrap();
        let records = log.unapplied(EPOCH, newest).unwrap();
        assert_eq!(
            shown(&records),
            vec![(newest + 1, format!("{:?}", batch("new")))]
        );
    }

    /// A record forgotten (its batch refused) is replaced by the next one, number and all.
    #[test]
    fn a_forgotten_record_is_replaced_by_the_next() {
        let (_dir, _path, mut log) = fresh();
        log.append(&batch("a")).unwrap();
        log.append(&batch("refused, and longer than the one after it"))
            .unwrap();
        log.forget_last();
        assert_eq!(log.append(&batch("b")).unwrap(), 2);
        assert_eq!(
            shown(&log.unapplied(EPOCH, 0).unwrap()),
            vec![
                (1, format!("{:?}", batch("a"))),
                (2, format!("{:?}", batch("b"))),
            ]
        );
    }

    /// Records that start past the next one SQLite expects are from before a commit it
    /// lost: none of them is replayed.
    #[test]
    fn records_after_a_gap_are_not_replayed() {
        let (_dir, _path, mut log) = fresh();
        log.start_empty(EPOCH, 10).unwrap();
        log.append(&batch("a")).unwrap();
        log.append(&batch("b")).unwrap();
        assert_eq!(log.unapplied(EPOCH, 9).unwrap().len(), 2);
        assert!(
            log.unapplied(EPOCH, 7).unwrap().is_empty(),
            "record 8 is missing"
        );
    }

    /// Records written for another store (another epoch) are not this store's.
    #[test]
    fn records_of_another_store_are_not_replayed() {
        let (_dir, _path, mut log) = fresh();
        log.append(&batch("a")).unwrap();
        assert_eq!(log.unapplied(EPOCH, 0).unwrap().len(), 1);
        assert!(log.unapplied(EPOCH + 1, 0).unwrap().is_empty());
    }

    /// One process holds a log: another opening it gets none.
    #[test]
    fn a_log_held_by_another_opener_is_not_handed_out() {
        let (_dir, path, log) = fresh();
        assert!(RedoLog::open(&path).unwrap().is_none());
        drop(log);
        assert!(RedoLog::open(&path).unwrap().is_some());
    }
}
