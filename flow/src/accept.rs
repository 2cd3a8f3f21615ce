//! Whether a bundle the control service answered with may be activated:
//! signed by a trusted key *as this version of the bundle this filter
//! subscribed to*, valid, named as subscribed, and not older than what is
//! enforced. Pure (no host calls), so every refusal is unit-tested.

use mcp_guard_engine::report::RejectCode;
use mcp_guard_engine::signing::{self, SignatureError, Signed, VerifyingKey};
use mcp_guard_engine::Bundle;

/// What the control service answered.
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    /// The body bytes.
    pub body: &'a [u8],
    /// `x-bundle-signature`, if present.
    pub signature: Option<&'a str>,
    /// `x-bundle-version`, if present.
    pub version: Option<&'a str>,
}

/// What this filter expects.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The subscribed bundle name (`control.bundle`).
    pub name: &'a str,
    /// Keys whose signatures are trusted.
    pub trusted: &'a [VerifyingKey],
    /// Unsigned bundles allowed (local demos).
    pub allow_unsigned: bool,
    /// The version enforced now, if any.
    pub active_version: Option<u64>,
}

/// A bundle that may be activated, or the same version again.
#[derive(Debug)]
pub enum Accepted {
    /// Newer than the active version: activate it.
    New(Box<Bundle>),
    /// The version already enforced: nothing to do.
    Same,
}

/// Why a served bundle is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The reason code reported to the control service.
    pub code: RejectCode,
    /// The version that was served, when it can be told.
    pub version: Option<u64>,
    /// A sentence for the log.
    pub detail: String,
}

impl Rejection {
    fn new(code: RejectCode, version: Option<u64>, detail: impl Into<String>) -> Self {
        Self {
            code,
            version,
            detail: detail.into(),
        }
    }
}

/// Decides whether `served` may be activated.
///
/// The signature is checked before the body is parsed: the signed message
/// names the subscribed bundle and the version from `x-bundle-version`, so
/// a genuine signature of another bundle, or of another version of this
/// one, does not verify. Then the body must parse, carry the subscribed
/// name and the announced version, and not be older than the active one.
pub fn check(served: &Served<'_>, expected: &Expected<'_>) -> Result<Accepted, Rejection> {
    let announced = match served.version.map(|v| v.trim().parse::<u64>()) {
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return Err(Rejection::new(
                RejectCode::MalformedSignature,
                None,
                "x-bundle-version is not a version number",
            ))
        }
        None => None,
    };
    if !expected.allow_unsigned {
        let Some(version) = announced else {
            return Err(Rejection::new(
                RejectCode::MalformedSignature,
                None,
                "no x-bundle-version header: the signature cannot be checked",
            ));
        };
        let signed = Signed {
            name: expected.name,
            version,
            bytes: served.body,
        };
        if let Err(e) = signing::verify(&signed, served.signature, expected.trusted) {
            let code = match (&e, declared_name(served.body)) {
                (SignatureError::BadSignature(_), Some(name)) if name != expected.name => {
                    RejectCode::WrongName
                }
                _ => RejectCode::from(&e),
            };
            return Err(Rejection::new(code, Some(version), e.to_string()));
        }
    }
    let bundle = Bundle::parse(served.body)
        .map_err(|e| Rejection::new(RejectCode::InvalidBundle, announced, e.to_string()))?;
    if bundle.name != expected.name {
        return Err(Rejection::new(
            RejectCode::WrongName,
            Some(bundle.version),
            format!(
                "the bundle is {:?}, this filter enforces {:?}",
                bundle.name, expected.name
            ),
        ));
    }
    if announced.is_some_and(|v| v != bundle.version) {
        return Err(Rejection::new(
            RejectCode::VersionMismatch,
            Some(bundle.version),
            "x-bundle-version differs from the bundle's version",
        ));
    }
    match expected.active_version {
        Some(active) if bundle.version < active => Err(Rejection::new(
            RejectCode::Rollback,
            Some(bundle.version),
            format!(
                "version {} is older than the active version {active}; a rollback is pushed as a new version",
                bundle.version
            ),
        )),
        Some(active) if bundle.version == active => Ok(Accepted::Same),
        _ => Ok(Accepted::New(Box::new(bundle))),
    }
}

/// The `name` field of a JSON body, to tell "another bundle" apart from
/// "altered bytes" in reports. Only used after the signature failed.
fn declared_name(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }
    serde_json::from_slice::<Named>(body).ok().map(|n| n.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_guard_engine::signing::SigningKey;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn body(name: &str, version: u64) -> Vec<u8> {
        format!(r#"{{"name":"{name}","version":{version}}}"#).into_bytes()
    }

    fn sign(name: &str, version: u64, bytes: &[u8], k: &SigningKey) -> String {
        signing::sign(
            &Signed {
                name,
                version,
                bytes,
            },
            &[k],
        )
    }

    fn run(
        bytes: &[u8],
        signature: Option<&str>,
        version: Option<&str>,
        active: Option<u64>,
    ) -> Result<Accepted, Rejection> {
        let trusted = [key(1).verifying_key()];
        check(
            &Served {
                body: bytes,
                signature,
                version,
            },
            &Expected {
                name: "team-a",
                trusted: &trusted,
                allow_unsigned: false,
                active_version: active,
            },
        )
    }

    fn code(result: Result<Accepted, Rejection>) -> Option<RejectCode> {
        result.err().map(|r| r.code)
    }

    #[test]
    fn accepts_a_newer_signed_version_of_the_subscribed_bundle() {
        let b = body("team-a", 3);
        let sig = sign("team-a", 3, &b, &key(1));
        assert!(matches!(
            run(&b, Some(&sig), Some("3"), Some(2)),
            Ok(Accepted::New(bundle)) if bundle.version == 3
        ));
        assert!(matches!(
            run(&b, Some(&sig), Some("3"), Some(3)),
            Ok(Accepted::Same)
        ));
    }

    #[test]
    fn another_bundles_genuine_signature_is_wrong_name() {
        // Team B's bundle, validly signed as team B's, served for team A.
        let b = body("team-b", 9);
        let sig = sign("team-b", 9, &b, &key(1));
        assert_eq!(
            code(run(&b, Some(&sig), Some("9"), None)),
            Some(RejectCode::WrongName)
        );
        // Even if signed under our name, a body naming another bundle is
        // refused (a service bug must not cross bundles).
        let sig = sign("team-a", 9, &b, &key(1));
        assert_eq!(
            code(run(&b, Some(&sig), Some("9"), None)),
            Some(RejectCode::WrongName)
        );
    }

    #[test]
    fn an_older_genuine_version_is_a_rollback() {
        let b = body("team-a", 2);
        let sig = sign("team-a", 2, &b, &key(1));
        let rejection = run(&b, Some(&sig), Some("2"), Some(5)).err();
        assert_eq!(
            rejection.as_ref().map(|r| r.code),
            Some(RejectCode::Rollback)
        );
        assert_eq!(rejection.and_then(|r| r.version), Some(2));
    }

    #[test]
    fn a_relabelled_version_does_not_verify() {
        // v2's bytes and signature announced as v7 to jump the version check.
        let b = body("team-a", 2);
        let sig = sign("team-a", 2, &b, &key(1));
        assert_eq!(
            code(run(&b, Some(&sig), Some("7"), Some(5))),
            Some(RejectCode::BadSignature)
        );
        // Signed as 7 but the body says 2: the service would never do this.
        let sig = sign("team-a", 7, &b, &key(1));
        assert_eq!(
            code(run(&b, Some(&sig), Some("7"), Some(5))),
            Some(RejectCode::VersionMismatch)
        );
    }

    #[test]
    fn unsigned_untrusted_malformed() {
        let b = body("team-a", 3);
        assert_eq!(
            code(run(&b, None, Some("3"), None)),
            Some(RejectCode::Unsigned)
        );
        let sig = sign("team-a", 3, &b, &key(2));
        assert_eq!(
            code(run(&b, Some(&sig), Some("3"), None)),
            Some(RejectCode::UntrustedKey)
        );
        let sig = sign("team-a", 3, &b, &key(1));
        assert_eq!(
            code(run(&b, Some(&sig), None, None)),
            Some(RejectCode::MalformedSignature)
        );
        assert_eq!(
            code(run(&b, Some(&sig), Some("three"), None)),
            Some(RejectCode::MalformedSignature)
        );
        let mut tampered = b.clone();
        tampered.push(b' ');
        assert_eq!(
            code(run(&tampered, Some(&sig), Some("3"), None)),
            Some(RejectCode::BadSignature)
        );
    }

    #[test]
    fn unsigned_mode_still_checks_name_and_rollback() {
        let expected = |active| Expected {
            name: "team-a",
            trusted: &[],
            allow_unsigned: true,
            active_version: active,
        };
        let other = body("team-b", 3);
        let served = Served {
            body: &other,
            signature: None,
            version: None,
        };
        assert_eq!(
            code(check(&served, &expected(None))),
            Some(RejectCode::WrongName)
        );
        let old = body("team-a", 1);
        let served = Served {
            body: &old,
            signature: None,
            version: None,
        };
        assert_eq!(
            code(check(&served, &expected(Some(2)))),
            Some(RejectCode::Rollback)
        );
        let bad = b"{}".to_vec();
        let served = Served {
            body: &bad,
            signature: None,
            version: None,
        };
        assert_eq!(
            code(check(&served, &expected(None))),
            Some(RejectCode::InvalidBundle)
        );
    }
}
