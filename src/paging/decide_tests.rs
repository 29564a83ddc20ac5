use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::config::{Duration, Matcher, ResponderConfig, RouteConfig, SilenceConfig};
use crate::paging::escalate::{LevelSnapshot, PolicySnapshot};
use crate::paging::window::Window;
use crate::paging::Channel;

/// 2026-01-05T00:00Z, a Monday, plus `minutes`.
fn t(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_571_200 + minutes * 60, 0).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LabelSet::from(map)
}

fn route_to(matchers: &[(&str, &str)], policy: Option<&str>, queue: Option<&str>) -> RouteConfig {
    RouteConfig {
        matchers: matchers.iter().map(|(k, v)| Matcher::equal(k, v)).collect(),
        policy: policy.map(str::to_string),
        queue: queue.map(str::to_string),
        active_during: Vec::new(),
    }
}

fn responder(id: &str) -> ResponderConfig {
    ResponderConfig {
        id: id.into(),
        name: None,
        email: Some(format!("{id}@example.com")),
        webhook: None,
        timezone: None,
        notify: None,
    }
}

/// Routes: Sev 4 to the triage queue, service "ghost" to a policy nobody configured,
/// everything else to policy "storage" (level 0: ann and a missing schedule, level 1 after
/// 15 minutes: bob; acks time out after 30 minutes).
fn paging() -> Paging {
    let policy = PolicySnapshot {
        name: "storage".into(),
        levels: vec![
            LevelSnapshot {
                after: Duration::ZERO,
                notify: vec!["responder:ann".into(), "schedule:nobody".into()],
            },
            LevelSnapshot {
                after: Duration::from_secs(900),
                notify: vec!["responder:bob".into()],
            },
        ],
        repeat: 0,
        repeat_after: Duration::from_secs(900),
        ack_timeout: Some(Duration::from_secs(1800)),
    };
    Paging {
        routes: vec![
            route_to(&[("severity", "4")], None, Some("triage")),
            route_to(&[("service", "ghost")], Some("ghost"), None),
            route_to(&[], Some("storage"), None),
        ],
        policies: [("storage".to_string(), Arc::new(policy))].into(),
        windows: [(
            "office".to_string(),
            Window {
                name: "office".into(),
                tz: "UTC".parse().unwrap(),
                start: "0 0 9 * * Mon-Fri".parse().unwrap(),
                duration: "8h".parse().unwrap(),
            },
        )]
        .into(),
        rotations: Vec::new(),
        silences: vec![SilenceConfig {
            matchers: vec![Matcher::equal("service", "hushed")],
            window: None,
            comment: Some("migration".into()),
        }],
        live_silences: Vec::new(),
        responders: [("ann", responder("ann")), ("bob", responder("bob"))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

fn escalating(paging: &Paging, labels: &LabelSet, now: DateTime<Utc>) -> PagingState {
    let Routing::Escalate { escalation, .. } =
        route(paging, labels, 2, None, PageEvent::Triggered, now)
    else {
        panic!("not routed to a policy");
    };
    PagingState {
        escalation: Some(escalation),
        ..PagingState::default()
    }
}

fn levels(pages: &[LevelPage]) -> Vec<(usize, PageEvent)> {
    pages.iter().map(|p| (p.level, p.event)).collect()
}

#[test]
fn the_route_decides_queue_policy_or_nothing() {
    let mut paging = paging();
    let storage = labels(&[("service", "storage")]);
    let ghost = labels(&[("service", "ghost")]);
    let decide = |paging: &Paging, labels: &LabelSet, severity, queue| match route(
        paging,
        labels,
        severity,
        queue,
        PageEvent::Triggered,
        t(0),
    ) {
        Routing::Escalate { route, policy, .. } => format!("escalate {route} {policy}"),
        other => format!("{other:?}"),
    };
    let cases: [(&LabelSet, u8, Option<&str>, &str); 4] = [
        (&storage, 2, None, "escalate 2 storage"),
        (
            &storage,
            4,
            None,
            r#"Queued { route: 0, queue: "triage", changed: true }"#,
        ),
        (
            &storage,
            4,
            Some("triage"),
            r#"Queued { route: 0, queue: "triage", changed: false }"#,
        ),
        (
            &ghost,
            1,
            None,
            r#"UnknownPolicy { route: 1, policy: "ghost" }"#,
        ),
    ];
    for (labels, severity, queue, expected) in cases {
        assert_eq!(decide(&paging, labels, severity, queue), expected);
    }
    paging.routes.pop();
    assert_eq!(decide(&paging, &storage, 2, None), "Unrouted");
    // Lowered to Sev 4 the route queues it: paging starts over; at Sev 3 it keeps on.
    let paging = self::paging();
    assert!(reroute_after_lowering(&paging, &storage, 4));
    assert!(!reroute_after_lowering(&paging, &storage, 3));
}

#[test]
fn escalation_pages_each_level_when_due_and_wakes_for_the_next() {
    let paging = paging();
    let storage = labels(&[("service", "storage")]);
    let mut state = escalating(&paging, &storage, t(0));
    let at = |state: &mut PagingState, minutes| match step(
        state,
        &paging,
        &storage,
        2,
        false,
        &[],
        t(minutes),
    ) {
        Some(Step::Advance {
            pages,
            paused: None,
        }) => levels(&pages),
        other => panic!("{other:?}"),
    };
    assert_eq!(at(&mut state, 0), [(0, PageEvent::Triggered)]);
    assert_eq!(
        wake_at(&state, &paging, Some((&storage, 2)), t(0)),
        Some(t(15))
    );
    assert_eq!(at(&mut state, 5), []);
    assert_eq!(at(&mut state, 15), [(1, PageEvent::Escalated)]);
    // No repeats: nothing more to wake for.
    assert_eq!(wake_at(&state, &paging, Some((&storage, 2)), t(15)), None);
    // Without an escalation there is nothing to step.
    let mut idle = PagingState::default();
    assert_eq!(
        step(&mut idle, &paging, &storage, 2, false, &[], t(0)),
        None
    );
}

#[test]
fn an_ack_holds_paging_until_it_lapses() {
    let paging = paging();
    let storage = labels(&[("service", "storage")]);
    let mut state = escalating(&paging, &storage, t(0));
    step(&mut state, &paging, &storage, 2, false, &[], t(0));
    state.escalation.as_mut().unwrap().acknowledge(t(5));
    assert_eq!(
        step(&mut state, &paging, &storage, 2, true, &[], t(20)),
        Some(Step::HeldByAck)
    );
    let Some(Step::AckLapsed { pages }) = step(&mut state, &paging, &storage, 2, true, &[], t(35))
    else {
        panic!("the ack did not lapse");
    };
    // The level paged last is paged again.
    assert_eq!(levels(&pages), [(0, PageEvent::Escalated)]);
}

#[test]
fn a_run_time_silence_holds_pages_until_it_ends_then_paging_starts() {
    let base = paging();
    let storage = labels(&[("service", "storage")]);
    let silence = crate::paging::Silence {
        id: "s-1".into(),
        matchers: vec![Matcher::equal("service", "storage")],
        starts_at: t(0),
        ends_at: t(30),
        created_by: "alice".into(),
        comment: "disk swap".into(),
        updated_at: t(0),
    };
    let paging = base.with_live(&[silence], &[]);
    let targets = vec![crate::paging::route::route_labels(&storage, 2)];
    let mut state = escalating(&paging, &storage, t(0));
    let held = |state: &mut PagingState, minutes| match step(
        state,
        &paging,
        &storage,
        2,
        false,
        &targets,
        t(minutes),
    ) {
        Some(Step::Held {
            silence,
            until,
            first,
            ..
        }) => {
            assert_eq!((silence.as_str(), until), ("s-1", t(30)));
            first
        }
        other => panic!("{other:?}"),
    };
    assert!(held(&mut state, 0));
    assert!(!held(&mut state, 10));
    assert_eq!(state.held_by.as_deref(), Some("s-1"));
    assert_eq!(
        wake_at(&state, &paging, Some((&storage, 2)), t(10)),
        Some(t(30))
    );
    // Its end: the first level is paged.
    let Some(Step::Advance { pages, .. }) =
        step(&mut state, &paging, &storage, 2, false, &targets, t(30))
    else {
        panic!("not paged after the silence");
    };
    assert_eq!(levels(&pages), [(0, PageEvent::Triggered)]);
    assert_eq!(state.held_by, None);
    // Without targets (an impact it does not match), nothing holds.
    let mut fresh = escalating(&paging, &storage, t(0));
    assert!(matches!(
        step(&mut fresh, &paging, &storage, 2, false, &[], t(1)),
        Some(Step::Advance { .. })
    ));
}

#[test]
fn a_silence_holds_pages_and_is_noted_once() {
    let paging = paging();
    let hushed = labels(&[("service", "hushed")]);
    let mut state = escalating(&paging, &hushed, t(0));
    let firsts: Vec<bool> = (0..2)
        .map(
            |minutes| match step(&mut state, &paging, &hushed, 2, false, &[], t(minutes)) {
                Some(Step::Silenced {
                    silence: 0,
                    comment,
                    until: None,
                    first,
                }) => {
                    assert_eq!(comment.as_deref(), Some("migration"));
                    first
                }
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert_eq!(firsts, [true, false]);
    assert_eq!(state.silenced_by, Some(0));
    // A silence without a window has no end to wake for.
    assert_eq!(wake_at(&state, &paging, Some((&hushed, 2)), t(1)), None);
}

#[test]
fn outside_its_windows_escalation_pauses_and_says_until_when() {
    let mut paging = paging();
    paging.routes[2].active_during = vec!["office".into()];
    let storage = labels(&[("service", "storage")]);
    let mut state = escalating(&paging, &storage, t(0));
    // Monday 00:00 UTC: the office opens at 09:00.
    let Some(Step::Advance { pages, paused }) =
        step(&mut state, &paging, &storage, 2, false, &[], t(0))
    else {
        panic!("no step");
    };
    assert_eq!(levels(&pages), []);
    assert_eq!(
        paused,
        Some(Pause {
            windows: "office".into(),
            until: Some(t(9 * 60)),
        })
    );
    // Noted once.
    let Some(Step::Advance { paused, .. }) =
        step(&mut state, &paging, &storage, 2, false, &[], t(1))
    else {
        panic!("no step");
    };
    assert_eq!(paused, None);
    assert_eq!(
        wake_at(&state, &paging, Some((&storage, 2)), t(1)),
        Some(t(9 * 60))
    );
    let Some(Step::Advance { pages, .. }) =
        step(&mut state, &paging, &storage, 2, false, &[], t(9 * 60))
    else {
        panic!("no step");
    };
    assert_eq!(levels(&pages), [(0, PageEvent::Triggered)]);
}

#[test]
fn a_level_reaches_its_recipients_and_names_who_it_cannot() {
    let paging = paging();
    let state = escalating(&paging, &labels(&[]), t(0));
    let escalation = state.escalation.as_ref().unwrap();
    let pages = level(&paging, escalation, 0, t(0)).unwrap();
    assert_eq!(pages.policy, "storage");
    assert_eq!(
        pages
            .recipients
            .iter()
            .map(|r| (r.id.as_str(), r.channel))
            .collect::<Vec<_>>(),
        [("ann", Channel::Email)]
    );
    assert_eq!(
        pages.skipped,
        [(
            "schedule:nobody".to_string(),
            "schedule \"nobody\" is not configured".to_string()
        )]
    );
    assert_eq!(level(&paging, escalation, 2, t(0)), None);
}

#[test]
fn a_breach_pages_once_and_a_failed_last_level_hurries() {
    let paging = paging();
    let storage = labels(&[]);
    let mut state = escalating(&paging, &storage, t(0));
    step(&mut state, &paging, &storage, 2, false, &[], t(0));
    assert_eq!(response_breached(&mut state), Some(vec![0, 1]));
    assert_eq!(response_breached(&mut state), None);
    assert_eq!(response_breached(&mut PagingState::default()), Some(vec![]));
    // Level 0 was paged last: its failure moves on at once; an older level's does not.
    assert!(!delivery_given_up(&mut state, None, t(1)));
    assert!(!delivery_given_up(&mut state, Some(1), t(1)));
    assert!(delivery_given_up(&mut state, Some(0), t(1)));
    assert_eq!(wake_at(&state, &paging, None, t(1)), Some(t(1)));
}

#[test]
fn everyone_paged_hears_of_the_ack() {
    let paging = paging();
    let mut state = escalating(&paging, &labels(&[]), t(0));
    assert_eq!(notice(&state), None);
    let ann = level(&paging, state.escalation.as_ref().unwrap(), 0, t(0))
        .unwrap()
        .recipients;
    for recipient in ann.iter().chain(&ann) {
        state.add_paged(recipient.clone());
    }
    assert_eq!(
        notice(&state),
        Some(Notice {
            recipients: ann,
            policy: Some("storage".into()),
            level: None,
        })
    );
}

fn person(id: &str) -> Recipient {
    Recipient {
        id: id.into(),
        channel: Channel::Email,
        address: format!("{id}@example.com"),
    }
}

#[test]
fn updates_go_at_most_once_an_interval_folded_and_merges_at_once() {
    let minute = chrono::Duration::minutes(1);
    let mut state = PagingState::default();
    // Nobody paged yet: the first page will say it all.
    assert_eq!(
        update(&mut state, PageEvent::ImpactAdded, minute, t(0)),
        Update::Nobody
    );
    state.add_paged(person("ann"));
    let Update::Send { event, notice } = update(&mut state, PageEvent::ImpactAdded, minute, t(1))
    else {
        panic!("not sent");
    };
    assert_eq!(
        (event, notice.recipients),
        (PageEvent::ImpactAdded, vec![person("ann")])
    );
    // Within the minute: held, and a reopen outweighs a new impact held with it.
    let second = t(1) + chrono::Duration::seconds(20);
    assert_eq!(
        update(&mut state, PageEvent::Reopened, minute, second),
        Update::Held { until: t(2) }
    );
    assert_eq!(
        update(&mut state, PageEvent::ImpactAdded, minute, second),
        Update::Held { until: t(2) }
    );
    assert_eq!(update_due(&state, minute), Some(t(2)));
    assert_eq!(
        held_update(&mut state, minute, second),
        Update::Held { until: t(2) }
    );
    assert!(matches!(
        held_update(&mut state, minute, t(2)),
        Update::Send {
            event: PageEvent::Reopened,
            ..
        }
    ));
    assert_eq!(update_due(&state, minute), None);
    assert_eq!(held_update(&mut state, minute, t(3)), Update::Nobody);
    // A merge is never held, and what it tells replaces what was waiting.
    assert!(matches!(
        update(&mut state, PageEvent::ImpactAdded, minute, t(2)),
        Update::Held { .. }
    ));
    assert!(matches!(
        update(&mut state, PageEvent::Merged, minute, t(2)),
        Update::Send {
            event: PageEvent::Merged,
            ..
        }
    ));
    assert_eq!(state.pending_update, None);
}

#[test]
fn a_notice_leaves_out_who_was_just_paged() {
    let mut state = PagingState::default();
    state.add_paged(person("ann"));
    state.add_paged(person("bob"));
    let notice = notice(&state).unwrap();
    let left = notice.clone().without(|r| r.id == "ann").unwrap();
    assert_eq!(left.recipients, vec![person("bob")]);
    assert_eq!(notice.without(|_| true), None);
}

#[test]
fn a_rise_while_acknowledged_tells_the_acknowledger_and_pages_only_new_people() {
    let paged = vec![person("ann"), person("bob")];
    // The new first level reaches ann (paged already) and cat (not yet); bob acknowledged.
    let level0 = vec![person("ann"), person("cat")];
    assert_eq!(
        raised_while_acknowledged(level0.clone(), &paged, vec![person("bob")], None),
        vec![person("bob"), person("cat")]
    );
    // Bob raised it himself: he is not paged about his own change.
    assert_eq!(
        raised_while_acknowledged(level0, &paged, vec![person("bob")], Some("bob")),
        vec![person("cat")]
    );
}

#[test]
fn an_escalation_started_while_acknowledged_waits_for_the_ack_to_lapse() {
    let paging = paging();
    let Routing::Escalate { escalation, .. } = route(
        &paging,
        &labels(&[("service", "storage")]),
        1,
        None,
        PageEvent::SeverityRaised,
        t(10),
    ) else {
        panic!("not routed to a policy");
    };
    let mut state = PagingState {
        escalation: Some(Escalation::start_acknowledged(
            escalation.policy,
            escalation.active_during,
            t(10),
            t(5),
        )),
        ..PagingState::default()
    };
    let storage = labels(&[("service", "storage")]);
    // Level 1 is due 15 minutes on, but the acknowledgement (at 5) holds it until 35.
    assert_eq!(
        step(&mut state, &paging, &storage, 1, true, &[], t(30)),
        Some(Step::HeldByAck)
    );
    assert_eq!(
        wake_at(&state, &paging, Some((&storage, 1)), t(30)),
        Some(t(35))
    );
    let Some(Step::AckLapsed { pages }) = step(&mut state, &paging, &storage, 1, true, &[], t(35))
    else {
        panic!("the acknowledgement did not lapse");
    };
    assert_eq!(levels(&pages), vec![(0, PageEvent::Escalated)]);
}

#[test]
fn escalating_by_hand_pages_the_next_level_at_once_until_none_is_left() {
    let paging = paging();
    let storage = labels(&[("service", "storage")]);
    let mut state = escalating(&paging, &storage, t(0));
    // Level 0 is due at once; escalating by hand before it is paged pages it.
    let first = escalate_now(&mut state, t(0)).unwrap();
    assert_eq!((first.level, first.event), (0, PageEvent::Escalated));
    // Then level 1, fifteen minutes early, even while acknowledged.
    state.escalation.as_mut().unwrap().acknowledge(t(1));
    let second = escalate_now(&mut state, t(1)).unwrap();
    assert_eq!(second.level, 1);
    assert_eq!(
        escalate_now(&mut state, t(2)),
        Err(EscalateRefusal::NoLevelLeft {
            policy: "storage".into(),
            levels: 2
        })
    );
    assert_eq!(
        EscalateRefusal::NoLevelLeft {
            policy: "storage".into(),
            levels: 2
        }
        .to_string(),
        "no level is left: all 2 levels of policy storage were paged"
    );
    let mut queued = PagingState::default();
    assert_eq!(
        escalate_now(&mut queued, t(0)),
        Err(EscalateRefusal::NoEscalation)
    );
}

#[test]
fn escalating_by_hand_carries_on_from_the_level_it_paged() {
    let paging = paging();
    let storage = labels(&[("service", "storage")]);
    let mut state = escalating(&paging, &storage, t(0));
    let Some(Step::Advance { pages, .. }) =
        step(&mut state, &paging, &storage, 2, false, &[], t(0))
    else {
        panic!("level 0 is paged");
    };
    assert_eq!(levels(&pages), vec![(0, PageEvent::Triggered)]);
    assert_eq!(escalate_now(&mut state, t(5)).unwrap().level, 1);
    // Level 1 was the last: nothing more falls due at its old time.
    let Some(Step::Advance { pages, .. }) =
        step(&mut state, &paging, &storage, 2, false, &[], t(15))
    else {
        panic!("an advance");
    };
    assert!(pages.is_empty());
}

#[test]
fn an_added_responder_is_paged_on_each_of_their_channels() {
    let paging = paging();
    let pages = responder_pages(&paging, "ann", t(0)).unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].id, "ann");
    assert_eq!(pages[0].channel, Channel::Email);
    assert_eq!(
        responder_pages(&paging, "zed", t(0)).unwrap_err(),
        "responder \"zed\" is not configured"
    );
}
