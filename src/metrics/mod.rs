//! The engine's Prometheus metrics, on a registry of its own (never the global default), so
//! every engine and every test has fresh counters.

#[cfg(target_os = "linux")]
mod process;

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub incidents_open: IntGaugeVec,
    pub incidents_total: IntCounterVec,
    pub incident_severity_changes_total: IntCounter,
    pub incident_reopens_total: IntCounter,
    pub pages_total: IntCounterVec,
    pub page_delivery_seconds: HistogramVec,
    pub escalations_total: IntCounterVec,
    pub time_to_acknowledge_seconds: HistogramVec,
    pub time_to_resolve_seconds: HistogramVec,
    pub signals_total: IntCounterVec,
    pub probe_success: IntGaugeVec,
    pub probe_duration_seconds: GaugeVec,
    pub probe_failures_total: IntCounter,
    pub rule_evaluation_failures_total: IntCounterVec,
    pub sr_response_breaches_total: IntCounterVec,
    pub triage_queue_length: IntGaugeVec,
    pub cases_opened_total: IntCounterVec,
    pub triage_queue_oldest_age_seconds: GaugeVec,
    pub service_availability_ratio: GaugeVec,
    pub service_error_budget_burn_rate: GaugeVec,
    pub sr_first_response_seconds: HistogramVec,
    pub sr_engagement_missed_total: IntCounterVec,
    pub sr_engagement_gaps_total: IntCounterVec,
    pub sr_responses_total: IntCounterVec,
    pub pager_pages_total: IntCounterVec,
    pub pages_at_night_total: IntCounterVec,
    pub probe_schedule_lag_seconds: prometheus::Histogram,
    pub config_last_reload_successful: IntGauge,
    pub config_last_reload_success_timestamp_seconds: Gauge,
    pub leader: IntGauge,
    pub leader_fence_end_timestamp_seconds: Gauge,
    pub leader_term_start_timestamp_seconds: Gauge,
    pub follower_inputs_total: IntCounterVec,
    pub store_errors_total: IntCounter,
    pub store_pruned_rows_total: IntCounter,
    pub source_up: IntGaugeVec,
    pub rate_limited_total: IntCounter,
    pub engine_loop_last_turn_timestamp_seconds: Gauge,
    pub ready: IntGauge,
    pub notifier_last_success_timestamp_seconds: GaugeVec,
}

const NS: &str = "tocsin";

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NS)
}

fn hopts(name: &str, help: &str, buckets: Vec<f64>) -> HistogramOpts {
    HistogramOpts::new(name, help)
        .namespace(NS)
        .buckets(buckets)
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let response_buckets = vec![
            10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
            86400.0,
        ];
        let m = Metrics {
            incidents_open: IntGaugeVec::new(
                opts("incidents_open", "Open incidents by severity."),
                &["severity"],
            )
            .unwrap(),
            incidents_total: IntCounterVec::new(
                opts(
                    "incidents_total",
                    "Incidents opened, by severity at opening.",
                ),
                &["severity"],
            )
            .unwrap(),
            incident_severity_changes_total: IntCounter::with_opts(opts(
                "incident_severity_changes_total",
                "Severity changes, automatic and by people.",
            ))
            .unwrap(),
            incident_reopens_total: IntCounter::with_opts(opts(
                "incident_reopens_total",
                "Incidents that resolved on their own and were reopened by a new impact.",
            ))
            .unwrap(),
            pages_total: IntCounterVec::new(
                opts(
                    "pages_total",
                    "Page delivery attempts by channel and outcome (delivered, retry, failed).",
                ),
                &["channel", "outcome"],
            )
            .unwrap(),
            page_delivery_seconds: HistogramVec::new(
                hopts(
                    "page_delivery_seconds",
                    "Time from a page being stored to its delivery.",
                    vec![
                        0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0,
                    ],
                ),
                &["channel"],
            )
            .unwrap(),
            escalations_total: IntCounterVec::new(
                opts("escalations_total", "Escalation levels paged, by policy."),
                &["policy"],
            )
            .unwrap(),
            time_to_acknowledge_seconds: HistogramVec::new(
                hopts(
                    "time_to_acknowledge_seconds",
                    "From opening to acknowledgement.",
                    response_buckets.clone(),
                ),
                &["severity"],
            )
            .unwrap(),
            time_to_resolve_seconds: HistogramVec::new(
                hopts(
                    "time_to_resolve_seconds",
                    "From opening to resolution.",
                    response_buckets,
                ),
                &["severity"],
            )
            .unwrap(),
            signals_total: IntCounterVec::new(
                opts("signals_total", "Signals received, by source."),
                &["source"],
            )
            .unwrap(),
            probe_success: IntGaugeVec::new(
                opts("probe_success", "1 if the probe's last run succeeded."),
                &["probe"],
            )
            .unwrap(),
            probe_duration_seconds: GaugeVec::new(
                opts(
                    "probe_duration_seconds",
                    "Duration of the probe's last run.",
                ),
                &["probe"],
            )
            .unwrap(),
            probe_failures_total: IntCounter::with_opts(opts(
                "probe_failures_total",
                "Probe runs that failed, all probes together.",
            ))
            .unwrap(),
            rule_evaluation_failures_total: IntCounterVec::new(
                opts(
                    "rule_evaluation_failures_total",
                    "Rule `when` evaluations that failed.",
                ),
                &["rule"],
            )
            .unwrap(),
            sr_response_breaches_total: IntCounterVec::new(
                opts(
                    "sr_response_breaches_total",
                    "CRI incidents not acknowledged by their respond_by.",
                ),
                &["sr_severity"],
            )
            .unwrap(),
            service_availability_ratio: GaugeVec::new(
                opts(
                    "service_availability_ratio",
                    "Share of good probe results and indicator minutes over 30 days.",
                ),
                &["service", "region"],
            )
            .unwrap(),
            service_error_budget_burn_rate: GaugeVec::new(
                opts(
                    "service_error_budget_burn_rate",
                    "Error ratio over the window divided by the error budget (1 - SLA).",
                ),
                &["service", "region", "window"],
            )
            .unwrap(),
            triage_queue_oldest_age_seconds: GaugeVec::new(
                opts(
                    "triage_queue_oldest_age_seconds",
                    "How long the oldest incident of each triage queue has waited.",
                ),
                &["queue"],
            )
            .unwrap(),
            cases_opened_total: IntCounterVec::new(
                opts("cases_opened_total", "Support cases opened."),
                &["sr_severity"],
            )
            .unwrap(),
            sr_first_response_seconds: HistogramVec::new(
                hopts(
                    "sr_first_response_seconds",
                    "From a support case's opening to its first response.",
                    vec![
                        300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
                    ],
                ),
                &["sr_severity"],
            )
            .unwrap(),
            sr_engagement_missed_total: IntCounterVec::new(
                opts(
                    "sr_engagement_missed_total",
                    "Support cases that went two update intervals without an update.",
                ),
                &["sr_severity"],
            )
            .unwrap(),
            sr_engagement_gaps_total: IntCounterVec::new(
                opts(
                    "sr_engagement_gaps_total",
                    "Update intervals of support cases that passed without an update \
                     (sr_engagement; each paged the owner).",
                ),
                &["sr_severity"],
            )
            .unwrap(),
            sr_responses_total: IntCounterVec::new(
                opts(
                    "sr_responses_total",
                    "Support cases whose first-response deadline was met (a first response or \
                     an ack of its incident), within the deadline or late.",
                ),
                &["sr_severity", "within_deadline"],
            )
            .unwrap(),
            pager_pages_total: IntCounterVec::new(
                opts(
                    "pager_pages_total",
                    "Pages that call someone to act, by the rule behind them ((case) for \
                     support cases) and the responder.",
                ),
                &["rule", "responder"],
            )
            .unwrap(),
            pages_at_night_total: IntCounterVec::new(
                opts(
                    "pages_at_night_total",
                    "Of tocsin_pager_pages_total, those made 22:00-07:00 on the responder's \
                     clock.",
                ),
                &["rule", "responder"],
            )
            .unwrap(),
            triage_queue_length: IntGaugeVec::new(
                opts(
                    "triage_queue_length",
                    "Open incidents waiting in each triage queue.",
                ),
                &["queue"],
            )
            .unwrap(),
            probe_schedule_lag_seconds: prometheus::Histogram::with_opts(hopts(
                "probe_schedule_lag_seconds",
                "How late probes start against their schedule.",
                vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0],
            ))
            .unwrap(),
            config_last_reload_successful: IntGauge::with_opts(opts(
                "config_last_reload_successful",
                "1 if the last config reload succeeded.",
            ))
            .unwrap(),
            config_last_reload_success_timestamp_seconds: Gauge::with_opts(opts(
                "config_last_reload_success_timestamp_seconds",
                "When the config was last loaded successfully.",
            ))
            .unwrap(),
            leader: IntGauge::with_opts(opts(
                "leader",
                "1 on the engine that evaluates rules and sends pages.",
            ))
            .unwrap(),
            leader_fence_end_timestamp_seconds: Gauge::with_opts(opts(
                "leader_fence_end_timestamp_seconds",
                "Among several engines: when this engine stops starting pages unless it renews \
                 the lease (its fence's end, or when it lost the lease if sooner).",
            ))
            .unwrap(),
            leader_term_start_timestamp_seconds: Gauge::with_opts(opts(
                "leader_term_start_timestamp_seconds",
                "Among several engines: when this engine's latest term as the leader began \
                 (when the lease request that won it was sent).",
            ))
            .unwrap(),
            follower_inputs_total: IntCounterVec::new(
                opts(
                    "follower_inputs_total",
                    "Among several engines: inputs this engine took while another led, by how \
                     they reached the leader (http: handed over directly; inbox: through the \
                     store's inbox).",
                ),
                &["via"],
            )
            .unwrap(),
            store_errors_total: IntCounter::with_opts(opts(
                "store_errors_total",
                "Store writes that failed.",
            ))
            .unwrap(),
            store_pruned_rows_total: IntCounter::with_opts(opts(
                "store_pruned_rows_total",
                "Rows removed from the store by store.retention (incidents, impacts, \
                 timeline entries, pages).",
            ))
            .unwrap(),
            source_up: IntGaugeVec::new(
                opts(
                    "source_up",
                    "1 if the pulled source answered its last pull.",
                ),
                &["source"],
            )
            .unwrap(),
            rate_limited_total: IntCounter::with_opts(opts(
                "rate_limited_total",
                "Ingest requests refused with 429 by the per-client rate limit.",
            ))
            .unwrap(),
            engine_loop_last_turn_timestamp_seconds: Gauge::with_opts(opts(
                "engine_loop_last_turn_timestamp_seconds",
                "When the engine loop last turned (it turns at least every 250ms while it \
                 runs, on the leader); stale while it is wedged.",
            ))
            .unwrap(),
            ready: IntGauge::with_opts(opts(
                "ready",
                "1 if /-/ready answers 200 (set at each scrape).",
            ))
            .unwrap(),
            notifier_last_success_timestamp_seconds: GaugeVec::new(
                opts(
                    "notifier_last_success_timestamp_seconds",
                    "When a page was last delivered on each channel.",
                ),
                &["channel"],
            )
            .unwrap(),
            registry,
        };
        m.register_all();
        for severity in 0..=4 {
            m.incidents_open
                .with_label_values(&[&severity.to_string()])
                .set(0);
        }
        m
    }

    fn register_all(&self) {
        let r = &self.registry;
        r.register(Box::new(self.incidents_open.clone())).unwrap();
        r.register(Box::new(self.incidents_total.clone())).unwrap();
        r.register(Box::new(self.incident_severity_changes_total.clone()))
            .unwrap();
        r.register(Box::new(self.incident_reopens_total.clone()))
            .unwrap();
        r.register(Box::new(self.pages_total.clone())).unwrap();
        r.register(Box::new(self.page_delivery_seconds.clone()))
            .unwrap();
        r.register(Box::new(self.escalations_total.clone()))
            .unwrap();
        r.register(Box::new(self.time_to_acknowledge_seconds.clone()))
            .unwrap();
        r.register(Box::new(self.time_to_resolve_seconds.clone()))
            .unwrap();
        r.register(Box::new(self.signals_total.clone())).unwrap();
        r.register(Box::new(self.store_pruned_rows_total.clone()))
            .unwrap();
        r.register(Box::new(self.probe_success.clone())).unwrap();
        r.register(Box::new(self.probe_duration_seconds.clone()))
            .unwrap();
        r.register(Box::new(self.probe_failures_total.clone()))
            .unwrap();
        r.register(Box::new(self.rule_evaluation_failures_total.clone()))
            .unwrap();
        r.register(Box::new(self.sr_response_breaches_total.clone()))
            .unwrap();
        r.register(Box::new(self.triage_queue_length.clone()))
            .unwrap();
        r.register(Box::new(self.service_availability_ratio.clone()))
            .unwrap();
        r.register(Box::new(self.service_error_budget_burn_rate.clone()))
            .unwrap();
        r.register(Box::new(self.triage_queue_oldest_age_seconds.clone()))
            .unwrap();
        r.register(Box::new(self.cases_opened_total.clone()))
            .unwrap();
        r.register(Box::new(self.sr_first_response_seconds.clone()))
            .unwrap();
        r.register(Box::new(self.sr_engagement_missed_total.clone()))
            .unwrap();
        r.register(Box::new(self.sr_engagement_gaps_total.clone()))
            .unwrap();
        r.register(Box::new(self.sr_responses_total.clone()))
            .unwrap();
        r.register(Box::new(self.pager_pages_total.clone()))
            .unwrap();
        r.register(Box::new(self.pages_at_night_total.clone()))
            .unwrap();
        r.register(Box::new(self.probe_schedule_lag_seconds.clone()))
            .unwrap();
        r.register(Box::new(self.config_last_reload_successful.clone()))
            .unwrap();
        r.register(Box::new(
            self.config_last_reload_success_timestamp_seconds.clone(),
        ))
        .unwrap();
        r.register(Box::new(self.leader.clone())).unwrap();
        r.register(Box::new(self.leader_fence_end_timestamp_seconds.clone()))
            .unwrap();
        r.register(Box::new(self.leader_term_start_timestamp_seconds.clone()))
            .unwrap();
        r.register(Box::new(self.follower_inputs_total.clone()))
            .unwrap();
        r.register(Box::new(self.store_errors_total.clone()))
            .unwrap();
        r.register(Box::new(self.source_up.clone())).unwrap();
        r.register(Box::new(
            self.engine_loop_last_turn_timestamp_seconds.clone(),
        ))
        .unwrap();
        r.register(Box::new(
            self.notifier_last_success_timestamp_seconds.clone(),
        ))
        .unwrap();
        r.register(Box::new(self.ready.clone())).unwrap();
        r.register(Box::new(self.rate_limited_total.clone()))
            .unwrap();
        #[cfg(target_os = "linux")]
        {
            // Standard `process_*` names, as every Prometheus exporter has them.
            r.register(Box::new(process::ProcessCollector::new()))
                .unwrap();
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("exposition is UTF-8")
    }
}

impl Metrics {
    /// Put every series whose label values are known in advance on /metrics at zero: the
    /// fixed sets (severities, channels, outcomes, sources, SR severities) and what the config
    /// names (policies, rules). A `*Vec` family with no series is missing from the exposition
    /// altogether, and `rate()`/`increase()` need the zero before the first event. Per-probe
    /// gauges are left to the probe runner: a 0 there would read as a failing probe.
    pub fn prime(&self, config: &crate::config::Config) {
        for severity in ["0", "1", "2", "3", "4"] {
            self.incidents_total.with_label_values(&[severity]);
            self.time_to_acknowledge_seconds
                .with_label_values(&[severity]);
            self.time_to_resolve_seconds.with_label_values(&[severity]);
        }
        for channel in ["email", "webhook"] {
            self.page_delivery_seconds.with_label_values(&[channel]);
            for outcome in ["delivered", "retry", "failed"] {
                self.pages_total.with_label_values(&[channel, outcome]);
            }
        }
        for source in ["probe", "alert", "cri", "heartbeat", "tocsin"] {
            self.signals_total.with_label_values(&[source]);
        }
        for via in ["http", "inbox"] {
            self.follower_inputs_total.with_label_values(&[via]);
        }
        for sr in ["A", "B", "C"] {
            self.sr_response_breaches_total.with_label_values(&[sr]);
            self.cases_opened_total.with_label_values(&[sr]);
            self.sr_first_response_seconds.with_label_values(&[sr]);
            self.sr_engagement_gaps_total.with_label_values(&[sr]);
            self.sr_engagement_missed_total.with_label_values(&[sr]);
            for within in ["true", "false"] {
                self.sr_responses_total.with_label_values(&[sr, within]);
            }
        }
        for policy in &config.escalation_policies {
            self.escalations_total.with_label_values(&[&policy.name]);
        }
        for loaded in &config.rules {
            self.rule_evaluation_failures_total
                .with_label_values(&[&loaded.rule.name]);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
