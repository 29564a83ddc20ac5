//! What a resolve says in the incident's timeline.

/// Summaries named in the message; the entry's data lists every id.
const NAMED: usize = 3;

/// The `resolved` entry's message and data: who resolved it, their note, and the impacts
/// whose signal still fired at that moment (`still_firing`: id and summary, in id order).
/// Those stay uncleared until their signal clears, and their next firing observation opens
/// a new incident: the entry says so, so nobody takes the resolve for the end of it.
pub fn resolved_entry(
    by: &str,
    note: Option<&str>,
    still_firing: &[(i64, &str)],
) -> (String, serde_json::Value) {
    let mut message = match note {
        Some(n) if !n.is_empty() => format!("resolved by {by}: {n}"),
        _ => format!("resolved by {by}"),
    };
    if !still_firing.is_empty() {
        let named: Vec<String> = still_firing
            .iter()
            .take(NAMED)
            .map(|(id, summary)| format!("{summary} (impact {id})"))
            .collect();
        let more = match still_firing.len().saturating_sub(NAMED) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let next = if still_firing.len() == 1 {
            "its next firing observation opens a new incident"
        } else {
            "their next firing observations open a new incident"
        };
        message.push_str(&format!(
            "; still firing at resolve: {}{more} ({next})",
            named.join(", ")
        ));
    }
    let ids: Vec<i64> = still_firing.iter().map(|(id, _)| *id).collect();
    let data = if ids.is_empty() {
        serde_json::json!({ "note": note })
    } else {
        serde_json::json!({ "note": note, "still_firing": ids })
    };
    (message, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolve_with_nothing_firing_says_who_and_why() {
        let (message, data) = resolved_entry("carol", Some("failover done"), &[]);
        assert_eq!(message, "resolved by carol: failover done");
        assert_eq!(data, serde_json::json!({ "note": "failover done" }));
        let (message, data) = resolved_entry("carol", Some(""), &[]);
        assert_eq!(message, "resolved by carol");
        assert_eq!(data, serde_json::json!({ "note": "" }));
        assert_eq!(resolved_entry("tocsin", None, &[]).0, "resolved by tocsin");
    }

    #[test]
    fn a_resolve_names_what_still_fires() {
        let (message, data) = resolved_entry("carol", None, &[(3, "storage down in east")]);
        assert_eq!(
            message,
            "resolved by carol; still firing at resolve: storage down in east (impact 3) \
             (its next firing observation opens a new incident)"
        );
        assert_eq!(
            data,
            serde_json::json!({ "note": null, "still_firing": [3] })
        );
        let many: Vec<(i64, &str)> = (1..=5).map(|id| (id, "down")).collect();
        let (message, data) = resolved_entry("carol", Some("restarted"), &many);
        assert_eq!(
            message,
            "resolved by carol: restarted; still firing at resolve: down (impact 1), \
             down (impact 2), down (impact 3) and 2 more (their next firing observations \
             open a new incident)"
        );
        assert_eq!(data["still_firing"], serde_json::json!([1, 2, 3, 4, 5]));
    }
}
