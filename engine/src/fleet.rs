//! Who is polling: the identity a filter's fetcher sends on every bundle
//! fetch (instance, pod, active version, last error) as bounded request
//! headers, so the control service can tell which proxies enforce which
//! version and which are gone (`GET /v1/status`).
//!
//! Both ends use this module: filters build the headers with
//! [`PollIdentity::headers`], the service reads them back with
//! [`PollIdentity::from_headers`]. Reading never fails a fetch: a header
//! that is missing, too long or outside its charset is dropped (without a
//! valid instance there is no identity at all). Like status reports, the
//! headers are unauthenticated hints.

use crate::report::{valid_instance, RejectCode};

/// Request header: the instance id (Envoy node id or configured id).
pub const INSTANCE_HEADER: &str = "x-mcp-guard-instance";
/// Request header: the pod name, when the proxy knows it.
pub const POD_HEADER: &str = "x-mcp-guard-pod";
/// Request header: the bundle version the instance enforces.
pub const ACTIVE_HEADER: &str = "x-mcp-guard-active";
/// Request header: the code of the last fetch or verification failure.
pub const LAST_ERROR_HEADER: &str = "x-mcp-guard-last-error";

/// Longest pod name: a Kubernetes object name is at most 253 characters.
pub const MAX_POD_LEN: usize = 253;

/// Longest version number in a header (`u64::MAX` has 20 digits).
const MAX_VERSION_DIGITS: usize = 20;

/// Why the last fetch did not yield a new or unchanged bundle: a closed
/// set, so a header cannot carry free text into the status table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastError {
    /// The service answered neither 200 nor 304.
    FetchStatus,
    /// The request could not be sent, was reset or timed out.
    FetchUnreachable,
    /// A served version was refused, for this reason.
    Rejected(RejectCode),
}

impl LastError {
    /// The code as sent in [`LAST_ERROR_HEADER`] and shown by the service.
    pub fn as_str(self) -> &'static str {
        match self {
            LastError::FetchStatus => "fetch_status",
            LastError::FetchUnreachable => "fetch_unreachable",
            LastError::Rejected(code) => code.as_str(),
        }
    }

    /// A fetch that failed before any bundle check: `answered` when the
    /// service (or Envoy on its behalf) sent a status other than 200/304,
    /// else it was not sent, reset or timed out.
    pub fn failed_fetch(answered: bool) -> Self {
        if answered {
            LastError::FetchStatus
        } else {
            LastError::FetchUnreachable
        }
    }

    /// The code back from its text; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fetch_status" => Some(LastError::FetchStatus),
            "fetch_unreachable" => Some(LastError::FetchUnreachable),
            _ => RejectCode::ALL
                .iter()
                .find(|c| c.as_str() == text)
                .map(|c| LastError::Rejected(*c)),
        }
    }
}

/// What a fetcher says about itself on each fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollIdentity {
    /// Which Envoy (see [`valid_instance`]).
    pub instance: String,
    /// Its pod, when the proxy exposes one.
    pub pod: Option<String>,
    /// The version it enforces, if any.
    pub active: Option<u64>,
    /// What went wrong on its last fetch; `None` after a good one.
    pub last_error: Option<LastError>,
}

/// Whether `pod` is acceptable as a pod name (DNS-label characters plus
/// `.`, `_`; Kubernetes names are a subset).
pub fn valid_pod(pod: &str) -> bool {
    (1..=MAX_POD_LEN).contains(&pod.len())
        && pod
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A version number as sent: 1 to 20 ASCII digits, no sign, no spaces.
fn parse_version(text: &str) -> Option<u64> {
    if text.is_empty()
        || text.len() > MAX_VERSION_DIGITS
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    text.parse().ok()
}

impl PollIdentity {
    /// The request headers for this identity; fields that would not pass
    /// [`PollIdentity::from_headers`] are left out (an invalid instance
    /// sends nothing).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        if !valid_instance(&self.instance) {
            return Vec::new();
        }
        let mut headers = vec![(INSTANCE_HEADER, self.instance.clone())];
        if let Some(pod) = self.pod.as_deref().filter(|p| valid_pod(p)) {
            headers.push((POD_HEADER, pod.to_owned()));
        }
        if let Some(active) = self.active {
            headers.push((ACTIVE_HEADER, active.to_string()));
        }
        if let Some(error) = self.last_error {
            headers.push((LAST_ERROR_HEADER, error.as_str().to_owned()));
        }
        headers
    }

    /// Reads an identity back from request headers (`header(name)` gives
    /// the single value, or `None` when absent or repeated). `None` when
    /// the instance is missing or invalid; any other bad field is dropped.
    pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        let instance = header(INSTANCE_HEADER).filter(|i| valid_instance(i))?;
        Some(Self {
            instance: instance.to_owned(),
            pod: header(POD_HEADER)
                .filter(|p| valid_pod(p))
                .map(str::to_owned),
            active: header(ACTIVE_HEADER).and_then(parse_version),
            last_error: header(LAST_ERROR_HEADER).and_then(LastError::parse),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Option<PollIdentity> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        PollIdentity::from_headers(|name| map.get(name).map(String::as_str))
    }

    #[test]
    fn round_trips_every_field() {
        let identity = PollIdentity {
            instance: "sidecar~10.0.0.1~web-7d9.ns~ns.svc.cluster.local".into(),
            pod: Some("web-7d9".into()),
            active: Some(u64::MAX),
            last_error: Some(LastError::Rejected(RejectCode::UntrustedKey)),
        };
        let headers = identity.headers();
        assert_eq!(
            headers.get(3),
            Some(&(LAST_ERROR_HEADER, "untrusted_key".to_owned()))
        );
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(read(&pairs), Some(identity));
        for code in RejectCode::ALL {
            assert_eq!(
                LastError::parse(code.as_str()),
                Some(LastError::Rejected(code))
            );
        }
        assert_eq!(LastError::failed_fetch(true), LastError::FetchStatus);
        assert_eq!(LastError::failed_fetch(false), LastError::FetchUnreachable);
        for error in [LastError::FetchStatus, LastError::FetchUnreachable] {
            assert_eq!(LastError::parse(error.as_str()), Some(error));
        }
    }

    #[test]
    fn no_instance_no_identity() {
        assert_eq!(read(&[(ACTIVE_HEADER, "3")]), None);
        let long = "a".repeat(129);
        for bad in ["", "a b", "a\r\nx-evil: 1", "é", "<script>", long.as_str()] {
            assert_eq!(read(&[(INSTANCE_HEADER, bad)]), None, "{bad:?}");
        }
        let invalid = PollIdentity {
            instance: "a\nb".into(),
            pod: None,
            active: Some(1),
            last_error: None,
        };
        assert!(invalid.headers().is_empty());
    }

    #[test]
    fn bad_fields_are_dropped_not_fatal() {
        let long_pod = "p".repeat(MAX_POD_LEN + 1);
        let long_version = "1".repeat(21);
        for (pod, active, error) in [
            ("a b", "-1", "Untrusted_Key"),
            ("pod\u{0}", "+3", "untrusted_key "),
            (long_pod.as_str(), long_version.as_str(), "<b>"),
            ("p/q", "3 ", "fetch_statuses"),
            ("", "", ""),
            ("p", "99999999999999999999", "rollback\r\n"),
        ] {
            let read = read(&[
                (INSTANCE_HEADER, "envoy-1"),
                (POD_HEADER, pod),
                (ACTIVE_HEADER, active),
                (LAST_ERROR_HEADER, error),
            ])
            .expect("a valid instance is enough");
            assert_eq!(read.instance, "envoy-1");
            assert_eq!(
                (read.pod.as_deref(), read.active, read.last_error),
                ((pod == "p").then_some("p"), None, None),
                "{pod:?} {active:?} {error:?}"
            );
        }
        let pod = "p".repeat(MAX_POD_LEN);
        let ok = read(&[(INSTANCE_HEADER, "i"), (POD_HEADER, &pod)]).expect("valid");
        assert_eq!(ok.pod.as_deref(), Some(pod.as_str()));
    }
}
