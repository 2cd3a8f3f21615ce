//! The requests both filter targets send to the control service, built in
//! one place so the wasm filter and the native module cannot drift apart
//! (path, long-poll wait, `If-None-Match`, timeout, status-report body).

use mcp_guard_engine::fleet::PollIdentity;
use mcp_guard_engine::report::StatusReport;

use crate::config::ControlConfig;

mod checkpoint;

/// One request to the control service, ready for the host's HTTP call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRequest {
    method: &'static str,
    path: String,
    authority: String,
    etag: Option<String>,
    body: Option<String>,
    /// Identity headers ([`PollIdentity::headers`]).
    identity: Vec<(&'static str, String)>,
    /// How long the call may take, milliseconds (the long-poll wait
    /// included).
    pub timeout_ms: u64,
}

impl ControlRequest {
    /// The bundle fetch: a long poll (`?wait=`) once a version with an
    /// ETag is active, a plain fetch before. It carries `identity` as
    /// headers unless status reporting is off (`report_status: false`).
    pub fn fetch(
        control: &ControlConfig,
        etag: Option<&str>,
        identity: Option<&PollIdentity>,
    ) -> Self {
        let wait = if etag.is_some() {
            control.long_poll_secs
        } else {
            0
        };
        let path = if wait > 0 {
            format!("/v1/bundles/{}?wait={wait}", control.bundle)
        } else {
            format!("/v1/bundles/{}", control.bundle)
        };
        Self {
            method: "GET",
            path,
            authority: control.authority.clone(),
            etag: etag.map(str::to_owned),
            body: None,
            identity: identity
                .filter(|_| control.report_status)
                .map(PollIdentity::headers)
                .unwrap_or_default(),
            timeout_ms: wait * 1000 + control.timeout_ms,
        }
    }

    /// This instance's status report.
    pub fn report(control: &ControlConfig, status: &StatusReport) -> Self {
        Self {
            method: "POST",
            path: format!("/v1/bundles/{}/status", control.bundle),
            authority: control.authority.clone(),
            etag: None,
            body: Some(status.to_json()),
            identity: Vec::new(),
            timeout_ms: control.timeout_ms,
        }
    }

    /// The request headers, pseudo-headers first.
    pub fn headers(&self) -> Vec<(&str, &str)> {
        let mut headers = vec![
            (":method", self.method),
            (":path", self.path.as_str()),
            (":authority", self.authority.as_str()),
        ];
        if let Some(etag) = &self.etag {
            headers.push(("if-none-match", etag.as_str()));
        }
        if self.body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        for (name, value) in &self.identity {
            headers.push((name, value.as_str()));
        }
        headers
    }

    /// The request body, if any.
    pub fn body(&self) -> Option<&[u8]> {
        self.body.as_deref().map(str::as_bytes)
    }
}

/// An answer's HTTP status for an operator's log line: `503`, or `no
/// answer` (never a Rust debug form such as `Some("503")`).
pub fn status_text<T: std::fmt::Display>(status: Option<T>) -> String {
    status.map_or_else(|| "no answer".to_owned(), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PluginConfig;

    fn control(long_poll_secs: u64) -> ControlConfig {
        let text = format!(
            r#"{{"control": {{"cluster": "c", "bundle": "demo", "authority": "ctl", "long_poll_secs": {long_poll_secs}, "timeout_ms": 500, "allow_unsigned": true}}}}"#
        );
        let config = PluginConfig::parse(text.as_bytes()).expect("valid test config");
        config.control.expect("control section")
    }

    #[test]
    fn fetches_long_poll_only_with_an_etag() {
        let first = ControlRequest::fetch(&control(30), None, None);
        assert_eq!(
            first.headers(),
            [
                (":method", "GET"),
                (":path", "/v1/bundles/demo"),
                (":authority", "ctl")
            ]
        );
        assert_eq!((first.timeout_ms, first.body()), (500, None));
        let next = ControlRequest::fetch(&control(30), Some("\"v3\""), None);
        assert_eq!(
            next.headers(),
            [
                (":method", "GET"),
                (":path", "/v1/bundles/demo?wait=30"),
                (":authority", "ctl"),
                ("if-none-match", "\"v3\""),
            ]
        );
        assert_eq!(next.timeout_ms, 30_500);
        // Long-polling off: plain polling even with an ETag.
        let plain = ControlRequest::fetch(&control(0), Some("\"v3\""), None);
        assert_eq!(plain.headers().get(1), Some(&(":path", "/v1/bundles/demo")));
        assert_eq!(plain.timeout_ms, 500);
    }

    #[test]
    fn fetches_carry_the_identity_unless_reporting_is_off() {
        let identity = PollIdentity {
            instance: "envoy-1".into(),
            pod: Some("web-0".into()),
            active: Some(3),
            last_error: Some(mcp_guard_engine::fleet::LastError::FetchStatus),
        };
        let request = ControlRequest::fetch(&control(30), Some("\"v3\""), Some(&identity));
        let headers = request.headers();
        assert_eq!(
            headers.get(4..),
            Some(
                &[
                    ("x-mcp-guard-instance", "envoy-1"),
                    ("x-mcp-guard-pod", "web-0"),
                    ("x-mcp-guard-active", "3"),
                    ("x-mcp-guard-last-error", "fetch_status"),
                ][..]
            )
        );
        let mut quiet = control(30);
        quiet.report_status = false;
        let request = ControlRequest::fetch(&quiet, Some("\"v3\""), Some(&identity));
        assert_eq!(request.headers().len(), 4, "{:?}", request.headers());
    }

    #[test]
    fn reports_post_json() {
        let status = StatusReport::new("envoy-1", Some(3), None, None);
        let r = ControlRequest::report(&control(30), &status);
        assert_eq!(
            r.headers(),
            [
                (":method", "POST"),
                (":path", "/v1/bundles/demo/status"),
                (":authority", "ctl"),
                ("content-type", "application/json"),
            ]
        );
        assert_eq!(r.body(), Some(status.to_json().as_bytes()));
        assert_eq!(r.timeout_ms, 500);
    }

    #[test]
    fn statuses_read_as_text_in_logs() {
        assert_eq!(status_text(Some("503")), "503");
        assert_eq!(status_text(None::<u32>), "no answer");
    }
}
