//! The secrets a setup is built with: the API tokens, audit key and ack-link key files the
//! config names (`config::secrets`), else the ack-link key kept in the store.

use std::sync::Arc;

use super::Setup;
use crate::config::secrets::{api_tokens, audit_key, read_secret, SecretError};
use crate::config::Config;
use crate::paging::AckSigner;
use crate::store::{Store, StoreError};

impl Setup {
    /// Build from a config, reading the secrets it names (the ack-link key from the store
    /// when no file names one).
    pub async fn build(config: Config, ack_keys: &AckKeys) -> Result<Arc<Self>, SetupError> {
        let signer = ack_keys.signer(&config).await?;
        let tokens = api_tokens(&config)?;
        let audit_key: Arc<[u8]> = audit_key(&config)?.into();
        Ok(Setup::with_secrets(
            config,
            Some(signer),
            tokens,
            Some(audit_key),
        ))
    }
}

/// Why a setup could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("reading the ack-link key from the store: {0}")]
    Store(StoreError),
}

/// Where ack-link keys come from: `server.ack_secret_file`, else the key kept in the store,
/// one for every engine on it, so a link signed by one engine is accepted by all. The stored
/// key is read once and kept, so a reload needs no store.
#[derive(Clone)]
pub struct AckKeys {
    store: Store,
    stored: Arc<tokio::sync::OnceCell<AckSigner>>,
}

/// The stored key's name in the store.
const ACK_KEY_NAME: &str = "ack_link_key";

impl AckKeys {
    pub fn new(store: Store) -> AckKeys {
        AckKeys {
            store,
            stored: Arc::default(),
        }
    }

    /// The signer for `config`.
    pub async fn signer(&self, config: &Config) -> Result<AckSigner, SetupError> {
        if let Some(file) = &config.server.ack_secret_file {
            return Ok(AckSigner::new(&read_secret(&config.resolve_path(file))?));
        }
        let signer = self
            .stored
            .get_or_try_init(|| stored_ack_signer(config, &self.store))
            .await?;
        Ok(signer.clone())
    }
}

/// The store's key, made by the first engine that asks. `data/ack-link.key`, where earlier
/// versions kept a key of each engine's own, becomes the store's key if it has none yet, and
/// links signed with it are accepted either way: links already sent keep working.
async fn stored_ack_signer(config: &Config, store: &Store) -> Result<AckSigner, SetupError> {
    let earlier_file = config.data_dir().join("ack-link.key");
    let earlier = if earlier_file.exists() {
        Some(read_secret(&earlier_file)?)
    } else {
        None
    };
    let candidate = match &earlier {
        Some(key) => String::from_utf8_lossy(key).into_owned(),
        None => hex::encode(rand::random::<[u8; 32]>()),
    };
    let key = store
        .shared_secret(ACK_KEY_NAME, &candidate)
        .await
        .map_err(SetupError::Store)?;
    let signer = AckSigner::new(key.as_bytes());
    Ok(match earlier {
        Some(earlier) => signer.accepting(&earlier),
        None => signer,
    })
}
