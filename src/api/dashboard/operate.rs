//! The pages that operate tocsin at run time, each acting through the same functions as its
//! API: `/queues` (triage queues, take; `api::queues`), `/silences` (list, make one with
//! matchers prefilled from an incident, expire; `api::silences`), `/overrides` (per
//! schedule: list, add, delete; `api::overrides`) and `/audit` (`GET /api/v1/audit`).
//! Viewers see every page; the forms show only to the roles that may use them, and a post
//! without the role is refused naming the role needed.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::super::auth::{ClientAddress, Role};
use super::super::error::{reply_error, ApiError};
use super::super::incidents::parse_id;
use super::super::queues::queue_names;
use super::super::{cursor, overrides, silences, AppState};
use super::actions::{acting_caller, actor, FormBody};
use super::render::{age, page, time};
use super::{chrome, error_page, session, view, REFRESH_SECONDS};
use crate::config::{Duration, Matcher};
use crate::engine::{Input, Reply};

/// The outcome of a posted form: back to `to`, or the error on a page with a way back.
fn done(result: Result<(), ApiError>, to: &str) -> Response {
    match result {
        Ok(()) => Redirect::to(to).into_response(),
        Err(e) => error_page(e, to),
    }
}

// ---- Triage queues ----

#[derive(Serialize)]
struct Waiting {
    id: i64,
    title: String,
    severity: u8,
    services: Vec<String>,
    opened_at: String,
    waiting: String,
}

#[derive(Serialize)]
struct Taken {
    id: i64,
    title: String,
    queue: String,
    by: String,
    at: String,
    ago: String,
    waited: String,
    status: &'static str,
}

pub(super) async fn queues(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(login) = session::login_needed(&state, &headers, "/queues") {
        return login;
    }
    queues_page(&state, &headers)
        .await
        .unwrap_or_else(|e| error_page(e, "/"))
}

async fn queues_page(state: &AppState, headers: &HeaderMap) -> Result<Response, ApiError> {
    let setup = state.setup();
    let now = state.clock.now();
    let mut queues = Vec::new();
    for name in queue_names(&setup) {
        let waiting: Vec<Waiting> = state
            .store
            .queue(&name)
            .await?
            .iter()
            .filter(|i| i.assignee.is_none())
            .map(|i| Waiting {
                id: i.id,
                title: i.title.to_string(),
                severity: i.severity,
                services: i.services.iter().cloned().collect(),
                opened_at: time(i.opened_at),
                waiting: age(now, i.opened_at),
            })
            .collect();
        queues.push(context! { name => name, waiting => waiting });
    }
    // Who took what: the open incidents someone took from a queue, newest take first.
    let open = state
        .store
        .list_incidents(&crate::store::IncidentFilter {
            open: true,
            limit: Some(500),
            ..Default::default()
        })
        .await?;
    let mut taken = Vec::new();
    for incident in open.iter().filter(|i| i.assignee.is_some()) {
        let entries = state.store.timeline_of(incident.id).await?;
        let Some(take) = entries.iter().rev().find(|e| e.kind == "taken") else {
            continue;
        };
        let waited = take.data["waited_seconds"].as_i64().unwrap_or(0);
        taken.push(Taken {
            id: incident.id,
            title: incident.title.to_string(),
            queue: take.data["queue"].as_str().unwrap_or("").to_string(),
            by: take.actor.clone(),
            at: time(take.at),
            ago: age(now, take.at),
            waited: age(take.at, take.at - chrono::Duration::seconds(waited)),
            status: incident.status.as_str(),
        });
    }
    taken.sort_by(|a, b| b.at.cmp(&a.at));
    Ok(page(
        StatusCode::OK,
        "queues.html",
        context! {
            chrome => super::chrome(state, headers, "/queues", REFRESH_SECONDS),
            queues => queues,
            taken => taken,
        },
    ))
}

#[derive(Deserialize)]
pub(super) struct ByOnly {
    #[serde(default)]
    by: String,
}

/// Take the oldest entry of a queue: it becomes the taker's (its assignee).
pub(super) async fn take(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    FormBody(form): FormBody<ByOnly>,
) -> Response {
    let caller = match acting_caller(&state, &headers, address, "/queues") {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let result = async {
        caller.need(Role::Responder)?;
        if !queue_names(&state.setup()).contains(&name) {
            return Err(ApiError::not_found(format!(
                "no queue {name:?}: no route names it"
            )));
        }
        let by = actor(&caller, &headers, &form.by)?;
        let input = Input::TakeFromQueue {
            queue: name.clone(),
            by: by.clone(),
        };
        let Reply::Incident(id) = reply_error(state.engine.send(input).await?)? else {
            return Err(ApiError::internal("the engine did not say which incident"));
        };
        let target = format!("incident {id}");
        let detail = format!("from triage queue {name}");
        super::super::audit::record(&state, &caller, &by, "take", &target, &detail).await?;
        Ok(())
    }
    .await;
    done(result, "/queues")
}

// ---- Silences ----

#[derive(Serialize)]
struct SilenceRow {
    id: String,
    state: &'static str,
    matchers: Vec<String>,
    starts_at: String,
    ends_at: String,
    created_by: String,
    comment: String,
    /// The caller may expire it: their own, or any with the admin role.
    can_expire: bool,
}

#[derive(Deserialize, Default)]
pub(super) struct NewSilenceQuery {
    #[serde(default)]
    incident: String,
}

pub(super) async fn silences(State(state): State<AppState>, headers: HeaderMap) -> Response {
    silences_page(&state, &headers, None, Vec::new()).await
}

/// The form to silence an incident, its matchers prefilled from the incident.
pub(super) async fn new_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NewSilenceQuery>,
) -> Response {
    let prefill = async {
        let id = parse_id(&q.incident)?;
        let incident = state
            .store
            .incident(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))?;
        Ok::<_, ApiError>((id, prefill_matchers(&incident)))
    }
    .await;
    match prefill {
        Ok((id, matchers)) => silences_page(&state, &headers, Some(id), matchers).await,
        Err(e) => error_page(e, "/silences"),
    }
}

/// `value` as a regex alternative, taken literally (names rarely hold metacharacters, and
/// a `-` needs no escape outside a class, so the usual `china-east` reads as it is).
fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Matchers that hold `incident` and what is like it: its alert name, and its services and
/// regions (a regex of them when several).
pub(super) fn prefill_matchers(incident: &crate::incident::Incident) -> Vec<String> {
    let quoted = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = Vec::new();
    if let Some(name) = incident.labels.get("alertname") {
        out.push(format!("alertname=\"{}\"", quoted(name)));
    }
    for (label, names) in [
        ("service", &incident.services),
        ("region", &incident.regions),
    ] {
        let names: Vec<&String> = names.iter().collect();
        match names.as_slice() {
            [] => {}
            [one] => out.push(format!("{label}=\"{}\"", quoted(one))),
            many => {
                let alternatives: Vec<String> = many.iter().map(|n| literal(n)).collect();
                out.push(format!("{label}=~\"{}\"", quoted(&alternatives.join("|"))));
            }
        }
    }
    out
}

async fn silences_page(
    state: &AppState,
    headers: &HeaderMap,
    incident: Option<i64>,
    matchers: Vec<String>,
) -> Response {
    let here = match incident {
        Some(id) => format!("/silences/new?incident={id}"),
        None => "/silences".to_string(),
    };
    if let Some(login) = session::login_needed(state, headers, &here) {
        return login;
    }
    let now = state.clock.now();
    let caller = session::caller(state, headers, String::new());
    let me = caller.as_ref().and_then(|c| c.name.clone());
    let admin = caller.as_ref().is_some_and(|c| c.role.grants(Role::Admin));
    let responder = caller
        .as_ref()
        .is_some_and(|c| c.role.grants(Role::Responder));
    let listed = match state
        .store
        .silences(Some(now - chrono::Duration::days(7)))
        .await
    {
        Ok(listed) => listed,
        Err(e) => return error_page(e.into(), "/"),
    };
    let mut rows: Vec<SilenceRow> = listed
        .into_iter()
        .map(|s| {
            let state = s.state(now).as_str();
            let own = me.as_deref() == Some(s.created_by.as_str());
            SilenceRow {
                can_expire: state != "expired" && responder && (own || admin),
                state,
                matchers: s.matchers.iter().map(|m| m.to_string()).collect(),
                starts_at: time(s.starts_at),
                ends_at: time(s.ends_at),
                created_by: s.created_by,
                comment: s.comment,
                id: s.id,
            }
        })
        .collect();
    // Active first, then those ahead, then the ended; newest end first within each.
    rows.sort_by(|a, b| {
        let rank = |s: &str| match s {
            "active" => 0,
            "pending" => 1,
            _ => 2,
        };
        (rank(a.state), &b.ends_at).cmp(&(rank(b.state), &a.ends_at))
    });
    page(
        StatusCode::OK,
        "silences.html",
        context! {
            chrome => chrome(state, headers, &here, 0),
            silences => rows,
            incident => incident,
            matchers => matchers.join("\n"),
        },
    )
}

#[derive(Deserialize)]
pub(super) struct SilenceForm {
    #[serde(default)]
    matchers: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    by: String,
    /// The incident the silence was made from, to go back to.
    #[serde(default)]
    incident: String,
}

pub(super) async fn create_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    FormBody(form): FormBody<SilenceForm>,
) -> Response {
    let back = match parse_id(&form.incident) {
        Ok(id) => format!("/incidents/{id}"),
        Err(_) => "/silences".to_string(),
    };
    let caller = match acting_caller(&state, &headers, address, &back) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let result =
        async {
            caller.need(Role::Responder)?;
            let by = actor(&caller, &headers, &form.by)?;
            let mut matchers = Vec::new();
            for (n, line) in form.matchers.lines().enumerate() {
                let line = line.trim().trim_end_matches(',');
                if line.is_empty() {
                    continue;
                }
                matchers.push(line.parse::<Matcher>().map_err(|e| {
                    ApiError::unprocessable(format!("matcher on line {}: {e}", n + 1))
                })?);
            }
            let duration: Duration = form.duration.trim().parse().map_err(|_| {
                ApiError::unprocessable(format!(
                    "duration {:?} is not a duration such as 2h or 30m",
                    form.duration.trim()
                ))
            })?;
            let now = state.clock.now();
            let starts_at = super::history::form_time("starts_at", &form.starts_at)?;
            let ends_at = starts_at.unwrap_or(now) + duration.chrono();
            let silence = silences::build(
                matchers,
                starts_at,
                ends_at,
                by,
                form.comment.trim().to_string(),
                now,
            )?;
            silences::put(&state, silence.clone()).await?;
            silences::audit_made(&state, &caller, &silence).await?;
            Ok(())
        }
        .await;
    match result {
        Ok(()) => Redirect::to("/silences").into_response(),
        Err(e) => error_page(e, &back),
    }
}

pub(super) async fn expire_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    FormBody(_form): FormBody<ByOnly>,
) -> Response {
    let caller = match acting_caller(&state, &headers, address, "/silences") {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let result = async {
        caller.need(Role::Responder)?;
        silences::expire_now(&state, &caller, &id).await.map(drop)
    }
    .await;
    done(result, "/silences")
}

// ---- Overrides ----

#[derive(Serialize)]
struct OverrideRow {
    id: String,
    responder: String,
    start: String,
    end: String,
    created_by: String,
    current: bool,
}

pub(super) async fn overrides(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(login) = session::login_needed(&state, &headers, "/overrides") {
        return login;
    }
    overrides_page(&state, &headers)
        .await
        .unwrap_or_else(|e| error_page(e, "/"))
}

async fn overrides_page(state: &AppState, headers: &HeaderMap) -> Result<Response, ApiError> {
    let setup = state.setup();
    let now = state.clock.now();
    let paging = overrides::live_paging(state).await?;
    let oncall = super::super::oncall::on_call(&paging, now);
    let mut responders: Vec<(String, String)> = setup
        .paging
        .responders
        .keys()
        .map(|id| (id.clone(), view::person(&setup, id)))
        .collect();
    responders.sort();
    let mut schedules = Vec::new();
    for rotation in &setup.paging.rotations {
        let rows: Vec<OverrideRow> = state
            .store
            .overrides(Some(&rotation.name))
            .await?
            .into_iter()
            .filter(|o| o.end > now)
            .map(|o| OverrideRow {
                current: o.start <= now,
                responder: view::person(&setup, &o.responder),
                start: time(o.start),
                end: time(o.end),
                created_by: o.created_by,
                id: o.id,
            })
            .collect();
        let now_on = oncall
            .iter()
            .find(|e| e.schedule == rotation.name)
            .and_then(|e| e.responder.as_deref())
            .map(|r| view::person(&setup, r));
        schedules.push(context! {
            name => rotation.name.clone(),
            timezone => rotation.tz.name(),
            on_call => now_on,
            overrides => rows,
        });
    }
    Ok(page(
        StatusCode::OK,
        "overrides.html",
        context! {
            chrome => chrome(state, headers, "/overrides", 0),
            schedules => schedules,
            responders => responders,
        },
    ))
}

#[derive(Deserialize)]
pub(super) struct OverrideForm {
    #[serde(default)]
    responder: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    by: String,
}

pub(super) async fn add_override(
    State(state): State<AppState>,
    Path(schedule): Path<String>,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    FormBody(form): FormBody<OverrideForm>,
) -> Response {
    let caller = match acting_caller(&state, &headers, address, "/overrides") {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let result = async {
        caller.need(Role::Admin)?;
        let by = actor(&caller, &headers, &form.by)?;
        let when = |name: &str, text: &str| -> Result<DateTime<Utc>, ApiError> {
            super::history::form_time(name, text)?
                .ok_or_else(|| ApiError::unprocessable(format!("`{name}` is needed")))
        };
        let start = when("start", &form.start)?;
        let end = when("end", &form.end)?;
        overrides::add(
            &state,
            &caller,
            schedule,
            form.responder.trim().to_string(),
            start,
            end,
            &by,
        )
        .await
        .map(drop)
    }
    .await;
    done(result, "/overrides")
}

pub(super) async fn delete_override(
    State(state): State<AppState>,
    Path((schedule, id)): Path<(String, String)>,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    FormBody(_form): FormBody<ByOnly>,
) -> Response {
    let caller = match acting_caller(&state, &headers, address, "/overrides") {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let result = async {
        caller.need(Role::Admin)?;
        overrides::delete_one(&state, &caller, &schedule, &id)
            .await
            .map(drop)
    }
    .await;
    done(result, "/overrides")
}

// ---- Audit log ----

#[derive(Deserialize, Default)]
pub(super) struct AuditQuery {
    #[serde(default)]
    cursor: String,
}

#[derive(Serialize)]
struct AuditRow {
    id: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    detail: String,
    address: String,
}

/// Entries a page of the audit log shows.
const AUDIT_PAGE: i64 = 50;

pub(super) async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    if let Some(login) = session::login_needed(&state, &headers, "/audit") {
        return login;
    }
    let read = async {
        let before = cursor::cursor(Some(q.cursor.trim()))?;
        let entries = state.store.audit_entries(before, AUDIT_PAGE + 1).await?;
        Ok::<_, ApiError>(cursor::page(entries, AUDIT_PAGE, |e| e.id))
    }
    .await;
    let (entries, next) = match read {
        Ok(read) => read,
        Err(e) => return error_page(e, "/audit"),
    };
    let rows: Vec<AuditRow> = entries
        .into_iter()
        .map(|e| AuditRow {
            id: e.id,
            at: time(e.at),
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: e.detail,
            address: e.address,
        })
        .collect();
    page(
        StatusCode::OK,
        "audit.html",
        context! {
            chrome => chrome(&state, &headers, "/audit", 0),
            entries => rows,
            older => next.map(|n| format!("/audit?cursor={n}")),
            newest => (!q.cursor.trim().is_empty()).then_some("/audit"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silences_are_prefilled_with_what_the_incident_hits() {
        let mut incident = crate::incident::Incident::opened_by(
            1,
            &crate::incident::Impact {
                id: 1,
                incident_id: 1,
                rule: "r".into(),
                fingerprint: crate::signal::Fingerprint(1),
                source: crate::signal::SourceKind::Alert,
                kind: crate::config::ImpactKind::Outage,
                sla_breach: true,
                business_impact: None,
                severity_floor: None,
                service: Some("storage".into()),
                region: Some("china-east".into()),
                customers: Default::default(),
                labels: Default::default(),
                summary: "s".into(),
                started_at: Utc::now(),
                cleared_at: None,
                firing_at_resolve: false,
                annotations: Default::default(),
                cri: None,
                inhibited_by: None,
                sla_measured: None,
            },
            1,
            Utc::now(),
        );
        assert_eq!(
            prefill_matchers(&incident),
            ["service=\"storage\"", "region=\"china-east\""]
        );
        incident.regions.insert("china-north".into());
        let matchers = prefill_matchers(&incident);
        assert_eq!(matchers[1], "region=~\"china-east|china-north\"");
        // Each is a matcher the silences form takes back.
        for m in &matchers {
            m.parse::<Matcher>().unwrap();
        }
    }
}
