//! Statements with bound values, as both backends run them: the engine's batches are
//! planned into these, and SQLite's writer thread and sqlx run the same list.

use std::borrow::Cow;
use std::fmt::Write;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, AnyConnection, Connection};

use super::Result;

/// One bound value of a statement.
#[derive(Clone, Debug)]
pub(super) enum Val {
    I64(i64),
    I32(i32),
    Str(String),
    OptStr(Option<String>),
}

/// One statement of a write, with its values for `$1`, `$2`, ….
#[derive(Clone, Debug)]
pub(super) struct Statement {
    /// Borrowed for constant statements, owned for multi-row ones and replayed ones.
    pub sql: Cow<'static, str>,
    pub values: Vec<Val>,
    /// When this statement changes no row, it and the statements after it do not count:
    /// the write commits those before it and says how many (see [`run_statements`]).
    pub needs_row: bool,
}

impl Statement {
    pub fn new(sql: impl Into<Cow<'static, str>>, values: Vec<Val>) -> Self {
        Statement {
            sql: sql.into(),
            values,
            needs_row: false,
        }
    }

    /// A statement that must change a row for the rest of its write to go on (an update of
    /// a row another writer may not have written yet).
    pub fn needing_row(sql: impl Into<Cow<'static, str>>, values: Vec<Val>) -> Self {
        Statement {
            needs_row: true,
            ..Statement::new(sql, values)
        }
    }

    /// Run it; returns the rows it changed.
    pub async fn execute(self, conn: &mut AnyConnection) -> Result<u64> {
        Ok(bound(&self.sql, self.values)
            .execute(&mut *conn)
            .await?
            .rows_affected())
    }

    /// Run it and read the one row it selects.
    pub async fn fetch_one(self, conn: &mut AnyConnection) -> Result<AnyRow> {
        Ok(bound(&self.sql, self.values).fetch_one(&mut *conn).await?)
    }
}

fn bound(sql: &str, values: Vec<Val>) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
    let mut query = sqlx::query(sql);
    for val in values {
        query = match val {
            Val::I64(v) => query.bind(v),
            Val::I32(v) => query.bind(v),
            Val::Str(v) => query.bind(v),
            Val::OptStr(v) => query.bind(v),
        };
    }
    query
}

/// Run `statements` in order in one transaction on `conn`, up to the first that needs a row
/// and changed none; commits what ran and returns how many statements that was.
pub(super) async fn run_statements(
    conn: &mut AnyConnection,
    statements: Vec<Statement>,
) -> Result<usize> {
    let mut tx = conn.begin().await?;
    let mut done = 0;
    for statement in statements {
        let needs_row = statement.needs_row;
        if statement.execute(&mut tx).await? == 0 && needs_row {
            break;
        }
        done += 1;
    }
    tx.commit().await?;
    Ok(done)
}

/// Rows per statement, largest first: a batch goes out in chunks of these sizes, so a table
/// has at most eleven distinct statements, all kept prepared in the connection's cache.
/// One statement for many rows instead of one per row (one trip to SQLite's worker thread
/// or to PostgreSQL each). Up to 8 rows go in one statement of their own size: a new
/// alert's batch writes three timeline rows, and a second statement on one table is a
/// second trip to PostgreSQL (see `postgres::batch`). 64 rows × 7 columns stays far under
/// both backends' limit on parameters.
const CHUNKS: [usize; 11] = [64, 32, 16, 8, 7, 6, 5, 4, 3, 2, 1];

/// `head` + `($1, …), (…)` + `tail` for each chunk of `rows` (all rows have as many values),
/// in order, appended to `out`. Rows of one call must not repeat a conflict key (PostgreSQL
/// refuses a statement that updates a row twice): callers pass rows from sets.
pub(super) fn push_rows(out: &mut Vec<Statement>, head: &str, tail: &str, rows: Vec<Vec<Val>>) {
    let Some(width) = rows.first().map(Vec::len) else {
        return;
    };
    let mut rows = rows.into_iter();
    let mut left = rows.len();
    while left > 0 {
        let size = CHUNKS.into_iter().find(|c| *c <= left).unwrap_or(1);
        let values = rows.by_ref().take(size).flatten().collect();
        out.push(Statement::new(rows_sql(head, tail, width, size), values));
        left -= size;
    }
}

/// The text of a statement of `size` rows of `width` values: `head` + `($1, …), (…)` +
/// `tail`.
fn rows_sql(head: &str, tail: &str, width: usize, size: usize) -> String {
    let mut sql = String::from(head);
    let mut n = 0;
    for r in 0..size {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            n += 1;
            if c > 0 {
                sql.push_str(", ");
            }
            write!(sql, "${n}").expect("writing to a String");
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks of 64, then the powers of two down to 8, then one of what is left, each with
    /// its own numbered placeholders.
    #[test]
    fn rows_go_out_in_chunks_with_numbered_placeholders() {
        let rows: Vec<Vec<Val>> = (0..83)
            .map(|i| vec![Val::I64(i), Val::Str(format!("r{i}"))])
            .collect();
        let mut out = Vec::new();
        push_rows(
            &mut out,
            "INSERT INTO t (a, b) VALUES ",
            " ON CONFLICT DO NOTHING",
            rows,
        );
        let sizes: Vec<usize> = out.iter().map(|s| s.values.len() / 2).collect();
        assert_eq!(sizes, vec![64, 16, 3]);
        assert!(out[0]
            .sql
            .starts_with("INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ("));
        assert!(out[0]
            .sql
            .ends_with(", ($127, $128) ON CONFLICT DO NOTHING"));
        assert_eq!(
            out[2].sql,
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6) ON CONFLICT DO NOTHING"
        );
        assert!(matches!(out[1].values[0], Val::I64(64)));
        assert!(matches!(out[2].values[0], Val::I64(80)));
    }

    /// Up to 8 rows go in one statement.
    #[test]
    fn a_few_rows_go_in_one_statement() {
        for count in 1..=8 {
            let rows: Vec<Vec<Val>> = (0..count).map(|i| vec![Val::I64(i)]).collect();
            let mut out = Vec::new();
            push_rows(&mut out, "INSERT INTO t (a) VALUES ", "", rows);
            assert_eq!(out.len(), 1, "{count} rows");
            assert_eq!(out[0].values.len(), count as usize);
        }
    }
}
