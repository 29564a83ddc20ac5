//! Helpers for the upgrade tests (tests/e2e/upgrade.rs): the fixtures of tests/fixtures/, what
//! they expect, copies of their stores, `tocsin check --store`, and comparing what an old
//! binary showed with what today's shows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::support::PgDatabase;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// One fixture: a store an earlier binary left, and what that binary showed of it.
pub struct Fixture {
    pub name: String,
    pub dir: PathBuf,
    pub expected: Value,
}

impl Fixture {
    pub fn load(name: &str) -> Fixture {
        let dir = Path::new(FIXTURES).join(name);
        let text = std::fs::read_to_string(dir.join("expected.json"))
            .unwrap_or_else(|e| panic!("{name}/expected.json: {e}"));
        Fixture {
            name: name.to_string(),
            dir,
            expected: serde_json::from_str(&text).unwrap(),
        }
    }

    pub fn postgres(&self) -> bool {
        self.expected["backend"] == "postgres"
    }

    pub fn schema_version(&self) -> i64 {
        self.expected["schema_version"].as_i64().unwrap()
    }

    pub fn backend(&self) -> &'static str {
        if self.postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    pub fn pages(&self) -> Vec<&Value> {
        self.expected["pages"].as_array().unwrap().iter().collect()
    }

    /// Delivery ids of the pages the old binary delivered, and of those it had not.
    pub fn delivered_and_not(&self) -> (BTreeSet<String>, BTreeMap<String, Value>) {
        let mut delivered = BTreeSet::new();
        let mut undelivered = BTreeMap::new();
        for page in self.pages() {
            let id = page["delivery"].as_str().unwrap().to_string();
            if page["status"] == "delivered" {
                delivered.insert(id);
            } else {
                assert_eq!(page["status"], "pending", "{}: {page}", self.name);
                undelivered.insert(id, page.clone());
            }
        }
        (delivered, undelivered)
    }

    /// (incident, level, due) of each escalation level the old binary left to come.
    pub fn escalations(&self) -> Vec<(i64, u64, DateTime<Utc>)> {
        self.expected["escalations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["incident"].as_i64().unwrap(),
                    e["level"].as_u64().unwrap(),
                    e["due"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    pub fn stopped_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.expected["stopped_at_ms"].as_i64().unwrap()).unwrap()
    }
}

/// The versions of the migrations today's binary has for `backend`, ascending (their
/// numbers, which need not be contiguous while branches that add migrations are merged).
pub fn schema_versions(backend: &str) -> Vec<i64> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut versions: Vec<i64> = std::fs::read_dir(folder)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().to_string();
            name.strip_suffix(".sql")?;
            name.split('_').next()?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    versions
}

/// The last migration today's binary has for `backend`.
pub fn latest_schema(backend: &str) -> i64 {
    schema_versions(backend).last().copied().unwrap_or(0)
}

/// The scenario's config (tests/fixtures/scenario/) with this store and both webhooks sent
/// to `hook` (`/accept` and `/fail` after it).
pub fn scenario_config(store_url: &str, hook: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join("scenario/config.yaml"))
        .unwrap()
        .replace("@STORE_URL@", store_url)
        .replace("@ACCEPT_URL@", &format!("{hook}/accept"))
        .replace("@FAIL_URL@", &format!("{hook}/fail"))
}

pub fn scenario_rules() -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join("scenario/rules.yaml")).unwrap()
}

/// Copy the fixture's SQLite file and side files into `data`, unzipped (they are kept
/// gzipped: most of a killed store is WAL frames, which compress tenfold).
pub fn copy_sqlite(fixture: &Fixture, data: &Path) {
    std::fs::create_dir_all(data).unwrap();
    let mut copied = 0;
    for entry in std::fs::read_dir(&fixture.dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(file) = name
            .strip_suffix(".gz")
            .filter(|n| n.starts_with("tocsin.db"))
        else {
            continue;
        };
        let unzipped = Command::new("gzip")
            .arg("-dc")
            .arg(&path)
            .output()
            .expect("gzip");
        assert!(unzipped.status.success(), "gzip -dc {}", path.display());
        std::fs::write(data.join(file), unzipped.stdout).unwrap();
        copied += 1;
    }
    assert!(copied > 0, "{}: no tocsin.db*.gz", fixture.name);
}

/// Load the fixture's pg_dump into the (empty) database at `url`. psql's meta-commands
/// (`\restrict`) are dropped; the rest is plain SQL.
pub async fn restore_dump(fixture: &Fixture, url: &str) {
    use sqlx::Connection;
    let dump = std::fs::read_to_string(fixture.dir.join("dump.sql")).unwrap();
    let script: String = dump
        .lines()
        .filter(|l| !l.starts_with('\\'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(&script)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{}: restoring dump.sql: {e}", fixture.name));
    conn.close().await.ok();
}

/// Bytes and modification time of each file in `folder`, by name.
pub fn snapshot(folder: &Path) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    std::fs::read_dir(folder)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            (
                path.file_name().unwrap().to_string_lossy().to_string(),
                (std::fs::read(&path).unwrap(), meta.modified().unwrap()),
            )
        })
        .collect()
}

/// `tocsin check --config CONFIG --store`: exit code, stdout, stderr.
pub fn check_store(config: &Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["check", "--store", "--config"])
        .arg(config)
        .output()
        .expect("run tocsin check");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

/// What `check --store` says of a store at `at` for today's binary.
pub fn check_line(at: i64, latest: i64) -> String {
    // Migrations after `at`, by number (either backend: both have the same gaps, if any).
    let pending = ["sqlite", "postgres"]
        .into_iter()
        .map(schema_versions)
        .find(|v| v.last() == Some(&latest))
        .map_or(latest - at, |v| {
            v.iter().filter(|n| **n > at).count() as i64
        });
    match pending {
        0 => format!("is at schema version {at}: up to date"),
        1 => format!(
            "is at schema version {at}; this tocsin needs {latest}: 1 migration pending (it migrates at start)"
        ),
        n => format!(
            "is at schema version {at}; this tocsin needs {latest}: {n} migrations pending (it migrates at start)"
        ),
    }
}

/// Where `got` differs from `old`: each field `old` has, `got` has with the same value; a
/// timeline in `got` begins with `old`'s entries (entries written since come after). `got`
/// may have fields `old` lacks: a later version shows more.
pub fn differences(old: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    match (old, got) {
        (Value::Object(o), Value::Object(g)) => {
            for (key, value) in o {
                match g.get(key) {
                    Some(v) => differences(value, v, &format!("{path}.{key}"), out),
                    None => out.push(format!("{path}.{key}: missing (was {value})")),
                }
            }
        }
        (Value::Array(o), Value::Array(g)) => {
            let prefix = path.ends_with(".timeline");
            if g.len() < o.len() || (!prefix && g.len() != o.len()) {
                out.push(format!(
                    "{path}: {} entries, was {}: {got}",
                    g.len(),
                    o.len()
                ));
                return;
            }
            for (i, (o, g)) in o.iter().zip(g).enumerate() {
                differences(o, g, &format!("{path}[{i}]"), out);
            }
        }
        _ if old != got => out.push(format!("{path}: {got}, was {old}")),
        _ => {}
    }
}

/// A copy of a fixture's store, with a config whose webhooks go to `hook`.
pub struct Prepared {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: Option<PgDatabase>,
}

impl Prepared {
    pub async fn new(fixture: &Fixture, hook: &str) -> Prepared {
        let dir = tempfile::tempdir().unwrap();
        let (store_url, db) = if fixture.postgres() {
            let db = PgDatabase::create().await;
            restore_dump(fixture, &db.url).await;
            (db.url.clone(), Some(db))
        } else {
            copy_sqlite(fixture, &dir.path().join("data"));
            ("sqlite://data/tocsin.db".to_string(), None)
        };
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, scenario_config(&store_url, hook)).unwrap();
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules/rules.yaml"), scenario_rules()).unwrap();
        Prepared { dir, config, db }
    }

    pub fn store_url(&self) -> String {
        match &self.db {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}/data/tocsin.db", self.dir.path().display()),
        }
    }

    pub async fn drop_db(self) {
        if let Some(db) = self.db {
            db.drop_db().await;
        }
    }
}
