//! Installing tocsin: `tocsin init` writes a starter that passes `check` and `test` and
//! runs.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{eventually, free_port, run_tocsin};

/// `tocsin init DIR` into a folder that does not exist yet: the config passes `check`, the
/// rule test passes `test`, and the engine starts on it and is ready; a second init into
/// the same folder writes nothing and says why.
#[tokio::test]
async fn init_writes_a_starter_that_passes_check_and_test_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc-tocsin");
    let dir_arg = dir.to_str().unwrap();
    let (code, out, err) = run_tocsin(tmp.path(), &["init", dir_arg]).await;
    assert_eq!(code, 0, "{out}{err}");
    for file in ["tocsin.yaml", "rules/default.yaml", "tests/starter.yaml"] {
        assert!(
            out.contains(&format!("wrote {}", dir.join(file).display())),
            "{out}"
        );
    }
    let config = dir.join("tocsin.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.starts_with("# tocsin's config, written by `tocsin init`"),
        "{text}"
    );

    // From another working folder: the files' paths are relative to the config's folder.
    let (code, out, err) =
        run_tocsin(tmp.path(), &["check", "--config", config.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": OK ("), "{out}");
    let tests = dir.join("tests/starter.yaml");
    let (code, out, err) = run_tocsin(tmp.path(), &["test", tests.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 passed, 0 failed"), "{out}");

    let port = free_port();
    let mut engine = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["run", "--config", config.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let ready = eventually(Duration::from_secs(20), || async {
        let response = http
            .get(format!("http://127.0.0.1:{port}/-/ready"))
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
    let _ = engine.kill();
    let _ = engine.wait();
    assert!(ready.is_some(), "the starter config runs and is ready");
    assert!(dir.join("data/tocsin.db").exists());

    let before = std::fs::read_to_string(&config).unwrap();
    let (code, out, err) = run_tocsin(tmp.path(), &["init", dir_arg]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("tocsin.yaml exists; nothing written"), "{err}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
}
