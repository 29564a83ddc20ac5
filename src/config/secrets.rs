//! Reading the secrets the config names by file: API tokens (with their names and roles),
//! the ack-link key, the audit key, webhook secrets and the SMTP password. Every secret
//! file is read here, and never logged.

use std::path::{Path, PathBuf};

use super::Config;

/// Why a secret could not be had. The message names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read {what} {}: {reason}", path.display())]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("tokens file {} is not UTF-8", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("tokens file {} holds no token", path.display())]
    NoToken { path: PathBuf },
    #[error("tokens file {}: {reason}", path.display())]
    BadLine { path: PathBuf, reason: String },
}

/// A secret file's content without its trailing newline (as `echo secret > file` writes it).
pub fn read_secret(path: &Path) -> Result<Vec<u8>, SecretError> {
    read(path, "secret file")
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, SecretError> {
    let mut bytes = std::fs::read(path).map_err(|reason| SecretError::Unreadable {
        what,
        path: path.to_path_buf(),
        reason,
    })?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Ok(bytes)
}

/// What a token may do. Ordered viewer < responder < admin; `ingest` stands apart (pushing
/// signals only), and responder and admin may ingest too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reads incidents, queues, on-call and the audit log.
    Viewer,
    /// Pushes signals (Prometheus, Alertmanager, CRIs, heartbeats), nothing else.
    Ingest,
    /// Acts on incidents (ack, resolve, notes, declare, escalate, assign, silences) and ingests.
    Responder,
    /// Everything: reload, severity pins, overrides, silences of others.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Ingest, Role::Responder, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Ingest => "ingest",
            Role::Responder => "responder",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// May a token with this role do what `needed` allows?
    pub fn grants(self, needed: Role) -> bool {
        use Role::*;
        match needed {
            Viewer => matches!(self, Viewer | Responder | Admin),
            Ingest => matches!(self, Ingest | Responder | Admin),
            Responder => matches!(self, Responder | Admin),
            Admin => self == Admin,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the tokens file: `NAME ROLE TOKEN`, or a bare `TOKEN` (every role, no name).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Who acts with it; `None` for a bare token, whose callers name themselves in `by`.
    pub name: Option<String>,
    pub role: Role,
    pub token: String,
}

impl std::fmt::Debug for ApiToken {
    // Never the token itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The tokens of a tokens file's text, or what is wrong with the first bad line (its number
/// and why, never its content: a line holds a secret). Blank lines and `#` comments are
/// skipped.
pub fn parse_tokens(text: &str) -> Result<Vec<ApiToken>, String> {
    let mut tokens = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let token = match fields[..] {
            [token] => ApiToken {
                name: None,
                role: Role::Admin,
                token: token.to_string(),
            },
            [name, role, token] => {
                let role = Role::parse(role).ok_or_else(|| {
                    format!(
                        "line {}: unknown role {role:?}: expected viewer, ingest, responder or \
                         admin",
                        number + 1
                    )
                })?;
                ApiToken {
                    name: Some(name.to_string()),
                    role,
                    token: token.to_string(),
                }
            }
            _ => {
                return Err(format!(
                    "line {}: expected `TOKEN` or `NAME ROLE TOKEN` ({} fields found)",
                    number + 1,
                    fields.len()
                ))
            }
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// API bearer tokens from `server.auth.tokens_file` (see [`parse_tokens`]); none when the
/// config sets no auth.
pub fn api_tokens(config: &Config) -> Result<Vec<ApiToken>, SecretError> {
    let Some(auth) = &config.server.auth else {
        return Ok(Vec::new());
    };
    let path = config.resolve_path(&auth.tokens_file);
    let bytes = read(&path, "tokens file")?;
    let text = String::from_utf8(bytes).map_err(|_| SecretError::NotUtf8 { path: path.clone() })?;
    let tokens = parse_tokens(&text).map_err(|reason| SecretError::BadLine {
        path: path.clone(),
        reason,
    })?;
    if tokens.is_empty() {
        return Err(SecretError::NoToken { path });
    }
    Ok(tokens)
}

/// The audit log's key: `server.audit_key_file`, else `audit.key` beside the data, made
/// (random, mode 0600) when missing. The store never holds it, so whoever can write the
/// store cannot forge the log's chain.
pub fn audit_key(config: &Config) -> Result<Vec<u8>, SecretError> {
    if let Some(file) = &config.server.audit_key_file {
        return read(&config.resolve_path(file), "audit key file");
    }
    let path = config.data_dir().join("audit.key");
    if !path.exists() {
        write_new_key(&path).map_err(|reason| SecretError::Unreadable {
            what: "audit key file",
            path: path.clone(),
            reason,
        })?;
    }
    read(&path, "audit key file")
}

/// A random hex key at `path`, readable by this user only; an existing file is left alone.
fn write_new_key(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let key = hex::encode(rand::random::<[u8; 32]>());
            file.write_all(key.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_loses_its_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, " s3cret \r\n\n").unwrap();
        assert_eq!(read_secret(&path).unwrap(), b" s3cret ");
    }

    #[test]
    fn a_missing_secret_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing");
        let message = read_secret(&path).unwrap_err().to_string();
        assert!(message.starts_with(&format!("cannot read secret file {}: ", path.display())));
    }

    #[test]
    fn tokens_have_names_and_roles_or_stand_alone() {
        let tokens =
            parse_tokens("# who\nalice responder t1\n\n  bare  \nbot ingest t2\n").unwrap();
        assert_eq!(tokens.len(), 3);
        assert_eq!(tokens[0].name.as_deref(), Some("alice"));
        assert_eq!(tokens[0].role, Role::Responder);
        assert_eq!(tokens[0].token, "t1");
        assert_eq!(tokens[1].name, None);
        assert_eq!(tokens[1].role, Role::Admin);
        assert_eq!(tokens[1].token, "bare");
        assert_eq!(tokens[2].role, Role::Ingest);
    }

    #[test]
    fn a_bad_line_is_named_without_its_content() {
        let why = parse_tokens("ok\nalice boss s3cret\n").unwrap_err();
        assert_eq!(
            why,
            "line 2: unknown role \"boss\": expected viewer, ingest, responder or admin"
        );
        let why = parse_tokens("alice s3cret\n").unwrap_err();
        assert!(
            why.starts_with("line 1: expected `TOKEN` or `NAME ROLE TOKEN`"),
            "{why}"
        );
        assert!(!why.contains("s3cret"));
    }

    #[test]
    fn roles_are_ordered_with_ingest_apart() {
        use Role::*;
        let grants = |r: Role| {
            Role::ALL
                .into_iter()
                .filter(|n| r.grants(*n))
                .collect::<Vec<_>>()
        };
        assert_eq!(grants(Viewer), vec![Viewer]);
        assert_eq!(grants(Ingest), vec![Ingest]);
        assert_eq!(grants(Responder), vec![Viewer, Ingest, Responder]);
        assert_eq!(grants(Admin), vec![Viewer, Ingest, Responder, Admin]);
    }

    #[test]
    fn an_audit_key_is_made_once_for_this_user_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("audit.key");
        write_new_key(&path).unwrap();
        let first = std::fs::read(&path).unwrap();
        write_new_key(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
        assert_eq!(first.len(), 65);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
