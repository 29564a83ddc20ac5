//! Reading the secrets the config names by file: API tokens, the ack-link key, webhook
//! secrets and the SMTP password. Every secret file is read here, and never logged.

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

/// API bearer tokens from `server.auth.tokens_file`, one per line (blank lines and `#`
/// comments skipped); none when the config sets no auth.
pub fn api_tokens(config: &Config) -> Result<Vec<String>, SecretError> {
    let Some(auth) = &config.server.auth else {
        return Ok(Vec::new());
    };
    let path = config.resolve_path(&auth.tokens_file);
    let bytes = read(&path, "tokens file")?;
    let text = String::from_utf8(bytes).map_err(|_| SecretError::NotUtf8 { path: path.clone() })?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if tokens.is_empty() {
        return Err(SecretError::NoToken { path });
    }
    Ok(tokens)
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
}
