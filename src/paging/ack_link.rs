//! Signed acknowledgement links.
//!
//! A token binds an incident, a recipient and an expiry, signed with HMAC-SHA256 under a
//! secret key. It cannot be forged, moved to another incident or recipient, or used after it
//! expires; verification compares signatures in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AckClaim {
    #[serde(rename = "i")]
    pub incident_id: i64,
    #[serde(rename = "r")]
    pub recipient: String,
    #[serde(rename = "e")]
    pub expires: i64,
    /// A link in a page about a support case acknowledges the case (`incident_id` is 0).
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AckLinkError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link expired at {0}")]
    Expired(DateTime<Utc>),
}

#[derive(Clone)]
pub struct AckSigner {
    key: Vec<u8>,
    /// Keys links were signed with before `key` took over: still accepted, never used to sign.
    older: Vec<Vec<u8>>,
}

impl std::fmt::Debug for AckSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckSigner(<secret>)")
    }
}

impl AckSigner {
    pub fn new(key: &[u8]) -> Self {
        AckSigner {
            key: key.to_vec(),
            older: Vec::new(),
        }
    }

    /// Also accept links signed with `key` (an earlier key, so links already sent work).
    pub fn accepting(mut self, key: &[u8]) -> Self {
        if key != self.key.as_slice() {
            self.older.push(key.to_vec());
        }
        self
    }

    fn mac(key: &[u8]) -> HmacSha256 {
        HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
    }

    /// The signature of a calendar feed's path (`schedules/NAME` or `responders/ID`): it
    /// stands in for a bearer token, which calendar apps cannot send. Domain-separated from
    /// ack links, so one is never the other.
    pub fn sign_feed(&self, feed: &str) -> String {
        Self::feed_mac(&self.key, feed)
    }

    fn feed_mac(key: &[u8], feed: &str) -> String {
        let mut mac = Self::mac(key);
        mac.update(b"tocsin calendar feed\0");
        mac.update(feed.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Does `signature` sign `feed` (under the key or an earlier one)? Constant time.
    pub fn verify_feed(&self, feed: &str, signature: &str) -> bool {
        use subtle::ConstantTimeEq;
        std::iter::once(&self.key)
            .chain(&self.older)
            .fold(false, |ok, key| {
                ok | bool::from(
                    Self::feed_mac(key, feed)
                        .as_bytes()
                        .ct_eq(signature.as_bytes()),
                )
            })
    }

    /// A customer's status-page token (`/status/{token}`): the customer's id and its
    /// signature, domain-separated from ack and feed links. It does not expire; changing
    /// the key (`server.ack_secret_file`) revokes every status link at once.
    pub fn sign_status(&self, customer: &str) -> String {
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(customer.as_bytes()),
            Self::status_mac(&self.key, customer)
        )
    }

    fn status_mac(key: &[u8], customer: &str) -> String {
        let mut mac = Self::mac(key);
        mac.update(b"tocsin customer status\0");
        mac.update(customer.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The customer a status token names, if its signature is good (under the key or an
    /// earlier one). Constant time in the signature.
    pub fn verify_status(&self, token: &str) -> Option<String> {
        use subtle::ConstantTimeEq;
        let (body, signature) = token.split_once('.')?;
        let customer = String::from_utf8(URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let good = std::iter::once(&self.key)
            .chain(&self.older)
            .fold(false, |ok, key| {
                ok | bool::from(
                    Self::status_mac(key, &customer)
                        .as_bytes()
                        .ct_eq(signature.as_bytes()),
                )
            });
        good.then_some(customer)
    }

    pub fn sign(&self, incident_id: i64, recipient: &str, expires: DateTime<Utc>) -> String {
        self.sign_claim(&AckClaim {
            incident_id,
            recipient: recipient.to_string(),
            expires: expires.timestamp(),
            case_id: None,
        })
    }

    /// The ack link of a page about support case `case_id`.
    pub fn sign_case(&self, case_id: i64, recipient: &str, expires: DateTime<Utc>) -> String {
        self.sign_claim(&AckClaim {
            incident_id: 0,
            recipient: recipient.to_string(),
            expires: expires.timestamp(),
            case_id: Some(case_id),
        })
    }

    fn sign_claim(&self, claim: &AckClaim) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claim).expect("claim serializes"));
        let mut mac = Self::mac(&self.key);
        mac.update(body.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{body}.{signature}")
    }

    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AckClaim, AckLinkError> {
        let (body, signature) = token.split_once('.').ok_or(AckLinkError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AckLinkError::Malformed)?;
        // verify_slice compares in constant time.
        let signed_with = |key: &[u8]| {
            let mut mac = Self::mac(key);
            mac.update(body.as_bytes());
            mac.verify_slice(&signature).is_ok()
        };
        if !std::iter::once(&self.key)
            .chain(&self.older)
            .any(|key| signed_with(key))
        {
            return Err(AckLinkError::BadSignature);
        }
        let claim: AckClaim = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(AckLinkError::Malformed)?;
        let expires = DateTime::from_timestamp(claim.expires, 0).ok_or(AckLinkError::Malformed)?;
        if now >= expires {
            return Err(AckLinkError::Expired(expires));
        }
        Ok(claim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_signature_binds_its_feed_and_key() {
        let signer = AckSigner::new(b"k1");
        let sig = signer.sign_feed("schedules/primary");
        assert!(signer.verify_feed("schedules/primary", &sig));
        assert!(!signer.verify_feed("schedules/other", &sig));
        assert!(!signer.verify_feed("schedules/primary", ""));
        assert!(!AckSigner::new(b"k2").verify_feed("schedules/primary", &sig));
        assert!(AckSigner::new(b"k2")
            .accepting(b"k1")
            .verify_feed("schedules/primary", &sig));
    }

    #[test]
    fn a_status_token_names_its_customer_and_nothing_else() {
        let signer = AckSigner::new(b"k1");
        let contoso = signer.sign_status("contoso");
        assert_eq!(signer.verify_status(&contoso).as_deref(), Some("contoso"));
        // Another customer's name under contoso's signature.
        let (_, sig) = contoso.split_once('.').unwrap();
        let moved = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(b"fabrikam"));
        assert_eq!(signer.verify_status(&moved), None);
        assert_eq!(signer.verify_status("contoso"), None);
        assert_eq!(signer.verify_status(""), None);
        assert_eq!(AckSigner::new(b"k2").verify_status(&contoso), None);
        // A feed signature is not a status signature.
        let feed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(b"contoso"),
            signer.sign_feed("contoso")
        );
        assert_eq!(signer.verify_status(&feed), None);
    }

    #[test]
    fn sign_and_verify() {
        let signer = AckSigner::new(b"key");
        let now = Utc::now();
        let token = signer.sign(42, "alice", now + chrono::Duration::hours(1));
        let claim = signer.verify(&token, now).unwrap();
        assert_eq!((claim.incident_id, claim.recipient.as_str()), (42, "alice"));
        assert!(matches!(
            signer.verify(&token, now + chrono::Duration::hours(2)),
            Err(AckLinkError::Expired(_))
        ));
        assert_eq!(
            AckSigner::new(b"other").verify(&token, now),
            Err(AckLinkError::BadSignature)
        );
        // Moving the token to another incident breaks the signature.
        let case = signer.sign_case(42, "alice", now + chrono::Duration::hours(1));
        let claim = signer.verify(&case, now).unwrap();
        assert_eq!((claim.incident_id, claim.case_id), (0, Some(42)));
        assert_eq!(signer.verify(&token, now).unwrap().case_id, None);
        let (_, sig) = token.split_once('.').unwrap();
        let forged_body = URL_SAFE_NO_PAD.encode(br#"{"i":43,"r":"alice","e":9999999999}"#);
        assert_eq!(
            signer.verify(&format!("{forged_body}.{sig}"), now),
            Err(AckLinkError::BadSignature)
        );
        assert_eq!(signer.verify("garbage", now), Err(AckLinkError::Malformed));
    }

    #[test]
    fn an_earlier_key_is_accepted_and_never_signs() {
        let now = Utc::now();
        let old = AckSigner::new(b"old").sign(7, "bob", now + chrono::Duration::hours(1));
        let signer = AckSigner::new(b"new").accepting(b"old");
        assert_eq!(signer.verify(&old, now).unwrap().incident_id, 7);
        let new = signer.sign(7, "bob", now + chrono::Duration::hours(1));
        assert_eq!(
            AckSigner::new(b"old").verify(&new, now),
            Err(AckLinkError::BadSignature)
        );
        assert_eq!(
            AckSigner::new(b"new").accepting(b"third").verify(&old, now),
            Err(AckLinkError::BadSignature)
        );
    }
}
