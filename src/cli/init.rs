//! `tocsin init DIR`: a commented starter config, the default rules and a rule unit test,
//! for people who do not start from the repository. What it writes passes `tocsin check`
//! and `tocsin test` as it is.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The files `init` writes, relative to its folder, with their text.
const FILES: [(&str, &str); 3] = [
    ("tocsin.yaml", include_str!("init/tocsin.yaml")),
    (
        "rules/default.yaml",
        include_str!("../../rules/default.yaml"),
    ),
    ("tests/starter.yaml", include_str!("init/starter.test.yaml")),
];

pub fn run(dir: &Path) -> ExitCode {
    match write(dir) {
        Ok(written) => {
            for path in &written {
                println!("wrote {}", path.display());
            }
            let config = dir.join("tocsin.yaml");
            println!(
                "next: tocsin check --config {config}\n      tocsin test {tests}\n      \
                 tocsin run --config {config}",
                config = config.display(),
                tests = dir.join("tests/starter.yaml").display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tocsin init: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Write every file, none if any is there already (nothing is overwritten).
fn write(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let paths: Vec<PathBuf> = FILES.iter().map(|(name, _)| dir.join(name)).collect();
    if let Some(there) = paths.iter().find(|p| p.exists()) {
        return Err(format!(
            "{} exists; nothing written (init writes only into a folder without its files: \
             move it away or pick another folder)",
            there.display()
        ));
    }
    for (path, (_, text)) in paths.iter().zip(FILES) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(paths)
}
