//! The fuzz targets of `fuzz/`, run by `cargo test` on the stable toolchain: each target
//! first replays its corpus, then takes inputs made from that corpus by random mutations for
//! a bounded time.
//!
//! - Corpus: every file of `tests/fuzz_corpus/<target>/` (seeds, and every input that ever
//!   made the target fail: kept there for good), the shipped config and rules, and the
//!   folders cargo-fuzz fills (`fuzz/corpus/<target>/`, `fuzz/artifacts/<target>/`) when
//!   they exist. An input from cargo-fuzz's folders that fails is copied into
//!   `tests/fuzz_corpus/<target>/`.
//! - A failure (a panic, an abort, or an input still running `TOCSIN_FUZZ_HANG_SECS` (60)
//!   after the time bound) writes the input to `tests/fuzz_corpus/<target>/crash-<sha256>`
//!   (or `slow-…`) and fails the test, naming the file and the seed.
//! - Bounds: `TOCSIN_FUZZ_SECS` per target (default 10), `TOCSIN_FUZZ_ITERATIONS` (no
//!   default), whichever comes first. `TOCSIN_FUZZ_SEED` makes a run repeat one before it:
//!   the inputs depend only on the seed and the corpus.
//!
//! - Each target runs in a child process (this test binary again, that test alone), on a
//!   thread with the stack of the engine's worker threads: an input that aborts the process
//!   (a stack overflow) or never returns is found in the file the child writes each input
//!   to before running it, kept as above and named.
//!
//! Each target prints one line with its counts (`cargo test --test fuzz -- --nocapture`).
//! This is not coverage-guided, unlike libFuzzer; for long runs use cargo-fuzz
//! (`fuzz/README.md`), whose targets call the same functions.

#[path = "fuzz_support/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The fuzz bounds are real time, whatever clock a test pauses (clippy.toml bans it elsewhere).
#[allow(clippy::disallowed_types)]
type Instant = std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// Inputs are cut to this length (libFuzzer's `-max_len` for the same targets).
const MAX_LEN: usize = 64 * 1024;
/// The stack a target runs on: tokio's worker threads' (2 MiB), where the engine parses
/// reloads and evaluates rules.
const ENGINE_STACK: usize = 2 << 20;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
    )
}

/// Where a target's inputs that failed are kept.
fn kept_dir(target: &str) -> PathBuf {
    root().join("tests/fuzz_corpus").join(target)
}

/// Every file of `dir`, sorted by name; none when it does not exist.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The corpus of a target: (where it came from, its bytes).
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = files_in(&kept_dir(target));
    match target {
        "config" => files.push(root().join("config/tocsin.yaml")),
        "rules" => {
            files.extend(files_in(&root().join("rules")));
            files.extend(files_in(&root().join("tests/rules")));
        }
        _ => {}
    }
    files.extend(files_in(&root().join("fuzz/corpus").join(target)));
    files.extend(files_in(&root().join("fuzz/artifacts").join(target)));
    let mut corpus: Vec<(PathBuf, Vec<u8>)> = files
        .into_iter()
        .map(|path| {
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (path, bytes)
        })
        .collect();
    if target == "config" {
        // The target skips configs naming `rule_files`: the shipped one without that line.
        let shipped = std::fs::read_to_string(root().join("config/tocsin.yaml")).unwrap();
        let without: String = shipped
            .lines()
            .filter(|l| !l.contains("rule_files"))
            .map(|l| format!("{l}\n"))
            .collect();
        corpus.push((root().join("config/tocsin.yaml"), without.into_bytes()));
    }
    corpus
}

/// Words of each target's language, inserted whole by the mutator (as libFuzzer's `-dict`).
fn dictionary(target: &str) -> &'static [&'static str] {
    const YAML: &[&str] = &[
        ": ",
        "- ",
        "{ ",
        " }",
        "[ ",
        " ]",
        ", ",
        "\n",
        "\n  ",
        "\n    - ",
        "'",
        "\"",
        "\\",
        "&a ",
        "*a",
        "<<: ",
        "!!str ",
        "!!binary ",
        "? ",
        "| ",
        "> ",
        "#",
        "---\n",
        "...\n",
        "~",
        "null",
        "true",
        "0",
        "-1",
        "1e999",
        "NaN",
        "18446744073709551616",
        "\u{0}",
        "\u{feff}",
        "é",
    ];
    const CONFIG: &[&str] = &[
        "server",
        "store",
        "catalog",
        "services",
        "customers",
        "subscriptions",
        "regions",
        "sla",
        "probes",
        "sources",
        "prometheus",
        "alertmanager",
        "heartbeats",
        "correlation",
        "by",
        "window",
        "incidents",
        "resolve_after",
        "classification",
        "sr_response",
        "responders",
        "schedules",
        "handoff",
        "participants",
        "time_windows",
        "timezone",
        "start",
        "duration",
        "escalation_policies",
        "levels",
        "after",
        "notify",
        "repeat",
        "ack_timeout",
        "routes",
        "match",
        "policy",
        "queue",
        "active_during",
        "silences",
        "notifiers",
        "email",
        "smtp",
        "tls",
        "starttls",
        "webhooks",
        "retry",
        "max_age",
        "url",
        "interval",
        "timeout",
        "lease",
        "auth",
        "tokens_file",
        "rate_limit",
        "0s",
        "15m",
        "100y",
        "9999999999h",
        "0 0 9 * * Mon",
        "Asia/Shanghai",
        "responder:alice",
        "schedule:primary",
        "webhook:hook",
        "severity=~\"0|1\"",
        "http://127.0.0.1:1/",
        "sqlite://",
        "postgres://",
    ];
    const RULES: &[&str] = &[
        "groups",
        "name",
        "rules",
        "match",
        "when",
        "for",
        "failures",
        "clear_for",
        "successes",
        "impact",
        "kind",
        "sla_breach",
        "business_impact",
        "severity",
        "labels",
        "summary",
        "outage",
        "data_loss",
        "degradation",
        "high",
        "{{ ",
        " }}",
        "{% ",
        " %}",
        "labels.service",
        "source=\"alert\"",
        "probe.success",
        "size(labels) > 1",
        ".map(x, x + x)",
        ".exists(v, v == 'a')",
        "5m",
        "0s",
        "100y",
    ];
    const MATCHER: &[&str] = &[
        "=", "!=", "=~", "!~", "\"", "\\\"", "\\\\", "\\n", "\\u0000", ".*", "(a+)+", "|", "[",
        "]", "{1000}", "(?i)", "^", "$", "\\p{L}", "name", "_", "0", " ",
    ];
    const JSON: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\"",
        "\"\"",
        "null",
        "true",
        "false",
        "0",
        "-0",
        "1e999",
        "1.5",
        "\"labels\"",
        "\"annotations\"",
        "\"startsAt\"",
        "\"endsAt\"",
        "\"generatorURL\"",
        "\"alerts\"",
        "\"status\"",
        "\"firing\"",
        "\"resolved\"",
        "\"version\"",
        "\"4\"",
        "\"customer\"",
        "\"service\"",
        "\"region\"",
        "\"sr_severity\"",
        "\"A\"",
        "\"summary\"",
        "\"contact\"",
        "\"kind\"",
        "\"data_loss\"",
        "\"0001-01-01T00:00:00Z\"",
        "\"9999-12-31T23:59:59Z\"",
        "\"2026-01-05T09:00:00+14:00\"",
        "\\u0000",
        "\\ud800",
    ];
    const CEL: &[&str] = &[
        "labels",
        "annotations",
        "value",
        "source",
        "probe",
        "probe.body",
        "probe.success",
        "probe.latency_ms",
        "probe.status_code",
        ".",
        "[",
        "]",
        "(",
        ")",
        "'",
        "\"",
        "&&",
        "||",
        "!",
        "==",
        "!=",
        "<",
        ">=",
        "+",
        "*",
        "/",
        "%",
        "?",
        ":",
        " in ",
        "size(",
        ".map(x, ",
        ".filter(x, ",
        ".exists(x, ",
        ".all(x, ",
        ".exists_one(x, ",
        "x",
        "has(",
        "int(",
        "string(",
        "double(",
        ".contains(",
        ".startsWith(",
        ".matches(",
        "0",
        "-9223372036854775808",
        "1.0e308",
        "'a'",
        "b'\\x00'",
        "null",
        "true",
        "{'a': 1}",
        "[1, 2]",
    ];
    match target {
        "config" => [YAML, CONFIG].concat().leak(),
        "rules" => [YAML, RULES, CEL].concat().leak(),
        "matcher" => MATCHER,
        "alerts" => JSON,
        "cel" => CEL,
        other => panic!("no dictionary for {other}"),
    }
}

/// Bytes worth putting anywhere: delimiters, quotes, escapes, controls, UTF-8 lead bytes.
const BYTES: &[u8] = b"\0\t\n\r \"#&'()*,-.0129:;<=>?[\\]^_`{|}~!\x7f\xc3\xe2\xf0\xff";

/// One input: a corpus entry (or nothing) changed by one to eight mutations.
fn mutate(rng: &mut StdRng, corpus: &[(PathBuf, Vec<u8>)], words: &[&str]) -> Vec<u8> {
    let mut data = if corpus.is_empty() || rng.random_ratio(1, 50) {
        Vec::new()
    } else {
        corpus[rng.random_range(0..corpus.len())].1.clone()
    };
    let rounds = 1 << rng.random_range(0..4);
    for _ in 0..rounds {
        let at = rng.random_range(0..=data.len());
        match rng.random_range(0..9) {
            // A bit flipped.
            0 if !data.is_empty() => {
                let i = rng.random_range(0..data.len());
                data[i] ^= 1 << rng.random_range(0..8);
            }
            // A byte replaced, or inserted.
            1 if !data.is_empty() => {
                let i = rng.random_range(0..data.len());
                data[i] = BYTES[rng.random_range(0..BYTES.len())];
            }
            2 => data.insert(at, BYTES[rng.random_range(0..BYTES.len())]),
            // A word of the language.
            3 | 4 => {
                let word = words[rng.random_range(0..words.len())].as_bytes();
                data.splice(at..at, word.iter().copied());
            }
            // A span removed.
            5 if !data.is_empty() => {
                let from = rng.random_range(0..data.len());
                let len = rng.random_range(1..=16.min(data.len() - from));
                data.drain(from..from + len);
            }
            // A span repeated, up to a few hundred times (deep nesting, long lists).
            6 if !data.is_empty() => {
                let from = rng.random_range(0..data.len());
                let len = rng.random_range(1..=64.min(data.len() - from));
                let times = if rng.random_ratio(1, 8) {
                    rng.random_range(100..400)
                } else {
                    rng.random_range(1..4)
                };
                let span = data[from..from + len].repeat(times);
                data.splice(at..at, span);
            }
            // A piece of another corpus entry.
            7 if !corpus.is_empty() => {
                let other = &corpus[rng.random_range(0..corpus.len())].1;
                if !other.is_empty() {
                    let from = rng.random_range(0..other.len());
                    let len = rng.random_range(1..=256.min(other.len() - from));
                    data.splice(at..at, other[from..from + len].iter().copied());
                }
            }
            // Cut short.
            8 => data.truncate(at),
            _ => data.push(rng.random()),
        }
        data.truncate(MAX_LEN);
    }
    data
}

/// What a run of one target did.
struct Outcome {
    replayed: usize,
    inputs: u64,
    elapsed: Duration,
    failure: Option<String>,
}

fn kept_name(kind: &str, input: &[u8]) -> String {
    format!("{kind}-{}", &hex::encode(Sha256::digest(input))[..16])
}

/// Keep a failing input in `dir` (`tests/fuzz_corpus/<target>/`); returns where.
fn keep(dir: &Path, kind: &str, input: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(kept_name(kind, input));
    std::fs::write(&path, input).unwrap();
    path
}

/// The input being run, written to a file before it runs: if it takes the process down
/// (a stack overflow aborts; an endless loop is killed), the parent process finds it there.
struct Inflight(Option<std::fs::File>);

impl Inflight {
    fn set(&self, input: &[u8]) {
        use std::os::unix::fs::FileExt;
        if let Some(file) = &self.0 {
            file.write_all_at(input, 0).unwrap();
            file.set_len(input.len() as u64).unwrap();
        }
    }
}

/// Replay the corpus, then fuzz until the time or iteration bound.
fn fuzz_loop(
    name: &'static str,
    target: fn(&[u8]),
    seed: u64,
    (deadline, max_inputs): (Instant, u64),
    inflight: &Inflight,
    kept_dir: &Path,
) -> Outcome {
    let started = Instant::now();
    let corpus = corpus(name);
    let words = dictionary(name);
    for (path, bytes) in &corpus {
        inflight.set(bytes);
        if std::panic::catch_unwind(|| target(bytes)).is_err() {
            let kept = if path.starts_with(kept_dir) {
                path.clone()
            } else {
                keep(kept_dir, "crash", bytes)
            };
            return Outcome {
                replayed: corpus.len(),
                inputs: 0,
                elapsed: started.elapsed(),
                failure: Some(format!(
                    "{name}: the corpus file {} fails the target (kept as {})",
                    path.display(),
                    kept.display()
                )),
            };
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut inputs = 0u64;
    while inputs < max_inputs && Instant::now() < deadline {
        let input = mutate(&mut rng, &corpus, words);
        inputs += 1;
        inflight.set(&input);
        if std::panic::catch_unwind(|| target(&input)).is_err() {
            let kept = keep(kept_dir, "crash", &input);
            return Outcome {
                replayed: corpus.len(),
                inputs,
                elapsed: started.elapsed(),
                failure: Some(format!(
                    "{name}: input {inputs} of seed {seed} fails the target; kept as {} \
                     (replayed by every run from now on)",
                    kept.display()
                )),
            };
        }
    }
    Outcome {
        replayed: corpus.len(),
        inputs,
        elapsed: started.elapsed(),
        failure: None,
    }
}

/// Set in the child process that runs a target, to the file of the input being run.
const CHILD: &str = "TOCSIN_FUZZ_INFLIGHT";

/// Run one target in a child process (this test binary again, this test alone), so that an
/// input that aborts the process or never returns is still kept and named.
fn run(name: &'static str) {
    if let Some(inflight) = std::env::var_os(CHILD) {
        return run_here(name, Path::new(&inflight));
    }
    let secs: f64 = env_number("TOCSIN_FUZZ_SECS").unwrap_or(10.0);
    let hang: f64 = env_number("TOCSIN_FUZZ_HANG_SECS").unwrap_or(60.0);
    let base: u64 = env_number("TOCSIN_FUZZ_SEED").unwrap_or_else(rand::random);
    println!("fuzz {name}: TOCSIN_FUZZ_SEED={base} replays this run");
    let inflight = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-inflight-{name}"));
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            &format!("fuzz_{name}"),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &inflight)
        .env("TOCSIN_FUZZ_SEED", base.to_string())
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run this test binary again");
    // Read both pipes while the child runs, so a chatty child never blocks on a full pipe.
    let pipe = |mut from: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = from.read_to_string(&mut text);
            text
        })
    };
    let stdout = pipe(Box::new(child.stdout.take().unwrap()));
    let stderr = pipe(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs_f64(secs + hang);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        // A plain #[test]: no runtime here to block.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    // The child's lines, without its test harness's "test fuzz_… ... " before them.
    let ours = format!("fuzz {name}:");
    for line in stdout.lines() {
        if let Some(at) = line.find(&ours) {
            println!("{}", &line[at..]);
        }
    }
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    let kept_in_flight = |kind: &str| {
        let input = std::fs::read(&inflight).expect("the input in flight");
        keep(&kept_dir(name), kind, &input)
    };
    match status {
        Some(status) if status.success() => {}
        None => panic!(
            "{name}: an input ran for over {hang} s; kept as {}; TOCSIN_FUZZ_SEED={base}",
            kept_in_flight("slow").display()
        ),
        Some(status) if status.code() == Some(101) => {
            // A target's panic: the child kept the input and says which.
            panic!("{name} failed:\n{tail}")
        }
        Some(status) => panic!(
            "{name}: the process died ({status}) on an input; kept as {}; \
             TOCSIN_FUZZ_SEED={base}\n{tail}",
            kept_in_flight("crash").display()
        ),
    }
}

/// The child's part: run `name` here, writing each input to `inflight` first.
fn run_here(name: &'static str, inflight: &Path) {
    let target = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .expect("a target of that name");
    let secs: f64 = env_number("TOCSIN_FUZZ_SECS").unwrap_or(10.0);
    let max_inputs: u64 = env_number("TOCSIN_FUZZ_ITERATIONS").unwrap_or(u64::MAX);
    let base: u64 = env_number("TOCSIN_FUZZ_SEED").expect("the parent's seed");
    // One seed for the whole run; each target draws its own stream from it.
    let seed = base ^ u64::from_le_bytes(Sha256::digest(name)[..8].try_into().unwrap());
    let inflight = Inflight(Some(std::fs::File::create(inflight).unwrap()));
    let bounds = (Instant::now() + Duration::from_secs_f64(secs), max_inputs);
    // The engine runs rules and parsers on tokio's worker threads: a stack of their size.
    let outcome = std::thread::Builder::new()
        .stack_size(ENGINE_STACK)
        .spawn(move || fuzz_loop(name, target, seed, bounds, &inflight, &kept_dir(name)))
        .unwrap()
        .join()
        .expect("the fuzz loop itself does not panic");
    let rate = outcome.inputs as f64 / outcome.elapsed.as_secs_f64().max(1e-9);
    println!(
        "fuzz {name}: {} corpus files replayed, {} generated inputs in {:.1} s ({rate:.0}/s), {}",
        outcome.replayed,
        outcome.inputs,
        outcome.elapsed.as_secs_f64(),
        if outcome.failure.is_some() {
            "FAILED"
        } else {
            "0 failures"
        }
    );
    if let Some(failure) = outcome.failure {
        panic!("{failure}; TOCSIN_FUZZ_SEED={base}");
    }
    assert!(outcome.replayed > 0, "{name}: the corpus is empty");
}

#[test]
fn fuzz_config() {
    run("config");
}

#[test]
fn fuzz_rules() {
    run("rules");
}

#[test]
fn fuzz_matcher() {
    run("matcher");
}

#[test]
fn fuzz_alerts() {
    run("alerts");
}

#[test]
fn fuzz_cel() {
    run("cel");
}

/// The mutator itself: deterministic for a seed, bounded in size, and it changes its input.
#[test]
fn the_mutator_repeats_for_a_seed_and_stays_bounded() {
    let corpus = vec![(PathBuf::from("a"), b"service=\"storage\"".to_vec())];
    let words = dictionary("matcher");
    let run = |seed| {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..2000)
            .map(|_| mutate(&mut rng, &corpus, words))
            .collect::<Vec<_>>()
    };
    let first = run(7);
    assert_eq!(first, run(7));
    assert_ne!(first, run(8));
    assert!(first.iter().all(|i| i.len() <= MAX_LEN));
    let changed = first.iter().filter(|i| **i != corpus[0].1).count();
    assert!(
        changed > 1900,
        "{changed} of 2000 inputs differ from the seed"
    );
}

/// A target that fails on some input: the run stops there, keeps the input and names it.
#[test]
fn a_failing_input_is_kept_and_named() {
    let kept = tempfile::tempdir().unwrap();
    // No matcher seed holds a '#'; the mutator puts one in within a few hundred inputs.
    fn fails_on_hash(data: &[u8]) {
        assert!(!data.contains(&b'#'), "a '#'");
    }
    let bounds = (Instant::now() + Duration::from_secs(60), 1_000_000);
    let outcome = fuzz_loop(
        "matcher",
        fails_on_hash,
        1,
        bounds,
        &Inflight(None),
        kept.path(),
    );
    let failure = outcome.failure.expect("the target failed");
    let files = files_in(kept.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        failure.contains(&files[0].display().to_string()),
        "{failure}"
    );
    assert!(std::fs::read(&files[0]).unwrap().contains(&b'#'));
    assert!(outcome.inputs > 0 && outcome.inputs < 1_000_000);
}
