//! Checkpoints: a chain head sent off the proxy and countersigned by the
//! control service, so a log rewritten up to that head no longer matches.
//!
//! The service signs, with Ed25519, the domain-separated message
//!
//! ```text
//! mcp-guard checkpoint v1\n<chain>\n<seq>\n<hash hex>\n<received_at ms>
//! ```
//!
//! Unambiguous: a chain id is sanitized (no newline, see
//! [`sanitize_chain_id`]) and the other fields are digits or hex.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::chain::{sanitize_chain_id, to_hex, ChainHead, MAX_CHAIN_ID_LEN};
use super::record::from_hex;
use crate::signing::key_id;

/// First line of every countersigned message.
const MESSAGE_PREFIX: &str = "mcp-guard checkpoint v1";

/// Largest checkpoint request body accepted (a chain id of
/// [`MAX_CHAIN_ID_LEN`] plus a hash fit many times over).
pub const MAX_CHECKPOINT_BYTES: usize = 1024;

/// What a proxy sends: where one chain stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Chain id (sanitized form).
    pub chain: String,
    /// Sequence number of the chain's last record.
    pub seq: u64,
    /// That record's hash, 64 lower-case hex digits.
    pub hash: String,
}

/// A checkpoint as the service countersigned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Countersigned {
    /// Chain id.
    pub chain: String,
    /// Sequence number.
    pub seq: u64,
    /// Record hash (hex).
    pub hash: String,
    /// When the service received it, ms since the Unix epoch.
    pub received_at: u64,
    /// Id of the signing key ([`key_id`]).
    pub key: String,
    /// Base64 Ed25519 signature over [`message`].
    pub ed25519: String,
}

/// Why a checkpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CheckpointError {
    /// Not the expected JSON.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// Chain id empty, too long or not in sanitized form.
    #[error("chain id must be 1..={MAX_CHAIN_ID_LEN} of [A-Za-z0-9-._:~/@]")]
    BadChain,
    /// seq 0 (no record to vouch for).
    #[error("seq must be at least 1")]
    BadSeq,
    /// Hash not 64 lower-case hex digits.
    #[error("hash must be 64 lower-case hex digits")]
    BadHash,
    /// Signed by a key not trusted.
    #[error("signed by key {0}, which is not trusted")]
    UnknownKey(String),
    /// The signature does not match.
    #[error("countersignature does not verify")]
    BadSignature,
}

impl Checkpoint {
    /// The checkpoint of a chain head (`None` before the first record).
    pub fn from_head(head: &ChainHead) -> Option<Self> {
        (head.seq > 0).then(|| Self {
            chain: head.chain.clone(),
            seq: head.seq,
            hash: head.hash_hex(),
        })
    }

    /// The JSON request body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses and checks a request body.
    pub fn parse(body: &[u8]) -> Result<Self, CheckpointError> {
        if body.len() > MAX_CHECKPOINT_BYTES {
            return Err(CheckpointError::Malformed("too large".into()));
        }
        let cp: Self =
            serde_json::from_slice(body).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        cp.check()?;
        Ok(cp)
    }

    /// Checks the fields' form.
    pub fn check(&self) -> Result<(), CheckpointError> {
        check_fields(&self.chain, self.seq, &self.hash)
    }

    /// Countersigns this checkpoint, received at `received_at` ms.
    pub fn countersign(&self, received_at: u64, key: &SigningKey) -> Countersigned {
        let msg = message(&self.chain, self.seq, &self.hash, received_at);
        Countersigned {
            chain: self.chain.clone(),
            seq: self.seq,
            hash: self.hash.clone(),
            received_at,
            key: key_id(&key.verifying_key()),
            ed25519: STANDARD.encode(key.sign(&msg).to_bytes()),
        }
    }
}

fn check_fields(chain: &str, seq: u64, hash: &str) -> Result<(), CheckpointError> {
    if chain.is_empty() || chain.len() > MAX_CHAIN_ID_LEN || sanitize_chain_id(chain) != chain {
        return Err(CheckpointError::BadChain);
    }
    if seq == 0 {
        return Err(CheckpointError::BadSeq);
    }
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(CheckpointError::BadHash);
    }
    Ok(())
}

/// The exact bytes the service signs.
pub fn message(chain: &str, seq: u64, hash: &str, received_at: u64) -> Vec<u8> {
    format!("{MESSAGE_PREFIX}\n{chain}\n{seq}\n{hash}\n{received_at}").into_bytes()
}

impl Countersigned {
    /// Checks the form and the signature against `trusted` keys; returns the
    /// hash as bytes.
    pub fn verify(&self, trusted: &[VerifyingKey]) -> Result<[u8; 32], CheckpointError> {
        check_fields(&self.chain, self.seq, &self.hash)?;
        let key = trusted
            .iter()
            .find(|k| key_id(k) == self.key)
            .ok_or_else(|| CheckpointError::UnknownKey(self.key.clone()))?;
        let raw = STANDARD
            .decode(&self.ed25519)
            .map_err(|_| CheckpointError::BadSignature)?;
        let raw: [u8; 64] = raw.try_into().map_err(|_| CheckpointError::BadSignature)?;
        let msg = message(&self.chain, self.seq, &self.hash, self.received_at);
        key.verify_strict(&msg, &Signature::from_bytes(&raw))
            .map_err(|_| CheckpointError::BadSignature)?;
        from_hex(&self.hash).ok_or(CheckpointError::BadHash)
    }

    /// The checkpoint that was signed.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            chain: self.chain.clone(),
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// Reads countersigned checkpoints from text: a JSON array, an object with
/// a `checkpoints` array (the `GET /v1/checkpoints` answer), or JSON lines
/// (the service's `checkpoints.jsonl`).
pub fn parse_list(text: &str) -> Result<Vec<Countersigned>, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).map_err(|e| e.to_string());
    }
    if let Ok(serde_json::Value::Object(mut o)) = serde_json::from_str(trimmed) {
        if let Some(list) = o.remove("checkpoints") {
            return serde_json::from_value(list).map_err(|e| e.to_string());
        }
    }
    trimmed
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// Hex of a head's hash (re-exported for callers building checkpoints).
pub fn hash_hex(hash: &[u8; 32]) -> String {
    to_hex(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::DecisionChain;

    #[test]
    fn countersign_and_verify() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let other = SigningKey::from_bytes(&[8u8; 32]);
        let mut chain = DecisionChain::new("node/1");
        chain.seal("{");
        let cp = Checkpoint::from_head(chain.head()).expect("one record");
        let parsed = Checkpoint::parse(cp.to_json().as_bytes()).expect("parses");
        assert_eq!(parsed, cp);
        let signed = cp.countersign(1_700_000_000_000, &key);
        assert_eq!(signed.verify(&[key.verifying_key()]), Ok(chain.head().hash));
        assert!(matches!(
            signed.verify(&[other.verifying_key()]),
            Err(CheckpointError::UnknownKey(_))
        ));
        for forged in [
            Countersigned {
                seq: 2,
                ..signed.clone()
            },
            Countersigned {
                received_at: 1,
                ..signed.clone()
            },
            Countersigned {
                chain: "node/2".into(),
                ..signed.clone()
            },
            Countersigned {
                hash: "0".repeat(64),
                ..signed.clone()
            },
        ] {
            assert_eq!(
                forged.verify(&[key.verifying_key()]),
                Err(CheckpointError::BadSignature)
            );
        }
        assert!(Checkpoint::from_head(DecisionChain::new("x").head()).is_none());
    }

    #[test]
    fn bad_requests() {
        let ok = "a".repeat(64);
        for (body, want) in [
            (
                format!("{{\"chain\":\"a\\nb\",\"seq\":1,\"hash\":\"{ok}\"}}"),
                CheckpointError::BadChain,
            ),
            (
                format!("{{\"chain\":\"\",\"seq\":1,\"hash\":\"{ok}\"}}"),
                CheckpointError::BadChain,
            ),
            (
                format!("{{\"chain\":\"a\",\"seq\":0,\"hash\":\"{ok}\"}}"),
                CheckpointError::BadSeq,
            ),
            (
                "{\"chain\":\"a\",\"seq\":1,\"hash\":\"AB\"}".into(),
                CheckpointError::BadHash,
            ),
        ] {
            assert_eq!(Checkpoint::parse(body.as_bytes()), Err(want));
        }
        let extra = format!("{{\"chain\":\"a\",\"seq\":1,\"hash\":\"{ok}\",\"x\":1}}");
        assert!(matches!(
            Checkpoint::parse(extra.as_bytes()),
            Err(CheckpointError::Malformed(_))
        ));
        let long = format!(
            "{{\"chain\":\"{}\",\"seq\":1,\"hash\":\"{ok}\"}}",
            "a".repeat(161)
        );
        assert_eq!(
            Checkpoint::parse(long.as_bytes()),
            Err(CheckpointError::BadChain)
        );
    }
}
