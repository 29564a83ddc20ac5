//! The config compiled for the core: rules, catalog, paging and templates, with the secrets
//! it names (read by `engine::secrets`). Immutable; a reload builds a new one and swaps it in
//! whole.

use std::sync::Arc;

use super::summary::Summaries;
use crate::config::secrets::ApiToken;
use crate::config::Config;
use crate::incident::Catalog;
use crate::paging::{AckSigner, Paging};
use crate::rules::RuleSet;

pub struct Setup {
    pub config: Config,
    pub rules: RuleSet,
    pub catalog: Catalog,
    pub paging: Paging,
    /// Signs ack links; pages carry no ack link without it.
    pub ack_signer: Option<AckSigner>,
    pub external_url: String,
    /// Bearer tokens accepted on /api/*, with their names and roles (empty: no auth);
    /// re-read on every reload.
    pub api_tokens: Arc<Vec<ApiToken>>,
    /// Key of the audit log's HMAC chain (`config::secrets::audit_key`); `None` where no
    /// API is served (`tocsin test`, `replay`).
    pub audit_key: Option<Arc<[u8]>>,
    /// Each rule's `summary:` template.
    pub summaries: Summaries,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("rules", &self.rules.rules.len())
            .finish()
    }
}

impl AsRef<Config> for Setup {
    fn as_ref(&self) -> &Config {
        &self.config
    }
}

impl Setup {
    pub fn new(config: Config, ack_key: Option<Vec<u8>>) -> Arc<Self> {
        Self::with_secrets(
            config,
            ack_key.map(|k| AckSigner::new(&k)),
            Vec::new(),
            None,
        )
    }

    /// With the secrets read from the files the config names, or the store.
    pub fn with_secrets(
        config: Config,
        ack_signer: Option<AckSigner>,
        api_tokens: Vec<ApiToken>,
        audit_key: Option<Arc<[u8]>>,
    ) -> Arc<Self> {
        let summaries = Summaries::new(config.rules.iter().filter_map(|loaded| {
            let summary = loaded.rule.summary.as_deref()?;
            Some((loaded.rule.name.as_str(), summary))
        }))
        .with_annotations(config.rules.iter().flat_map(|loaded| {
            let rule = loaded.rule.name.as_str();
            loaded
                .rule
                .annotations
                .iter()
                .map(move |(name, template)| (rule, name.as_str(), template.as_str()))
        }));
        Arc::new(Setup {
            rules: RuleSet::new(&config),
            catalog: Catalog::new(&config),
            paging: Paging::new(&config),
            ack_signer,
            external_url: config.external_url(),
            api_tokens: Arc::new(api_tokens),
            audit_key,
            summaries,
            config,
        })
    }
}
