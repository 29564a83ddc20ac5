//! TLS for http probes: whom to trust (the Mozilla roots, a `ca_file`, or nobody when
//! `verify: false`), and how long the certificates the server showed still have to live.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::ProbeTls;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read tls.ca_file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "tls.ca_file {path} holds no usable CA certificate (expected PEM \"CERTIFICATE\" blocks)"
    )]
    NoCa { path: PathBuf },
    #[error("invalid TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

/// The Mozilla roots, built once: every verifying probe shares them.
fn mozilla_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            Arc::new(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
        })
        .clone()
}

/// The client config of one probe. `ca_file` is already resolved against the config folder.
pub fn client_config(
    tls: Option<&ProbeTls>,
    ca_file: Option<&Path>,
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let verify = tls.is_none_or(|t| t.verify);
    let mut config = if !verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth()
    } else if let Some(path) = ca_file {
        builder
            .with_root_certificates(roots_from(path)?)
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(mozilla_roots())
            .with_no_client_auth()
    };
    // Every probe is a full handshake on a fresh connection: it measures what a new client
    // meets, and the server shows its whole chain each time.
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Like blackbox_exporter's `ca_file`: these CAs replace the system's, they do not add to them.
fn roots_from(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsSetupError::CaFile {
            path: path.to_path_buf(),
            source,
        })?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsSetupError::NoCa {
            path: path.to_path_buf(),
        });
    }
    Ok(roots)
}

/// Days until the earliest `notAfter` among `chain` (negative once expired); `None` when no
/// certificate of the chain can be parsed.
pub fn earliest_expiry_days(chain: &[CertificateDer<'_>], now: DateTime<Utc>) -> Option<f64> {
    let earliest = chain
        .iter()
        .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .min()?;
    let seconds = earliest as f64 - now.timestamp_millis() as f64 / 1000.0;
    Some(seconds / 86_400.0)
}

/// `tls.verify: false`: any certificate is accepted, but the handshake signatures are still
/// checked, so the peer must hold the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_expiring_in(days: i64) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn the_earliest_expiry_of_the_chain_counts() {
        let now = Utc::now();
        let chain = [
            cert_expiring_in(90),
            cert_expiring_in(5),
            cert_expiring_in(30),
        ];
        let days = earliest_expiry_days(&chain, now).unwrap();
        assert!((days - 5.0).abs() < 0.01, "{days}");
        assert_eq!(earliest_expiry_days(&[], now), None);
        let garbage = CertificateDer::from(vec![1u8, 2, 3]);
        assert_eq!(earliest_expiry_days(&[garbage], now), None);
    }

    #[test]
    fn an_expired_certificate_counts_negative_days() {
        let days = earliest_expiry_days(&[cert_expiring_in(-3)], Utc::now()).unwrap();
        assert!((days + 3.0).abs() < 0.01, "{days}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let tls = ProbeTls {
            verify: true,
            ca_file: Some("ca.pem".into()),
            server_name: None,
        };
        let err = client_config(Some(&tls), Some(&path)).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = client_config(Some(&tls), Some(&missing)).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
