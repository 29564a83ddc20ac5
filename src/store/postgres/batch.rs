//! An engine's batch in few round trips. Each statement sent is a trip to PostgreSQL and
//! back, and a page waits for its batch's commit, so the planned statements go joined: those
//! on distinct tables as one statement of data-modifying `WITH` queries, the leader's fence
//! and the inbox notifications in the first and last of them. A batch of one new alert is
//! then `BEGIN`, one statement and `COMMIT`.
//!
//! Statements on a table already in the statement being joined start the next one: the
//! queries of one statement all see the rows as they were before it, so two writes of one
//! table (a paging row deleted and written again, a second chunk of rows) keep their order.

use std::fmt::Write;

use super::NOW_MS;
use crate::store::statements::{Statement, Val};

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
    pub statements: Vec<Statement>,
    /// The statement whose one row says in its `held` column whether the fence held (1 or 0).
    pub fenced: Option<usize>,
}

/// Join `statements` (in order, each on one table) with the fence and the notifications,
/// each a channel and its payload, sent at the commit.
pub(in crate::store) fn join(
    statements: Vec<Statement>,
    fence: Option<Fence<'_>>,
    notifications: Vec<(&'static str, String)>,
) -> Joined {
    let mut groups: Vec<Vec<Statement>> = vec![Vec::new()];
    let mut tables: Vec<String> = Vec::new();
    let mut values = 0;
    for statement in statements {
        let table = table(&statement.sql).map(str::to_string);
        let last = groups.last().expect("one group at least");
        let fits = values + statement.values.len() <= MAX_VALUES;
        let joins = table.as_ref().is_some_and(|t| !tables.contains(t)) && fits;
        if !last.is_empty() && !joins {
            groups.push(Vec::new());
            tables.clear();
            values = 0;
        }
        values += statement.values.len();
        tables.extend(table);
        groups
            .last_mut()
            .expect("one group at least")
            .push(statement);
    }
    let fenced = fence.is_some().then_some(0);
    let count = groups.len();
    let mut fence = fence;
    let mut notifications = Some(notifications);
    let mut out = Vec::with_capacity(count);
    for (i, group) in groups.into_iter().enumerate() {
        let last = if i + 1 == count {
            notifications.take().unwrap_or_default()
        } else {
            Vec::new()
        };
        let fence = fence.take();
        if group.is_empty() && fence.is_none() && last.is_empty() {
            continue;
        }
        out.push(joined(group, fence, last));
    }
    Joined {
        statements: out,
        fenced,
    }
}

/// `WITH` queries for each statement, the fence's first; a select of the fence and the
/// notifications last. One statement with nothing to add goes as it is.
fn joined(
    group: Vec<Statement>,
    fence: Option<Fence<'_>>,
    notifications: Vec<(&str, String)>,
) -> Statement {
    if group.len() == 1 && fence.is_none() && notifications.is_empty() {
        return group.into_iter().next().expect("one statement");
    }
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
    Statement::new(sql, values)
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

    /// A new alert's batch: one statement with the fence first, each write a `WITH` query
    /// with its placeholders numbered on, and the notification in the select.
    #[test]
    fn a_batch_on_distinct_tables_goes_as_one_statement() {
        let joined = join(
            vec![
                statement("INSERT INTO incidents (id, data) VALUES ($1, $2)", 2),
                statement("UPDATE inbox SET reply = $1 WHERE id = $2", 2),
            ],
            Some(Fence {
                holder: "e1",
                term: 7,
            }),
            vec![("tocsin_inbox_done", "5".to_string())],
        );
        assert_eq!(joined.fenced, Some(0));
        assert_eq!(joined.statements.len(), 1);
        let sql = &joined.statements[0].sql;
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
        assert_eq!(joined.statements[0].values.len(), 8);
    }

    /// A table written twice (a paging row deleted, then written) starts the next statement;
    /// the fence goes with the first and the notification with the last.
    #[test]
    fn a_second_write_of_a_table_goes_in_the_next_statement() {
        let joined = join(
            vec![
                statement("DELETE FROM paging WHERE incident_id = $1", 1),
                statement("INSERT INTO timeline (data) VALUES ($1)", 1),
                statement("INSERT INTO paging (incident_id, data) VALUES ($1, $2)", 2),
            ],
            Some(Fence {
                holder: "e1",
                term: 7,
            }),
            vec![("tocsin_inbox_done", "5".to_string())],
        );
        let sql: Vec<&str> = joined.statements.iter().map(|s| s.sql.as_ref()).collect();
        assert_eq!(sql.len(), 2);
        assert!(sql[0].contains("fence AS") && sql[0].contains("DELETE FROM paging"));
        assert!(sql[0].ends_with("SELECT (SELECT count(*) FROM fence) AS held"));
        assert_eq!(
            sql[1],
            "WITH s0 AS (INSERT INTO paging (incident_id, data) VALUES ($1, $2)) \
             SELECT pg_notify($3, $4) IS NULL AS n0"
        );
    }

    /// Without a fence or notifications a lone statement goes as it is; quoted text keeps
    /// its dollar signs.
    #[test]
    fn a_lone_statement_goes_as_it_is_and_quoted_text_is_not_renumbered() {
        let joined = join(vec![statement("UPDATE t SET a = $1", 1)], None, Vec::new());
        assert_eq!(joined.fenced, None);
        assert_eq!(joined.statements[0].sql, "UPDATE t SET a = $1");
        let mut out = String::new();
        push_renumbered(&mut out, "SELECT '$1', $1, $12 ||'x'", 3);
        assert_eq!(out, "SELECT '$1', $4, $15 ||'x'");
    }
}
