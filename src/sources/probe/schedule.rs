//! When each probe runs: at a fixed rate, at a stable offset inside its interval.
//!
//! As Prometheus spreads scrapes, a probe's offset is a hash of its name modulo its interval,
//! counted from wall-clock multiples of the interval. The same probe starts at the same phase
//! after a restart or a reload, and a thousand probes sharing an interval spread over it
//! instead of all starting in the same millisecond.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Offsets are whole multiples of this (of a hundredth of the interval when that is
/// shorter), so probes whose phases fall in the same slot start on the same wake-up of the
/// probes' thread and their connects and answers tend to share wake-ups too. At a thousand
/// probes a second that is ten starts per wake-up instead of one, and fewer context switches
/// of the probes' thread (BENCHMARKS.md, "Probes beside Prometheus and blackbox_exporter").
/// A start is at most one slot away from where the hash alone would put it.
const SLOT: Duration = Duration::from_millis(10);

/// The probe's offset inside its interval: stable for a name, spread across names.
pub fn offset(name: &str, interval: Duration) -> Duration {
    let interval_ns = interval.as_nanos().clamp(1, u128::from(u64::MAX)) as u64;
    let slot_ns = (SLOT.as_nanos() as u64).min(interval_ns / 100).max(1);
    let raw = spread_hash(name.as_bytes()) % interval_ns;
    Duration::from_nanos(raw - raw % slot_ns)
}

/// How long to wait, `since_epoch` being now, for the first start: the next instant at or
/// after now whose phase in the interval is `offset`.
pub fn first_delay(since_epoch: Duration, interval: Duration, offset: Duration) -> Duration {
    let interval = interval.as_nanos().max(1);
    let phase = since_epoch.as_nanos() % interval;
    let offset = offset.as_nanos() % interval;
    let wait = (offset + interval - phase) % interval;
    Duration::from_nanos(wait as u64)
}

/// The fixed-rate start times of one probe.
pub struct Schedule {
    ticks: Interval,
}

impl Schedule {
    /// The schedule of probe `name`, `now` being the wall-clock time (the engine's clock).
    pub fn new(name: &str, interval: Duration, now: DateTime<Utc>) -> Self {
        let since_epoch = (now - DateTime::UNIX_EPOCH).to_std().unwrap_or_default();
        let delay = first_delay(since_epoch, interval, offset(name, interval));
        let mut ticks = tokio::time::interval_at(Instant::now() + delay, interval);
        // Starts missed (all permits busy, a stalled runtime) are not replayed in a burst:
        // the overdue one runs at once, late, and the lag metric shows it; then the probe is
        // back on its phase.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Schedule { ticks }
    }

    /// Wait for the next start; returns when it was due (to measure the lag).
    pub async fn next(&mut self) -> Instant {
        self.ticks.tick().await
    }
}

/// FNV-1a, then a 64-bit finalizer: FNV alone leaves names that differ in their last
/// character (`probe-1`, `probe-2`) close together in the low bits we take the modulus of.
fn spread_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_offset_is_stable_and_inside_the_interval() {
        let interval = Duration::from_secs(15);
        let a = offset("storage-east", interval);
        assert_eq!(a, offset("storage-east", interval));
        assert!(a < interval);
        assert_ne!(a, offset("storage-north", interval));
    }

    #[test]
    fn offsets_fall_on_slots_so_neighbours_start_together() {
        let interval = Duration::from_secs(10);
        let mut slots = std::collections::HashSet::new();
        for i in 0..10_000 {
            let at = offset(&format!("probe-{i}"), interval);
            assert_eq!(at.as_nanos() % SLOT.as_nanos(), 0, "probe-{i} at {at:?}");
            slots.insert(at);
        }
        // 1,000 slots in 10 s; 10,000 probes fill nearly all of them.
        assert!(slots.len() > 990, "{} slots used", slots.len());
        // A short interval keeps a hundred slots: 50 ms → 0.5 ms apart.
        let short = Duration::from_millis(50);
        for i in 0..100 {
            let at = offset(&format!("probe-{i}"), short);
            assert!(at < short);
            assert_eq!(at.as_micros() % 500, 0, "probe-{i} at {at:?}");
        }
    }

    #[test]
    fn offsets_of_many_probes_spread_over_the_interval() {
        // 1000 probes on a 1 s interval: every tenth of the second gets roughly a tenth.
        let mut buckets = [0u32; 10];
        for i in 0..1000 {
            let at = offset(&format!("probe-{i}"), SECOND);
            buckets[(at.as_millis() / 100) as usize] += 1;
        }
        for (i, n) in buckets.iter().enumerate() {
            assert!((60..=140).contains(n), "bucket {i} holds {n}: {buckets:?}");
        }
    }

    #[test]
    fn the_first_start_is_the_next_instant_with_the_probe_phase() {
        let interval = Duration::from_secs(10);
        // Now is 123 s + 4 s into an interval; the phase 7 s is 3 s away.
        let now = Duration::from_secs(124);
        assert_eq!(
            first_delay(now, interval, Duration::from_secs(7)),
            Duration::from_secs(3)
        );
        // The phase 2 s is already past: the next one is 8 s away.
        assert_eq!(
            first_delay(now, interval, Duration::from_secs(2)),
            Duration::from_secs(8)
        );
        // Exactly on the phase: start now.
        assert_eq!(
            first_delay(now, interval, Duration::from_secs(4)),
            Duration::ZERO
        );
    }

    #[tokio::test(start_paused = true)]
    async fn starts_come_at_a_fixed_rate_at_the_probe_phase() {
        let interval = Duration::from_secs(15);
        let name = "storage-east";
        let phase = offset(name, interval);
        // The wall clock stands exactly on a multiple of the interval (1.8e9 = 15 × 1.2e8).
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let origin = Instant::now();
        let mut schedule = Schedule::new(name, interval, now);
        for k in 0..4u32 {
            let due = schedule.next().await;
            assert_eq!(due - origin, phase + interval * k, "start {k}");
            // Tokio's timers tick in milliseconds.
            let late = Instant::now() - due;
            assert!(
                late < Duration::from_millis(1),
                "start {k} late by {late:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn starts_missed_by_a_stall_are_not_replayed_in_a_burst() {
        let mut schedule = Schedule::new("p", SECOND, DateTime::UNIX_EPOCH);
        let first = schedule.next().await;
        // The probe loop stalled for two and a half intervals.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // The overdue start runs at once, and its lag shows how late it is...
        let overdue = schedule.next().await;
        assert_eq!(overdue - first, SECOND);
        let lag = Instant::now() - overdue;
        assert!(lag.as_millis() == 1500, "lag {lag:?}");
        // ...then the schedule is back on its phase: the start due at +2 s is dropped.
        let next = schedule.next().await;
        assert_eq!(next - first, 3 * SECOND);
    }
}
