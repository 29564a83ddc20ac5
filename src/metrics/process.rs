//! The standard `process_*` metrics every Prometheus exporter has, read from `/proc/self`.
//!
//! The prometheus crate's own collector divides CPU ticks by the clock rate in integers
//! (`process_cpu_seconds_total` moves a whole second at a time, and reads 0 for an engine's
//! first second of CPU) and truncates the start time to the second; these are exact to the
//! tick (1/100 s on Linux), as the Go client's are.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, IntGauge, Opts};

pub struct ProcessCollector {
    cpu_seconds: Counter,
    open_fds: IntGauge,
    max_fds: IntGauge,
    virtual_memory: IntGauge,
    resident_memory: IntGauge,
    start_time: Gauge,
    threads: IntGauge,
}

impl ProcessCollector {
    pub fn new() -> Self {
        let int = |name: &str, help: &str| IntGauge::with_opts(Opts::new(name, help)).unwrap();
        let collector = ProcessCollector {
            cpu_seconds: Counter::with_opts(Opts::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            ))
            .unwrap(),
            open_fds: int("process_open_fds", "Number of open file descriptors."),
            max_fds: int(
                "process_max_fds",
                "Maximum number of open file descriptors.",
            ),
            virtual_memory: int(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ),
            resident_memory: int(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ),
            start_time: Gauge::with_opts(Opts::new(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            ))
            .unwrap(),
            threads: int("process_threads", "Number of OS threads in the process."),
        };
        // The start never changes: read once.
        if let (Ok(stat), Ok(boot)) = (
            procfs::process::Process::myself().and_then(|p| p.stat()),
            procfs::boot_time_secs(),
        ) {
            collector
                .start_time
                .set(boot as f64 + stat.starttime as f64 / ticks_per_second());
        }
        collector
    }

    fn gauges(&self) -> [&IntGauge; 5] {
        [
            &self.open_fds,
            &self.max_fds,
            &self.virtual_memory,
            &self.resident_memory,
            &self.threads,
        ]
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

fn ticks_per_second() -> f64 {
    procfs::ticks_per_second() as f64
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.cpu_seconds.desc();
        descs.extend(self.start_time.desc());
        for gauge in self.gauges() {
            descs.extend(gauge.desc());
        }
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Ok(process) = procfs::process::Process::myself() else {
            return Vec::new();
        };
        if let Ok(count) = process.fd_count() {
            self.open_fds.set(count as i64);
        }
        if let Ok(limits) = process.limits() {
            if let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit {
                self.max_fds.set(max as i64);
            }
        }
        if let Ok(stat) = process.stat() {
            self.virtual_memory.set(stat.vsize as i64);
            self.resident_memory
                .set((stat.rss * procfs::page_size()) as i64);
            self.threads.set(stat.num_threads);
            let total = (stat.utime + stat.stime) as f64 / ticks_per_second();
            // Two scrapes at once may both move it: only ever forward.
            let past = self.cpu_seconds.get();
            if total > past {
                self.cpu_seconds.inc_by(total - past);
            }
        }
        let mut families = self.cpu_seconds.collect();
        families.extend(self.start_time.collect());
        for gauge in self.gauges() {
            families.extend(gauge.collect());
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What /proc/self/stat says, in seconds: (CPU, start).
    fn from_proc() -> (f64, f64) {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        // Fields after the command name (which may hold spaces), from field 3 on.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let utime: f64 = fields[11].parse().unwrap();
        let stime: f64 = fields[12].parse().unwrap();
        let start: f64 = fields[19].parse().unwrap();
        let boot: f64 = std::fs::read_to_string("/proc/stat")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        ((utime + stime) / tick, boot + start / tick)
    }

    fn value(families: &[MetricFamily], name: &str) -> f64 {
        let family = families.iter().find(|f| f.name() == name).unwrap();
        let metric = &family.get_metric()[0];
        if family.get_field_type() == prometheus::proto::MetricType::COUNTER {
            metric.get_counter().get_value()
        } else {
            metric.get_gauge().get_value()
        }
    }

    #[test]
    fn cpu_seconds_and_start_time_are_what_proc_says_to_the_tick() {
        let collector = ProcessCollector::new();
        // Some CPU, so the total is not a whole number of seconds by chance alone.
        let mut x = 0u64;
        for i in 0..3_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let (before, start) = from_proc();
        let families = collector.collect();
        let (after, _) = from_proc();
        let cpu = value(&families, "process_cpu_seconds_total");
        assert!(
            before <= cpu && cpu <= after,
            "{before} <= {cpu} <= {after}"
        );
        assert_eq!(value(&families, "process_start_time_seconds"), start);
        assert!(value(&families, "process_resident_memory_bytes") > 0.0);
        assert!(value(&families, "process_open_fds") > 0.0);
        assert!(value(&families, "process_threads") >= 1.0);
    }
}
