//! What is wrong in one file: errors and warnings gathered against its text by the loader,
//! the validator and the file checks, positioned (line, column) once the file is reported.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::locate::{locate, Path, Seg};
use super::ConfigError;

/// Errors against one file's text, positioned when the file is reported.
pub(super) struct FileReport {
    pub file: PathBuf,
    pub text: String,
    /// (path, point at the key rather than the value, message)
    pub errors: Vec<(Path, bool, String)>,
    /// Errors whose position the YAML parser already knows.
    pub positioned: Vec<ConfigError>,
    /// What depends on where tocsin runs (an unset `password_env`): a warning from `check`,
    /// an error from the engine.
    pub warnings: Vec<(Path, String)>,
    /// For lists parsed item by item: the original index of each item that parsed.
    pub(super) indices: HashMap<String, Vec<usize>>,
    /// Names (or ids) of items that failed to parse, by list: references to them are not
    /// reported again as unknown.
    pub(super) broken: HashMap<String, HashSet<String>>,
}

impl FileReport {
    pub fn new(file: PathBuf, text: String) -> Self {
        FileReport {
            file,
            text,
            errors: Vec::new(),
            positioned: Vec::new(),
            warnings: Vec::new(),
            indices: HashMap::new(),
            broken: HashMap::new(),
        }
    }

    /// The path of the `i`-th parsed item of a list (items that failed to parse are skipped
    /// in the config, but not in the file).
    pub fn item(&self, list: &Path, i: usize) -> Path {
        let original = self
            .indices
            .get(&list.to_string())
            .and_then(|v| v.get(i).copied())
            .unwrap_or(i);
        list.index(original)
    }

    /// Did an item of this list named `name` fail to parse?
    pub fn is_broken(&self, list: &str, name: &str) -> bool {
        let section = list.split('.').next().unwrap_or(list);
        [list, section]
            .iter()
            .filter_map(|l| self.broken.get(*l))
            .any(|names| names.contains(name) || names.contains("*"))
    }

    pub fn at(&mut self, path: Path, message: impl Into<String>) {
        self.errors.push((path, false, message.into()));
    }

    pub fn at_key(&mut self, path: Path, message: impl Into<String>) {
        self.errors.push((path, true, message.into()));
    }

    pub fn warn(&mut self, path: Path, message: impl Into<String>) {
        self.warnings.push((path, message.into()));
    }

    pub fn position(&self, path: &Path, at_key: bool) -> (usize, usize) {
        locate(&self.text, path, at_key)
    }

    /// Position every error and warning; a file's come out in the order they appear in it.
    pub(super) fn finish(self, out: &mut Vec<ConfigError>, warnings: &mut Vec<ConfigError>) {
        for (path, message) in &self.warnings {
            let (line, column) = locate(&self.text, path, false);
            warnings.push(ConfigError {
                file: self.file.clone(),
                line,
                column,
                message: message.clone(),
            });
        }
        let mut errors = self.positioned;
        for (path, at_key, message) in self.errors {
            let (line, column) = locate(&self.text, &path, at_key);
            errors.push(ConfigError {
                file: self.file.clone(),
                line,
                column,
                message,
            });
        }
        errors.sort_by_key(|e| (e.line, e.column));
        errors.dedup();
        out.extend(errors);
    }

    /// Deserialize `value` (found at `path`) into `T`, reporting a failure at its exact place.
    pub fn parse<T: DeserializeOwned>(&mut self, path: &Path, value: &Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = path.join(e.path());
                let message = clean_message(&e.inner().to_string());
                // An unknown field is best shown at its key.
                if let Some(field) = unknown_field_name(&message) {
                    let key_path = match inner.0.last() {
                        Some(Seg::Key(last)) if *last == field => inner,
                        _ => inner.key(&field),
                    };
                    self.at_key(key_path, message);
                } else {
                    self.at(inner, message);
                }
                None
            }
        }
    }
}

/// serde's messages carry the parser's own position and path; the report adds its own.
pub(super) fn clean_message(message: &str) -> String {
    // The first position is the one the report gives; a second (where the construct began)
    // stays in the message.
    let re = regex::Regex::new(r" at line \d+ column \d+").expect("static regex");
    let message = re.replace(message, "");
    message.replace('`', "\"")
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field \"")?;
    Some(rest.split('"').next()?.to_string())
}
