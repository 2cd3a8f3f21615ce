//! Status reports: after each fetch, the filter's elected fetcher tells the
//! control service which version it enforces, or which version it refused
//! and why, so a pusher sees a version that filters reject instead of
//! believing it is live. The filter builds a [`StatusReport`]; the service
//! parses it with [`StatusReport::parse`], which bounds every field.
//!
//! Reports are advisory and unauthenticated (filters hold no secret the
//! service could check): they never change what is served.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::signing::SignatureError;

/// Largest report body accepted, in bytes.
pub const MAX_REPORT_BYTES: usize = 1024;

/// Longest instance id: room for an Istio node id
/// (`sidecar~10.0.0.1~pod.namespace~namespace.svc.cluster.local`).
pub const MAX_INSTANCE_LEN: usize = 128;

/// Whether the reported version is enforced or was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportState {
    /// `version` is the version this instance enforces.
    Active,
    /// `version` was served to this instance and refused.
    Rejected,
}

/// Why a fetched bundle was refused: a closed set, so a report cannot carry
/// free text into the service's status pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// No `x-bundle-signature`.
    Unsigned,
    /// The signature header (or `x-bundle-version`) cannot be parsed.
    MalformedSignature,
    /// Only signatures in a format the filter does not know.
    UnsupportedSignature,
    /// Signed, but by no key the filter trusts.
    UntrustedKey,
    /// A trusted key's signature does not cover these bytes as this
    /// version of the subscribed bundle.
    BadSignature,
    /// The bundle is another bundle (its `name` is not the subscribed one).
    WrongName,
    /// The engine refuses the bundle.
    InvalidBundle,
    /// `x-bundle-version` and the bundle's `version` differ.
    VersionMismatch,
    /// Older than the version already enforced: a replay or a service that
    /// lost its history.
    Rollback,
}

impl RejectCode {
    /// Every code, for parsing them back from text.
    pub const ALL: [RejectCode; 9] = [
        RejectCode::Unsigned,
        RejectCode::MalformedSignature,
        RejectCode::UnsupportedSignature,
        RejectCode::UntrustedKey,
        RejectCode::BadSignature,
        RejectCode::WrongName,
        RejectCode::InvalidBundle,
        RejectCode::VersionMismatch,
        RejectCode::Rollback,
    ];

    /// The code as it appears in reports, logs and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::Unsigned => "unsigned",
            RejectCode::MalformedSignature => "malformed_signature",
            RejectCode::UnsupportedSignature => "unsupported_signature",
            RejectCode::UntrustedKey => "untrusted_key",
            RejectCode::BadSignature => "bad_signature",
            RejectCode::WrongName => "wrong_name",
            RejectCode::InvalidBundle => "invalid_bundle",
            RejectCode::VersionMismatch => "version_mismatch",
            RejectCode::Rollback => "rollback",
        }
    }
}

impl From<&SignatureError> for RejectCode {
    fn from(error: &SignatureError) -> Self {
        match error {
            SignatureError::Missing => RejectCode::Unsigned,
            SignatureError::Malformed(_) => RejectCode::MalformedSignature,
            SignatureError::Unsupported => RejectCode::UnsupportedSignature,
            SignatureError::UnknownKey(_) => RejectCode::UntrustedKey,
            SignatureError::BadSignature(_) => RejectCode::BadSignature,
        }
    }
}

/// One report, as the JSON body of `POST /v1/bundles/{name}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    /// Which Envoy (its node id, or a configured id).
    pub instance: String,
    /// Active or rejected.
    pub state: ReportState,
    /// The version enforced (active) or refused (rejected), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Why it was refused; only with `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectCode>,
    /// The version still enforced after a rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_version: Option<u64>,
}

impl StatusReport {
    /// This instance's report: `rejected` when there is a `reason`, else
    /// `active` (both filter targets build theirs here).
    pub fn new(
        instance: &str,
        version: Option<u64>,
        reason: Option<RejectCode>,
        active_version: Option<u64>,
    ) -> Self {
        Self {
            instance: instance.to_owned(),
            state: if reason.is_some() {
                ReportState::Rejected
            } else {
                ReportState::Active
            },
            version,
            reason,
            active_version,
        }
    }
}

/// Why a report body is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReportError {
    /// Larger than [`MAX_REPORT_BYTES`].
    #[error("a report is at most {MAX_REPORT_BYTES} bytes")]
    TooLarge,
    /// Not the JSON shape of [`StatusReport`].
    #[error("not a status report: {0}")]
    Shape(String),
    /// The instance id is empty, too long or has characters outside
    /// `[A-Za-z0-9._~:@/-]`.
    #[error("instance must be 1 to {MAX_INSTANCE_LEN} characters of [A-Za-z0-9._~:@/-]")]
    Instance,
    /// `reason` given with `active`, or missing with `rejected`.
    #[error("a rejected report needs a reason and an active one has none")]
    Reason,
}

impl StatusReport {
    /// Parses and bounds a report body.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReportError> {
        if bytes.len() > MAX_REPORT_BYTES {
            return Err(ReportError::TooLarge);
        }
        let report: Self =
            serde_json::from_slice(bytes).map_err(|e| ReportError::Shape(e.to_string()))?;
        if !valid_instance(&report.instance) {
            return Err(ReportError::Instance);
        }
        match (report.state, report.reason) {
            (ReportState::Active, None) | (ReportState::Rejected, Some(_)) => Ok(report),
            _ => Err(ReportError::Reason),
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Whether `id` is acceptable as an instance id.
pub fn valid_instance(id: &str) -> bool {
    (1..=MAX_INSTANCE_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~:@/-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let report = StatusReport {
            instance: "sidecar~10.0.0.1~p.ns~ns.svc.cluster.local".into(),
            state: ReportState::Rejected,
            version: Some(4),
            reason: Some(RejectCode::WrongName),
            active_version: Some(3),
        };
        let json = report.to_json();
        assert!(json.contains(r#""reason":"wrong_name""#), "{json}");
        assert_eq!(StatusReport::parse(json.as_bytes()), Ok(report));
    }

    #[test]
    fn refuses_what_an_attacker_might_send() {
        for bad in [
            r#"{"instance":"a","state":"active","reason":"rollback"}"#,
            r#"{"instance":"a","state":"rejected"}"#,
            r#"{"instance":"a","state":"rejected","reason":"<script>"}"#,
            r#"{"instance":"a b","state":"active"}"#,
            r#"{"instance":"","state":"active"}"#,
            r#"{"instance":"a","state":"gone"}"#,
            r#"{"instance":"a","state":"active","extra":1}"#,
            r#"{"instance":"a","state":"active","version":-1}"#,
            "[]",
        ] {
            assert!(StatusReport::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let long = format!(r#"{{"instance":"{}","state":"active"}}"#, "a".repeat(129));
        assert_eq!(
            StatusReport::parse(long.as_bytes()),
            Err(ReportError::Instance)
        );
        let huge = format!(
            r#"{{"instance":"a","state":"active","pad":"{}"}}"#,
            "x".repeat(2000)
        );
        assert_eq!(
            StatusReport::parse(huge.as_bytes()),
            Err(ReportError::TooLarge)
        );
    }
}
