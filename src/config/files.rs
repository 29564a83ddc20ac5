//! Checks that read the filesystem and the environment: every file the config names exists
//! and holds what it should, the email folder can be created, and the environment variables
//! it names are set. The engine would otherwise find out at start, or worse at its first
//! page; `check` runs them too so that it fails what the engine would.

use std::io::Read;
use std::path::{Path as FsPath, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::locate::Path;
use super::report::FileReport;
use super::Config;

/// Largest file read (a CA bundle is a few hundred KiB; a secret a few bytes).
const MAX_FILE: u64 = 16 << 20;

pub(super) fn check_files(config: &Config, report: &mut FileReport) {
    let root = Path::root();
    let server = root.key("server");
    if let Some(auth) = &config.server.auth {
        let at = server.key("auth").key("tokens_file");
        let hint = "create it with one API token per line (`NAME ROLE TOKEN` or `TOKEN`), or remove server.auth to serve the \
                    API without tokens";
        if let Some(text) = read(
            config,
            report,
            at.clone(),
            "tokens file",
            &auth.tokens_file,
            hint,
        ) {
            match super::secrets::parse_tokens(&String::from_utf8_lossy(&text)) {
                Err(why) => report.at(
                    at,
                    format!("tokens file {:?}, {why}; {hint}", auth.tokens_file),
                ),
                Ok(tokens) if tokens.is_empty() => report.at(
                    at,
                    format!(
                        "tokens file {:?} holds no token: every API request would be refused; {hint}",
                        auth.tokens_file
                    ),
                ),
                Ok(_) => {}
            }
        }
    }
    if let Some(file) = &config.server.audit_key_file {
        let at = server.key("audit_key_file");
        let hint = "put a random key in it (e.g. `openssl rand -hex 32 > FILE`), or remove \
                    server.audit_key_file to have tocsin generate the key beside the data";
        if let Some(key) = read(config, report, at.clone(), "audit key file", file, hint) {
            if key.iter().all(u8::is_ascii_whitespace) {
                report.at(
                    at,
                    format!("audit key file {file:?} is empty: anyone could forge the audit log; {hint}"),
                );
            }
        }
    }
    if let Some(file) = &config.server.ack_secret_file {
        let at = server.key("ack_secret_file");
        let hint = "put a random key in it (e.g. `openssl rand -hex 32 > FILE`), or remove \
                    server.ack_secret_file to have tocsin generate the key";
        if let Some(key) = read(config, report, at.clone(), "ack secret file", file, hint) {
            if key.iter().all(u8::is_ascii_whitespace) {
                report.at(
                    at,
                    format!(
                        "ack secret file {file:?} is empty: anyone could sign ack links; {hint}"
                    ),
                );
            }
        }
    }
    for (i, probe) in config.probes.iter().enumerate() {
        let Some(tls) = probe.tls.as_ref().filter(|t| t.verify) else {
            continue;
        };
        let Some(file) = &tls.ca_file else {
            continue;
        };
        let at = report
            .item(&root.key("probes"), i)
            .key("tls")
            .key("ca_file");
        let hint = "give the PEM file of the CA that signed the server's certificate, or remove \
                    tls.ca_file to trust the Mozilla roots";
        if let Some(pem) = read(config, report, at.clone(), "CA file", file, hint) {
            let certificates = CertificateDer::pem_slice_iter(&pem)
                .filter(Result::is_ok)
                .count();
            if certificates == 0 {
                report.at(
                    at,
                    format!(
                        "CA file {file:?} holds no certificate (expected PEM \"CERTIFICATE\" \
                         blocks): every run of probe {:?} would fail; {hint}",
                        probe.name
                    ),
                );
            }
        }
    }
    let notifiers = root.key("notifiers");
    for (i, hook) in config.notifiers.webhooks.iter().enumerate() {
        if let Some(file) = &hook.secret_file {
            let at = notifiers.key("webhooks").index(i).key("secret_file");
            let hint = "create it with the secret that signs the webhook's requests, or \
                        remove secret_file to send them unsigned";
            read(config, report, at, "webhook secret file", file, hint);
        }
    }
    if let Some(file) = config
        .watchdog
        .as_ref()
        .and_then(|w| w.secret_file.as_ref())
    {
        let at = root.key("watchdog").key("secret_file");
        let hint = "create it with the secret the watchdog URL expects, or remove secret_file";
        read(config, report, at, "watchdog secret file", file, hint);
    }
    let Some(email) = &config.notifiers.email else {
        return;
    };
    let at = notifiers.key("email");
    if let Some(smtp) = &email.smtp {
        let at = at.key("smtp");
        if let Some(file) = &smtp.password_file {
            let hint = "create it with the SMTP password, or use password_env";
            read(
                config,
                report,
                at.key("password_file"),
                "SMTP password file",
                file,
                hint,
            );
        }
        if let (Some(var), Some(_)) = (&smtp.password_env, &smtp.username) {
            if std::env::var_os(var).is_none() {
                report.warn(
                    at.key("password_env"),
                    format!(
                        "environment variable {var:?} (password_env) is not set: the engine \
                         needs it to sign in to the SMTP server and refuses to start without \
                         it; set it in the engine's environment, or use password_file"
                    ),
                );
            }
        }
    }
    if let Some(file) = &email.file {
        if let Err(why) = creatable(&config.resolve_path(&file.dir)) {
            report.at(
                at.key("file").key("dir"),
                format!(
                    "the email folder {:?} cannot be created: {why}; pages sent by email would \
                     all fail; choose another dir",
                    file.dir
                ),
            );
        }
    }
}

/// The content of a file the config names, or an error at `at` saying why it cannot be read.
fn read(
    config: &Config,
    report: &mut FileReport,
    at: Path,
    what: &str,
    file: &str,
    hint: &str,
) -> Option<Vec<u8>> {
    let path = config.resolve_path(file);
    match read_bounded(&path) {
        Ok(bytes) => Some(bytes),
        Err(why) => {
            report.at(
                at,
                format!("{what} {file:?} ({}) {why}; {hint}", path.display()),
            );
            None
        }
    }
}

fn read_bounded(path: &FsPath) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        std::io::ErrorKind::PermissionDenied => {
            "cannot be read: permission denied for the user tocsin runs as".to_string()
        }
        _ => format!("cannot be read: {e}"),
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    if metadata.is_dir() {
        return Err("is a folder, not a file".into());
    }
    // A FIFO or a device would block the read, or never end.
    if !metadata.is_file() {
        return Err("is not a regular file".into());
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("is larger than {} MiB", MAX_FILE >> 20));
    }
    Ok(bytes)
}

/// Whether `dir` exists as a folder this user may write in, or can be made: its nearest
/// existing ancestor is a folder this user may write in.
fn creatable(dir: &FsPath) -> Result<(), String> {
    let mut existing: PathBuf = dir.to_path_buf();
    while std::fs::symlink_metadata(&existing).is_err() {
        if !existing.pop() {
            return Err("no part of its path exists".into());
        }
    }
    let metadata = std::fs::metadata(&existing)
        .map_err(|e| format!("{} cannot be read: {e}", existing.display()))?;
    if !metadata.is_dir() {
        return Err(format!("{} is a file, not a folder", existing.display()));
    }
    if !writable(&existing) {
        return Err(format!(
            "{} is not writable by the user tocsin runs as",
            existing.display()
        ));
    }
    Ok(())
}

/// access(2) with W_OK and X_OK: what the kernel would let this process do there.
#[cfg(unix)]
fn writable(dir: &FsPath) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(not(unix))]
fn writable(dir: &FsPath) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly())
}
