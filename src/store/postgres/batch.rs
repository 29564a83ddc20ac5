//! An engine's batch in few round trips. Each statement sent is a trip to PostgreSQL and
//! back, and a page waits for its batch's commit, so the planned statements go joined: those
//! on distinct tables as one statement of data-modifying `WITH` queries, the leader's fence
//! and the inbox notifications in the first and last of them. A batch of one new alert is
//! then `BEGIN`, one statement and `COMMIT`.
//!
//! Statements on a table already in the statement being joined start the next one: the
//! queries of one statement all see the rows as they were before it, so two writes of one
//! table (a paging row deleted and written again, a second chunk of rows) keep their order.
//!
//! Writes from outside the engine (delivery outcomes) go joined too. One that needs a row
//! (see `Statement::needing_row`) returns its rows, and the joined statement selects their
//! count: when one changed none, the caller rolls back and runs them one by one.

use std::fmt::Write;

use sqlx::{AnyConnection, Row};

use super::NOW_MS;
use crate::store::statements::{Statement, Val};
use crate::store::Result;

/// Bound values in one joined statement, at most (PostgreSQL takes up to 65,535).
const MAX_VALUES: usize = 30_000;

/// The leader's lease, held (share-locked) by the batch until it commits: a takeover waits
/// for the batch, and a batch written after the lease passed on is refused.
pub(in crate::store) struct Fence<'a> {
    pub holder: &'a str,
    pub term: i64,
}

/// A batch's statements, joined.
pub(in crate::store) struct Joined {
    pub statements: Vec<Checked>,
}

/// A joined statement, and what its one row must say.
pub(in crate::store) struct Checked {
    pub statement: Statement,
    /// Its `held` column says whether the fence held (1 or 0).
    pub fenced: bool,
    /// Columns counting the rows of a query that needs one.
    pub rows: Vec<String>,
}

/// How a joined batch ran (in the caller's transaction).
#[derive(Debug, PartialEq, Eq)]
pub(in crate::store) enum Ran {
    Done,
    /// The lease has passed on: nothing is to be committed.
    Fenced,
    /// A query that needs a row changed none: roll back, and run the statements one by one.
    RowMissing,
}

/// Run `joined` on `conn`, in order, up to the first whose row says to stop.
pub(in crate::store) async fn run(conn: &mut AnyConnection, joined: Joined) -> Result<Ran> {
    for checked in joined.statements {
        if !checked.fenced && checked.rows.is_empty() {
            checked.statement.execute(conn).await?;
            continue;
        }
        let row = checked.statement.fetch_one(conn).await?;
        if checked.fenced && row.try_get::<i64, _>("held")? == 0 {
            return Ok(Ran::Fenced);
        }
        for column in &checked.rows {
            if row.try_get::<i64, _>(column.as_str())? == 0 {
                return Ok(Ran::RowMissing);
            }
        }
    }
    Ok(Ran::Done)
}

/// Join `statements` (in order, each on one table) with the fence and the notifications,
/// each a channel and its payload, sent at the commit.
pub(in crate::store) fn join(
    statements: Vec<Statement>,
    fence: Option<Fence<'_>>,
    notifications: Vec<(&'static str, String)>,
) -> Joined {
    // Each group: its statements, and whether more may join it (a statement that writes no
    // one table goes alone, as it is). The first takes the fence, the last the notifications.
    let mut groups: Vec<(Vec<Statement>, bool)> = vec![(Vec::new(), true)];
    let mut tables: Vec<String> = Vec::new();
    let mut values = 0;
    for statement in statements {
        let table = table(&statement.sql).map(str::to_string);
        let (last, open) = groups.last().expect("one group at least");
        let fits = values + statement.values.len() <= MAX_VALUES;
        let joins = *open && fits && table.as_ref().is_some_and(|t| !tables.contains(t));
        if !last.is_empty() && !joins {
            groups.push((Vec::new(), true));
            tables.clear();
            values = 0;
        }
        let group = groups.last_mut().expect("one group at least");
        if table.is_none() {
            if group.0.is_empty() && groups.len() == 1 {
                // The fence goes in a statement of its own before this one.
                groups.push((Vec::new(), true));
            }
            let group = groups.last_mut().expect("one group at least");
            group.1 = false;
        }
        values += statement.values.len();
        tables.extend(table);
        groups
            .last_mut()
            .expect("one group at least")
            .0
            .push(statement);
    }
    if !groups.last().expect("one group at least").1 {
        // The notifications go in a statement of their own after it.
        groups.push((Vec::new(), true));
    }
    let count = groups.len();
    let mut fence = fence;
    let mut notifications = Some(notifications);
    let mut out = Vec::with_capacity(count);
    for (i, (group, open)) in groups.into_iter().enumerate() {
        let last = if i + 1 == count {
            notifications.take().unwrap_or_default()
        } else {
            Vec::new()
        };
        if !open {
            let statement = group.into_iter().next().expect("a statement alone");
            out.push(Checked {
                fenced: false,
                rows: Vec::new(),
                statement,
            });
            continue;
        }
        let fence = fence.take();
        if group.is_empty() && fence.is_none() && last.is_empty() {
            continue;
        }
        out.push(joined(group, fence, last));
    }
    Joined { statements: out }
}

/// `WITH` queries for each statement, the fence's first; a select of the fence and the
/// notifications last. One statement with nothing to add goes as it is.
fn joined(
    group: Vec<Statement>,
    fence: Option<Fence<'_>>,
    notifications: Vec<(&str, String)>,
) -> Checked {
    let alone = group.len() == 1 && !group[0].needs_row;
    if alone && fence.is_none() && notifications.is_empty() {
        let statement = group.into_iter().next().expect("one statement");
        return Checked {
            statement,
            fenced: false,
            rows: Vec::new(),
        };
    }
    let fenced = fence.is_some();
    let mut rows = Vec::new();
    let mut sql = String::from("WITH ");
    let mut values: Vec<Val> = Vec::new();
    let mut queries = 0;
    let mut select: Vec<String> = Vec::new();
    if let Some(fence) = &fence {
        write!(
            sql,
            "fence AS (SELECT term FROM leader_lease WHERE name = 'engine' AND holder = ${} \
             AND term = ${} AND expires_at >= {NOW_MS} FOR SHARE)",
            values.len() + 1,
            values.len() + 2
        )
        .expect("writing to a String");
        values.push(Val::Str(fence.holder.to_string()));
        values.push(Val::I64(fence.term));
        queries += 1;
        select.push("(SELECT count(*) FROM fence) AS held".to_string());
    }
    for statement in group {
        if queries > 0 {
            sql.push_str(", ");
        }
        write!(sql, "s{queries} AS (").expect("writing to a String");
        push_renumbered(&mut sql, &statement.sql, values.len());
        if statement.needs_row {
            sql.push_str(" RETURNING 1");
            let column = format!("r{queries}");
            select.push(format!("(SELECT count(*) FROM s{queries}) AS {column}"));
            rows.push(column);
        }
        sql.push(')');
        values.extend(statement.values);
        queries += 1;
    }
    for (n, (channel, payload)) in notifications.into_iter().enumerate() {
        select.push(format!(
            "pg_notify(${}, ${}) IS NULL AS n{n}",
            values.len() + 1,
            values.len() + 2
        ));
        values.push(Val::Str(channel.to_string()));
        values.push(Val::Str(payload));
    }
    if select.is_empty() {
        select.push("1 AS done".to_string());
    }
    if queries == 0 {
        // Nothing to write or check: the select alone.
        sql.clear();
    } else {
        sql.push(' ');
    }
    write!(sql, "SELECT {}", select.join(", ")).expect("writing to a String");
    Checked {
        statement: Statement::new(sql, values),
        fenced,
        rows,
    }
}

/// The table a planned statement writes (`INSERT INTO t`, `UPDATE t`, `DELETE FROM t`);
/// None for any other, which then goes on its own.
fn table(sql: &str) -> Option<&str> {
    let mut words = sql.split_whitespace();
    match (words.next()?, words.next()?) {
        ("INSERT", "INTO") | ("DELETE", "FROM") => words.next(),
        ("UPDATE", table) => Some(table),
        _ => None,
    }
}

/// `sql` with each placeholder `$n` written as `$(n + offset)`, appended to `out`. Quoted
/// text is copied as it is.
fn push_renumbered(out: &mut String, sql: &str, offset: usize) {
    let bytes = sql.as_bytes();
    let (mut quoted, mut copied, mut i) = (false, 0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'$' if !quoted && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let end = (i + 1..bytes.len())
                    .find(|&j| !bytes[j].is_ascii_digit())
                    .unwrap_or(bytes.len());
                let n: usize = sql[i + 1..end].parse().expect("digits");
                out.push_str(&sql[copied..i]);
                write!(out, "${}", n + offset).expect("writing to a String");
                copied = end;
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(sql: &'static str, values: usize) -> Statement {
        Statement::new(sql, (0..values).map(|v| Val::I64(v as i64)).collect())
    }

    /// `statements` joined with engine e1's fence at term 7 and one notification; their SQL.
    fn joined_with_fence(statements: Vec<Statement>) -> (Joined, Vec<String>) {
        let joined = join(
            statements,
            Some(Fence {
                holder: "e1",
                term: 7,
            }),
            vec![("tocsin_inbox_done", "5".to_string())],
        );
        let sql = joined
            .statements
            .iter()
            .map(|s| s.statement.sql.to_string())
            .collect();
        (joined, sql)
    }

    /// A new alert's batch: one statement with the fence first, each write a `WITH` query
    /// with its placeholders numbered on, and the notification in the select.
    #[test]
    fn a_batch_on_distinct_tables_goes_as_one_statement() {
        let (joined, sql) = joined_with_fence(vec![
            statement("INSERT INTO incidents (id, data) VALUES ($1, $2)", 2),
            statement("UPDATE inbox SET reply = $1 WHERE id = $2", 2),
        ]);
        assert_eq!(sql.len(), 1);
        assert!(joined.statements[0].fenced);
        let sql = &sql[0];
        assert!(
            sql.starts_with("WITH fence AS (SELECT term FROM leader_lease WHERE"),
            "{sql}"
        );
        assert!(sql.contains("holder = $1 AND term = $2"), "{sql}");
        assert!(
            sql.contains(
                ", s1 AS (INSERT INTO incidents (id, data) VALUES ($3, $4)), \
                 s2 AS (UPDATE inbox SET reply = $5 WHERE id = $6) SELECT \
                 (SELECT count(*) FROM fence) AS held, pg_notify($7, $8) IS NULL AS n0"
            ),
            "{sql}"
        );
        assert_eq!(joined.statements[0].statement.values.len(), 8);
    }

    /// A table written twice (a paging row deleted, then written) starts the next statement;
    /// the fence goes with the first and the notification with the last.
    #[test]
    fn a_second_write_of_a_table_goes_in_the_next_statement() {
        let (_, sql) = joined_with_fence(vec![
            statement("DELETE FROM paging WHERE incident_id = $1", 1),
            statement("INSERT INTO timeline (data) VALUES ($1)", 1),
            statement("INSERT INTO paging (incident_id, data) VALUES ($1, $2)", 2),
        ]);
        assert_eq!(sql.len(), 2);
        assert!(sql[0].contains("fence AS") && sql[0].contains("DELETE FROM paging"));
        assert!(sql[0].ends_with("SELECT (SELECT count(*) FROM fence) AS held"));
        assert_eq!(
            sql[1],
            "WITH s0 AS (INSERT INTO paging (incident_id, data) VALUES ($1, $2)) \
             SELECT pg_notify($3, $4) IS NULL AS n0"
        );
    }

    /// A statement that writes no one table goes alone, as it is, between the fence's and
    /// the notifications' statements.
    #[test]
    fn a_statement_of_no_table_goes_alone() {
        let (joined, sql) =
            joined_with_fence(vec![statement("SELECT pg_advisory_xact_lock($1)", 1)]);
        assert_eq!(sql.len(), 3, "{sql:?}");
        assert!(sql[0].starts_with("WITH fence AS") && joined.statements[0].fenced);
        assert_eq!(sql[1], "SELECT pg_advisory_xact_lock($1)");
        assert_eq!(sql[2], "SELECT pg_notify($1, $2) IS NULL AS n0");
    }

    /// A query that needs a row returns its rows, and the select counts them.
    #[test]
    fn a_query_that_needs_a_row_has_its_rows_counted() {
        let joined = join(
            vec![
                Statement::needing_row(
                    "UPDATE outbox SET status = $1 WHERE id = $2",
                    vec![Val::I64(1), Val::I64(2)],
                ),
                statement("INSERT INTO timeline (data) VALUES ($1)", 1),
            ],
            None,
            Vec::new(),
        );
        let checked = &joined.statements[0];
        assert_eq!(checked.rows, vec!["r0".to_string()]);
        assert_eq!(
            checked.statement.sql,
            "WITH s0 AS (UPDATE outbox SET status = $1 WHERE id = $2 RETURNING 1), \
             s1 AS (INSERT INTO timeline (data) VALUES ($3)) SELECT (SELECT count(*) FROM s0) AS r0"
        );
    }

    /// Without a fence or notifications a lone statement goes as it is; quoted text keeps
    /// its dollar signs.
    #[test]
    fn a_lone_statement_goes_as_it_is_and_quoted_text_is_not_renumbered() {
        let joined = join(vec![statement("UPDATE t SET a = $1", 1)], None, Vec::new());
        assert!(!joined.statements[0].fenced);
        assert_eq!(joined.statements[0].statement.sql, "UPDATE t SET a = $1");
        let mut out = String::new();
        push_renumbered(&mut out, "SELECT '$1', $1, $12 ||'x'", 3);
        assert_eq!(out, "SELECT '$1', $4, $15 ||'x'");
    }
}
