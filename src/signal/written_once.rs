//! A signal serialized once per store write, however many rows carry it.
//!
//! A pushed alert's rule state and its lease hold the same `Arc<Signal>`, and each row
//! stores it whole as JSON: serializing it twice was ~5 % of tocsin's CPU in the first pass
//! of the ingest benchmark (every alert new, both rows written). Within [`within_write`] the
//! first row to serialize a signal keeps its JSON, and the others copy it; the rows come out
//! byte for byte as before. Outside it, and for any other serializer, nothing changes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::Signal;

thread_local! {
    /// The JSON of each signal serialized in the current write, by address. Every signal
    /// here is kept alive by the changes being written, so no address is reused meanwhile.
    static WRITTEN: RefCell<Option<HashMap<*const Signal, Box<RawValue>>>> =
        const { RefCell::new(None) };
}

/// Run `serialize_rows` (serializing one write's rows to JSON on this thread), serializing
/// each shared signal once. The signals must stay alive until it returns.
pub fn within_write<T>(serialize_rows: impl FnOnce() -> T) -> T {
    /// Forgets the signals' JSON when the write is serialized, even if it panicked.
    struct Forget;
    impl Drop for Forget {
        fn drop(&mut self) {
            WRITTEN.with(|written| *written.borrow_mut() = None);
        }
    }
    WRITTEN.with(|written| *written.borrow_mut() = Some(HashMap::new()));
    let _forget = Forget;
    serialize_rows()
}

/// `serialize_with` for a row's `Arc<Signal>` field.
pub fn serialize<S: Serializer>(signal: &Arc<Signal>, serializer: S) -> Result<S::Ok, S::Error> {
    WRITTEN.with(|written| {
        let mut written = written.borrow_mut();
        let Some(written) = written.as_mut() else {
            return signal.serialize(serializer);
        };
        let json = match written.entry(Arc::as_ptr(signal)) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(new) => new.insert(
                serde_json::value::to_raw_value(&**signal).map_err(serde::ser::Error::custom)?,
            ),
        };
        json.serialize(serializer)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::core::Lease;
    use crate::rules::RuleState;
    use crate::signal::{LabelSet, SignalState, SourceKind};

    /// Rows written with the signal shared are byte for byte those written without.
    #[test]
    fn rows_sharing_a_signal_serialize_as_they_did_alone() {
        let now = chrono::Utc::now();
        let signal = Arc::new(Signal {
            source: SourceKind::Alert,
            labels: Arc::new(LabelSet::from_iter([
                ("alertname", "Down"),
                ("service", "db"),
            ])),
            annotations: Arc::new(LabelSet::from_iter([("summary", "db \"primary\" down")])),
            value: Some(1.5),
            state: SignalState::Firing,
            probe: None,
            cri: None,
            expires_at: Some(now),
            observed_at: now,
        });
        let other = Arc::new(Signal {
            value: None,
            ..(*signal).clone()
        });
        let state = RuleState {
            condition: true,
            since: now,
            failures: 1,
            successes: 0,
            impact: Some(7),
            suppressed: false,
            signal: Arc::clone(&signal),
            evaluated: true,
            row: 1,
        };
        let lease = Lease {
            expires_at: now,
            signal: Arc::clone(&signal),
            row: 1,
        };
        let other_lease = Lease {
            expires_at: now,
            signal: Arc::clone(&other),
            row: 2,
        };
        let alone = [
            serde_json::to_string(&state).unwrap(),
            serde_json::to_string(&lease).unwrap(),
            serde_json::to_string(&other_lease).unwrap(),
        ];
        let shared = within_write(|| {
            [
                serde_json::to_string(&state).unwrap(),
                serde_json::to_string(&lease).unwrap(),
                serde_json::to_string(&other_lease).unwrap(),
            ]
        });
        assert_eq!(shared, alone);
        assert!(alone[1].contains(r#""value":1.5"#) && !alone[2].contains("1.5"));
        // Read back, each row holds its own signal.
        let read: Lease = serde_json::from_str(&shared[2]).unwrap();
        assert_eq!(read.signal, other);
        WRITTEN.with(|written| assert!(written.borrow().is_none()));
    }
}
