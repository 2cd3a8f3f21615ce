//! One hash chain of decision records.
//!
//! A record is a JSON object written by the filter. Sealing appends three
//! members, always last and in this order:
//! `,"chain":"<id>","seq":<n>,"hash":"<64 lower-case hex>"}`.
//! `hash` = SHA-256(previous hash ‖ every byte of the record before
//! `,"hash":"`), where the previous hash of the first record is
//! [`genesis`] of the chain id. The hash covers the exact bytes as they
//! appear in the log line (no canonical form to argue about): a verifier
//! takes the record text from the line, splits it at the last
//! [`HASH_MEMBER`], and recomputes.

use sha2::{Digest, Sha256};

/// Domain separation for every hash of the trail; bumped if the format changes.
pub const TRAIL_VERSION: &str = "mcp-guard-trail-v1";

/// The member that ends every sealed record (followed by 64 hex digits, `"`
/// and `}`).
pub const HASH_MEMBER: &str = ",\"hash\":\"";

/// Longest chain id kept (bounds log lines; ids are built by the shims from
/// the proxy's node id and a boot nonce).
pub const MAX_CHAIN_ID_LEN: usize = 160;

/// Where a chain stands: what a checkpoint sends off the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The chain id (proxy node, worker, boot nonce).
    pub chain: String,
    /// Sequence number of the last sealed record (0: none yet).
    pub seq: u64,
    /// Hash of the last sealed record ([`genesis`] when none).
    pub hash: [u8; 32],
}

impl ChainHead {
    /// The hash as lower-case hex.
    pub fn hash_hex(&self) -> String {
        to_hex(&self.hash)
    }
}

/// The per-VM (per-worker) chain state: a filter keeps one and seals every
/// record it publishes, in the order the access log writes them.
#[derive(Debug, Clone)]
pub struct DecisionChain {
    head: ChainHead,
}

/// The hash a chain starts from: SHA-256 of the trail version and the chain
/// id, so the first record is bound to its chain.
pub fn genesis(chain: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(TRAIL_VERSION.as_bytes());
    h.update(b"\n");
    h.update(chain.as_bytes());
    h.finalize().into()
}

/// Keeps a chain id printable and free of JSON escapes, so the sealed bytes
/// are the logged bytes whatever the node id held: anything but ASCII
/// letters, digits and `-._:~/@` becomes `_`; bounded.
pub fn sanitize_chain_id(raw: &str) -> String {
    raw.chars()
        .take(MAX_CHAIN_ID_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._:~/@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The id of one VM's (worker's) chain: the proxy's `node` id and a random
/// boot `nonce`, as `node/nonce`. The node part is cut so the nonce always
/// survives [`MAX_CHAIN_ID_LEN`]: a long node id (Istio's carry the pod
/// name and namespace) must not make every worker and every boot share
/// one chain (their records would verify as inserted and reordered, and
/// their checkpoints conflict).
pub fn chain_id(node: &str, nonce: u64) -> String {
    let suffix = format!("/{nonce:016x}");
    let node = sanitize_chain_id(node);
    let keep = MAX_CHAIN_ID_LEN.saturating_sub(suffix.len());
    // Sanitized: ASCII only, so any byte index is a char boundary.
    let node = node.get(..keep.min(node.len())).unwrap_or_default();
    format!("{node}{suffix}")
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The chain hash of one record: SHA-256(prev ‖ sealed_prefix).
pub fn link(prev: &[u8; 32], sealed_prefix: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(sealed_prefix);
    h.finalize().into()
}

impl DecisionChain {
    /// A new chain (a VM start); `id` is sanitized.
    pub fn new(id: &str) -> Self {
        let chain = sanitize_chain_id(id);
        let hash = genesis(&chain);
        Self {
            head: ChainHead {
                chain,
                seq: 0,
                hash,
            },
        }
    }

    /// Seals one record: `open` is the record's JSON text *without* its
    /// closing `}` (e.g. `{"decision":"allow",...`). Returns the whole
    /// sealed record and advances the chain.
    pub fn seal(&mut self, open: &str) -> String {
        let seq = self.head.seq.saturating_add(1);
        let mut out = String::with_capacity(open.len() + self.head.chain.len() + 110);
        out.push_str(open);
        if !open.ends_with('{') {
            out.push(',');
        }
        out.push_str("\"chain\":\"");
        out.push_str(&self.head.chain);
        out.push_str("\",\"seq\":");
        out.push_str(&seq.to_string());
        let hash = link(&self.head.hash, out.as_bytes());
        out.push_str(HASH_MEMBER);
        out.push_str(&to_hex(&hash));
        out.push_str("\"}");
        self.head.seq = seq;
        self.head.hash = hash;
        out
    }

    /// Where the chain stands now.
    pub fn head(&self) -> &ChainHead {
        &self.head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_node_id_keeps_the_nonce() {
        let node = "sidecar~10.0.0.1~".to_owned() + &"p".repeat(300);
        let a = chain_id(&node, 1);
        let b = chain_id(&node, 2);
        assert_ne!(a, b);
        assert_ne!(
            DecisionChain::new(&a).head().chain,
            DecisionChain::new(&b).head().chain
        );
        assert_eq!(a.len(), MAX_CHAIN_ID_LEN);
        assert_eq!(sanitize_chain_id(&a), a);
        assert!(a.ends_with("/0000000000000001"), "{a}");
        assert_eq!(chain_id("n1 x", 255), "n1_x/00000000000000ff");
    }

    #[test]
    fn sealed_records_chain_and_parse() {
        let mut chain = DecisionChain::new("node-1/00ab");
        let first = chain.seal("{\"decision\":\"allow\"");
        let second = chain.seal("{\"decision\":\"deny\"");
        let v: serde_json::Value = serde_json::from_str(&second).unwrap_or_default();
        assert_eq!(v["seq"], 2);
        assert_eq!(v["chain"], "node-1/00ab");
        // Recompute both links from the text alone.
        let mut prev = genesis("node-1/00ab");
        for rec in [&first, &second] {
            let cut = rec.rfind(HASH_MEMBER).unwrap_or(0);
            let want = link(&prev, &rec.as_bytes()[..cut]);
            assert_eq!(&rec[cut + HASH_MEMBER.len()..rec.len() - 2], to_hex(&want));
            prev = want;
        }
        assert_eq!(chain.head().hash, prev);
        assert_eq!(chain.head().seq, 2);
    }

    #[test]
    fn chain_ids_need_no_escapes() {
        let chain = DecisionChain::new("a\"b\\c\u{1}d é");
        assert_eq!(chain.head().chain, "a_b_c_d__");
        let mut chain = DecisionChain::new("x");
        let sealed = chain.seal("{");
        assert!(sealed.starts_with("{\"chain\":\"x\",\"seq\":1,\"hash\":\""));
    }
}
