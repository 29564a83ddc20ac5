//! The history benchmark's store on PostgreSQL (`STORE=postgres`): the same rows as the
//! SQLite build in `history.rs`, copied from the template incident with bulk SQL.

/// `ms` (a SQL expression, milliseconds) as the RFC 3339 text the engine writes, as JSON.
fn rfc3339(ms: &str) -> String {
    format!(
        "to_jsonb(to_char(to_timestamp(({ms}) / 1000.0) AT TIME ZONE 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))"
    )
}

/// Copy the template incident `t` into `incidents` incidents numbered on from it, opened
/// `step` ms apart from `first`, with `per` timeline rows each; remove the template's own
/// rows; analyze (as autovacuum does after such a load). The database's incidents and
/// timeline rows then.
pub async fn build(
    url: &str,
    t: i64,
    incidents: i64,
    per: i64,
    first: i64,
    step: i64,
) -> sqlx::Result<(i64, i64)> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let (opened, acked, resolved) = (
        rfc3339("s.o"),
        rfc3339("s.o + 60000"),
        rfc3339("s.o + 1800000"),
    );
    let pages: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM outbox WHERE incident_id = {t}"
    ))
    .fetch_one(&mut conn)
    .await?;
    let rows: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM timeline WHERE incident_id = {t}"
    ))
    .fetch_one(&mut conn)
    .await?;
    let note: i64 = sqlx::query_scalar(&format!(
        "SELECT COALESCE(MAX(k), 1) FROM (SELECT ROW_NUMBER() OVER (ORDER BY id) AS k, kind \
         FROM timeline WHERE incident_id = {t}) r WHERE kind = 'note'"
    ))
    .fetch_one(&mut conn)
    .await?;
    let sql = format!(
        "BEGIN;
         CREATE TEMP TABLE s AS SELECT n::bigint + {t} AS i, {first}::bigint + (n - 1)::bigint * {step} AS o
           FROM generate_series(1, {incidents}) n;
         INSERT INTO incidents (id, status, severity, queue, opened_at, data)
           SELECT s.i, t.status, t.severity, NULL, s.o,
             (t.data::jsonb || jsonb_build_object('id', s.i,
               'title', 'checkout answers 5xx (' || s.i || ')', 'opened_at', {opened},
               'acknowledged_at', {acked}, 'resolved_at', {resolved}))::text
           FROM s, (SELECT * FROM incidents WHERE id = {t}) t ORDER BY s.i;
         INSERT INTO impacts (id, incident_id, data)
           SELECT s.i, s.i, (t.data::jsonb || jsonb_build_object('id', s.i, 'incident_id', s.i,
               'started_at', {opened}, 'cleared_at', {resolved}))::text
           FROM s, (SELECT * FROM impacts WHERE incident_id = {t} LIMIT 1) t ORDER BY s.i;
         INSERT INTO incident_impacts (incident_id, impact_ids)
           SELECT i, '[' || i || ']' FROM s ORDER BY i;
         INSERT INTO paging (incident_id, data)
           SELECT s.i, t.data FROM s, (SELECT * FROM paging WHERE incident_id = {t}) t;
         CREATE TEMP TABLE p AS SELECT ROW_NUMBER() OVER (ORDER BY id) AS k, * FROM outbox
           WHERE incident_id = {t};
         INSERT INTO outbox (id, delivery_id, incident_id, channel, status, attempts,
             next_attempt_at, created_at, delivered_at, last_error, data)
           SELECT (s.i - 1) * {pages} + p.k, 'history-' || s.i || '-' || p.k, s.i, p.channel,
             'delivered', 1, s.o + p.k * 1000, s.o + p.k * 1000, s.o + p.k * 1000 + 50, NULL,
             jsonb_set(p.data::jsonb || jsonb_build_object('id', (s.i - 1) * {pages} + p.k,
               'delivery_id', 'history-' || s.i || '-' || p.k, 'incident_id', s.i),
               '{{payload,incident,id}}', to_jsonb(s.i))::text
           FROM s, p ORDER BY s.i, p.k;
         CREATE TEMP TABLE r AS SELECT ROW_NUMBER() OVER (ORDER BY id) AS k, kind, actor,
           message, data FROM timeline WHERE incident_id = {t};
         CREATE TEMP TABLE e (k BIGINT PRIMARY KEY, kind TEXT, actor TEXT, message TEXT, data TEXT);
         INSERT INTO e SELECT k, kind, actor, message, data FROM r WHERE k < {rows};
         INSERT INTO e SELECT f.k, r.kind, r.actor, 'checked the dashboards (' || f.k || ')', r.data
           FROM generate_series({rows}, {per} - 1) f(k), r WHERE r.k = {note};
         INSERT INTO e SELECT GREATEST({per}, {rows}), kind, actor, message, data FROM r
           WHERE k = {rows};
         INSERT INTO timeline (incident_id, at, kind, actor, message, data)
           SELECT s.i, s.o + e.k * 180000, e.kind, e.actor, e.message, e.data
           FROM s, e ORDER BY s.i, e.k;
         DELETE FROM timeline WHERE incident_id = {t};
         DELETE FROM outbox WHERE incident_id = {t};
         DELETE FROM impacts WHERE incident_id = {t};
         DELETE FROM incident_impacts WHERE incident_id = {t};
         DELETE FROM paging WHERE incident_id = {t};
         DELETE FROM incidents WHERE id = {t};
         DELETE FROM rule_states;
         DELETE FROM leases;
         COMMIT;
         ANALYZE;"
    );
    sqlx::raw_sql(&sql).execute(&mut conn).await?;
    let incidents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM incidents")
        .fetch_one(&mut conn)
        .await?;
    let timeline: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM timeline")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await.ok();
    Ok((incidents, timeline))
}
