//! The checkpoint post: a worker VM's chain head sent to the control
//! service to be countersigned (`POST /v1/checkpoints`), built here so the
//! wasm filter and the native module send the same bytes.

use mcp_guard_engine::audit::{ChainHead, Checkpoint};

use super::ControlRequest;
use crate::config::ControlConfig;

impl ControlRequest {
    /// The checkpoint of `head`; `None` before the chain's first record
    /// (there is nothing to vouch for). A 201 or 200 answer carries the
    /// countersigned checkpoint; 409 means the service already holds
    /// another hash at or beyond this seq for the chain (log it loudly: the
    /// chain id is claimed by someone else); 429 means retry later.
    pub fn checkpoint(control: &ControlConfig, head: &ChainHead) -> Option<Self> {
        let checkpoint = Checkpoint::from_head(head)?;
        Some(Self {
            method: "POST",
            path: "/v1/checkpoints".to_owned(),
            authority: control.authority.clone(),
            etag: None,
            identity: Vec::new(),
            body: Some(checkpoint.to_json()),
            timeout_ms: control.timeout_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PluginConfig;
    use mcp_guard_engine::audit::DecisionChain;

    #[test]
    fn posts_the_chain_head() {
        let text = r#"{"control": {"cluster": "c", "bundle": "demo", "authority": "ctl", "timeout_ms": 700, "allow_unsigned": true}}"#;
        let config = PluginConfig::parse(text.as_bytes()).expect("valid test config");
        let control = config.control.expect("control section");
        let mut chain = DecisionChain::new("node-1/w0/ab12");
        assert_eq!(ControlRequest::checkpoint(&control, chain.head()), None);
        chain.seal("{\"decision\":\"allow\"");
        let r = ControlRequest::checkpoint(&control, chain.head()).expect("a head");
        assert_eq!(
            r.headers(),
            [
                (":method", "POST"),
                (":path", "/v1/checkpoints"),
                (":authority", "ctl"),
                ("content-type", "application/json"),
            ]
        );
        let body = Checkpoint::parse(r.body().unwrap_or_default()).expect("the service accepts it");
        assert_eq!(
            (body.chain.as_str(), body.seq, body.hash),
            ("node-1/w0/ab12", 1, chain.head().hash_hex())
        );
        assert_eq!(r.timeout_ms, 700);
    }
}
