//! Token verification against the compiled issuers.
//!
//! Order of checks (each cheaper than the next, nothing decoded before the
//! size check):
//! 1. size, alphabet and shape: exactly three parts of unpadded base64url;
//! 2. header: strict JSON object, `alg` (`none` and unsupported algorithms
//!    refused here), `kid`, no `crit`; `jku`, `x5u`, `jwk` and `x5c` are
//!    ignored (keys only ever come from the bundle), and so are `typ` and
//!    `cty` (IdPs disagree on `typ`; a nested JWT fails as a non-object
//!    payload);
//! 3. payload: strict JSON object; `iss` selects the issuer (it has to be
//!    read before the signature is checked, to know which keys to use);
//! 4. the issuer's algorithm list, key selection by `kid` and the key's
//!    type, curve and pinned `alg`;
//! 5. the signature (RustCrypto through `jsonwebtoken`'s backend);
//! 6. claims against the caller's clock: `exp` (required), `nbf`, `iat`,
//!    `aud`, and the types of the other registered claims.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::cache::TokenCache;
use super::config::VerifyConfig;
use super::error::{JwtConfigError, JwtError, MalformedPart};
use super::keys::{compile_jwk, refuse_alg_name, Alg, Compiled, Key};
use crate::claims::Claims;
use crate::strict_json::parse_object;

/// Verifies tokens against the issuers of a [`VerifyConfig`]. Built once per
/// bundle; verification borrows it immutably, so it can be shared.
#[derive(Debug, Clone)]
pub struct Verifier {
    // A BTreeMap, not a HashMap: a handful of issuers, and no need for the
    // random hash seed (a WASI `random_get` call) in the filter.
    issuers: BTreeMap<String, Issuer>,
    clock_skew_secs: u64,
    max_token_bytes: usize,
    cache_entries: usize,
}

#[derive(Debug, Clone)]
struct Issuer {
    audiences: Vec<String>,
    algorithms: Vec<Alg>,
    keys: Vec<Key>,
}

impl Verifier {
    /// Compiles a config: checks the settings, every issuer, algorithm and
    /// JWK, and parses the keys once. Errors locate the offending value
    /// (see [`JwtConfigError::path`]).
    pub fn new(config: &VerifyConfig) -> Result<Self, JwtConfigError> {
        config.check_settings()?;
        let mut issuers = BTreeMap::new();
        for (i, ic) in config.issuers.iter().enumerate() {
            let bad = |field, reason: &str| JwtConfigError::BadIssuer {
                issuer: i,
                field,
                reason: reason.to_string(),
            };
            if ic.iss.is_empty() {
                return Err(bad("iss", "must not be empty"));
            }
            if issuers.contains_key(&ic.iss) {
                return Err(bad("iss", "another issuer has the same iss"));
            }
            if ic.audiences.is_empty() {
                return Err(bad("audiences", "at least one audience is required"));
            }
            if ic.audiences.iter().any(String::is_empty) {
                return Err(bad("audiences", "audiences must not be empty strings"));
            }
            if ic.algorithms.is_empty() {
                return Err(bad("algorithms", "at least one algorithm is required"));
            }
            let mut algorithms = Vec::with_capacity(ic.algorithms.len());
            for (index, name) in ic.algorithms.iter().enumerate() {
                if let Some(reason) = refuse_alg_name(name) {
                    return Err(JwtConfigError::BadAlgorithm {
                        issuer: i,
                        index,
                        reason,
                    });
                }
                if let Some(alg) = Alg::parse(name) {
                    if !algorithms.contains(&alg) {
                        algorithms.push(alg);
                    }
                }
            }
            if ic.jwks.is_null() {
                return Err(bad(
                    "jwks",
                    if ic.discovery.is_some() {
                        "jwks not resolved; the control service embeds it from discovery"
                    } else {
                        "one of jwks or discovery is required"
                    },
                ));
            }
            let keys = compile_jwks(i, &ic.jwks, &algorithms)?;
            issuers.insert(
                ic.iss.clone(),
                Issuer {
                    audiences: ic.audiences.clone(),
                    algorithms,
                    keys,
                },
            );
        }
        Ok(Self {
            issuers,
            clock_skew_secs: config.clock_skew_secs,
            max_token_bytes: config.max_token_bytes,
            cache_entries: config.cache_entries,
        })
    }

    /// A cache sized by this config's `cache_entries`. A cache belongs to one
    /// verifier: make a new one whenever a new bundle is compiled, or tokens
    /// of a removed issuer would stay accepted until they expire.
    pub fn new_cache(&self) -> TokenCache {
        TokenCache::new(self.cache_entries)
    }

    /// Verifies `token` at `now_unix_secs` (the proxy's clock; the engine
    /// never reads the system time) and returns its claims.
    pub fn verify(&self, token: &str, now_unix_secs: u64) -> Result<Claims, JwtError> {
        self.verify_inner(token, now_unix_secs)
            .map(|(claims, _)| claims)
    }

    /// [`Verifier::verify`] with a cache in front: a token verified before
    /// and not yet expired is answered from `cache` without any crypto.
    /// Only successes are cached. The size limit applies to hits too.
    pub fn verify_cached(
        &self,
        cache: &mut TokenCache,
        token: &str,
        now_unix_secs: u64,
    ) -> Result<Claims, JwtError> {
        self.check_size(token)?;
        if let Some(claims) = cache.get(token, now_unix_secs) {
            return Ok(claims);
        }
        let (claims, exp) = self.verify_inner(token, now_unix_secs)?;
        cache.insert(token, claims.clone(), exp, now_unix_secs);
        Ok(claims)
    }

    fn check_size(&self, token: &str) -> Result<(), JwtError> {
        if token.len() > self.max_token_bytes {
            return Err(JwtError::TokenTooLarge {
                limit: self.max_token_bytes,
            });
        }
        Ok(())
    }

    fn verify_inner(&self, token: &str, now: u64) -> Result<(Claims, u64), JwtError> {
        self.check_size(token)?;
        let parts = split(token)?;

        let header = decode_json(
            parts.header,
            MalformedPart::HeaderBase64,
            MalformedPart::HeaderJson,
        )?;
        let alg = header_alg(&header)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(JwtError::Malformed(MalformedPart::HeaderKid)),
        };
        if header.contains_key("crit") {
            return Err(JwtError::Malformed(MalformedPart::HeaderCrit));
        }
        if parts.signature.is_empty() {
            return Err(JwtError::Malformed(MalformedPart::EmptyPart));
        }

        let payload = decode_json(
            parts.payload,
            MalformedPart::PayloadBase64,
            MalformedPart::PayloadJson,
        )?;
        let issuer = match payload.get("iss") {
            None => return Err(JwtError::WrongIssuer),
            Some(Value::String(iss)) => self.issuers.get(iss).ok_or(JwtError::WrongIssuer)?,
            Some(_) => return Err(JwtError::BadClaims { claim: "iss" }),
        };
        if !issuer.algorithms.contains(&alg) {
            return Err(JwtError::AlgNotAllowed);
        }
        let key = select_key(&issuer.keys, kid, alg)?;

        let signature = URL_SAFE_NO_PAD
            .decode(parts.signature)
            .map_err(|_| JwtError::Malformed(MalformedPart::SignatureBase64))?;
        if !key.verify(alg, parts.signed.as_bytes(), &signature) {
            return Err(JwtError::BadSignature);
        }

        let exp = self.check_claims(&payload, issuer, now)?;
        Ok((Claims::new(payload), exp))
    }

    /// Time, audience and type checks; returns `exp`.
    fn check_claims(
        &self,
        payload: &Map<String, Value>,
        issuer: &Issuer,
        now: u64,
    ) -> Result<u64, JwtError> {
        let skew = self.clock_skew_secs;
        let exp = numeric_date(payload, "exp")?.ok_or(JwtError::MissingExp)?;
        let nbf = numeric_date(payload, "nbf")?;
        let iat = numeric_date(payload, "iat")?;
        for claim in ["sub", "jti"] {
            if payload.get(claim).is_some_and(|v| !v.is_string()) {
                return Err(JwtError::BadClaims { claim });
            }
        }
        let audiences = audiences(payload)?;

        // RFC 7519: the token must not be accepted on or after `exp`.
        if now >= exp.saturating_add(skew) {
            return Err(JwtError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
            return Err(JwtError::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now.saturating_add(skew)) {
            return Err(JwtError::IssuedInFuture);
        }
        if !audiences
            .iter()
            .any(|aud| issuer.audiences.iter().any(|a| a == aud))
        {
            return Err(JwtError::WrongAudience);
        }
        Ok(exp)
    }
}

fn compile_jwks(issuer: usize, jwks: &Value, allowed: &[Alg]) -> Result<Vec<Key>, JwtConfigError> {
    let bad_jwks = |reason: &str| JwtConfigError::BadJwks {
        issuer,
        reason: reason.to_string(),
    };
    let keys = jwks
        .as_object()
        .and_then(|o| o.get("keys"))
        .and_then(Value::as_array)
        .ok_or_else(|| bad_jwks("must be a JWKS object: {\"keys\": [...]}"))?;
    let mut compiled: Vec<Key> = Vec::with_capacity(keys.len());
    for (index, jwk) in keys.iter().enumerate() {
        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
        let bad_key = |reason: String| JwtConfigError::BadKey {
            issuer,
            key: index,
            kid: kid.clone(),
            reason,
        };
        match compile_jwk(jwk, allowed).map_err(bad_key)? {
            Compiled::Skipped => {}
            Compiled::Key(key) => {
                if key.kid.is_some() && compiled.iter().any(|k| k.kid == key.kid) {
                    return Err(bad_key("duplicate kid in this JWKS".to_string()));
                }
                compiled.push(key);
            }
        }
    }
    if compiled.is_empty() {
        return Err(bad_jwks("no signature keys"));
    }
    Ok(compiled)
}

/// The three parts of a compact JWS, plus the signed `header.payload` text.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    signed: &'a str,
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    if token.is_empty() {
        return Err(JwtError::Malformed(MalformedPart::Empty));
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(JwtError::Malformed(MalformedPart::Alphabet));
    }
    let mut it = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(JwtError::Malformed(MalformedPart::PartCount));
    };
    if header.is_empty() || payload.is_empty() {
        return Err(JwtError::Malformed(MalformedPart::EmptyPart));
    }
    let signed = &token[..header.len() + 1 + payload.len()];
    Ok(Parts {
        header,
        payload,
        signature,
        signed,
    })
}

fn decode_json(
    part: &str,
    base64_err: MalformedPart,
    json_err: MalformedPart,
) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed(base64_err))?;
    parse_object(&bytes).ok_or(JwtError::Malformed(json_err))
}

fn header_alg(header: &Map<String, Value>) -> Result<Alg, JwtError> {
    let Some(Value::String(name)) = header.get("alg") else {
        return Err(JwtError::Malformed(MalformedPart::HeaderAlg));
    };
    if name.trim().eq_ignore_ascii_case("none") {
        return Err(JwtError::AlgNone);
    }
    Alg::parse(name).ok_or(JwtError::AlgNotAllowed)
}

/// With a `kid`, the key with that id (which must accept `alg`). Without
/// one, the issuer's only key that accepts `alg`; several candidates are
/// refused rather than tried in turn, which would multiply the cost of a
/// forged token.
fn select_key<'k>(keys: &'k [Key], kid: Option<&str>, alg: Alg) -> Result<&'k Key, JwtError> {
    match kid {
        Some(kid) => {
            let key = keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(JwtError::UnknownKid)?;
            if key.accepts(alg) {
                Ok(key)
            } else {
                Err(JwtError::AlgKeyMismatch)
            }
        }
        None => {
            let mut candidates = keys.iter().filter(|k| k.accepts(alg));
            match (candidates.next(), candidates.next()) {
                (Some(key), None) => Ok(key),
                _ => Err(JwtError::UnknownKid),
            }
        }
    }
}

/// A NumericDate claim: absent, or a non-negative JSON number (fractions are
/// truncated, huge values saturate). Anything else is `bad_claims`.
fn numeric_date(
    payload: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<u64>, JwtError> {
    let Some(value) = payload.get(claim) else {
        return Ok(None);
    };
    let bad = JwtError::BadClaims { claim };
    let Value::Number(n) = value else {
        return Err(bad);
    };
    if let Some(v) = n.as_u64() {
        return Ok(Some(v));
    }
    match n.as_f64() {
        // `as` saturates for finite values beyond u64::MAX.
        Some(f) if f >= 0.0 && f.is_finite() => Ok(Some(f as u64)),
        _ => Err(bad),
    }
}

/// `aud` as a list: a string or an array of strings; required, because every
/// issuer names its accepted audiences.
fn audiences(payload: &Map<String, Value>) -> Result<Vec<&str>, JwtError> {
    let bad = JwtError::BadClaims { claim: "aud" };
    match payload.get("aud") {
        None => Err(JwtError::WrongAudience),
        Some(Value::String(aud)) => Ok(vec![aud.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or_else(|| bad.clone()))
            .collect(),
        Some(_) => Err(bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn verifier_and_errors_can_cross_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Verifier>();
        assert_send_sync::<JwtError>();
        assert_send_sync::<TokenCache>();
    }

    #[test]
    fn split_enforces_shape() {
        let e = |t: &str| split(t).err().map(|e| e.to_string());
        assert!(split("a.b.c").is_ok());
        assert!(split("a.b.").is_ok(), "empty signature is judged after alg");
        assert!(e("").unwrap().contains("empty token"));
        assert!(e("a.b").unwrap().contains("three"));
        assert!(e("a.b.c.d").unwrap().contains("three"));
        assert!(e("a..c").unwrap().contains("empty"));
        assert!(e("a.b=.c").unwrap().contains("base64url"));
        assert!(e("a.b+.c").unwrap().contains("base64url"));
        assert!(e("a.b .c").unwrap().contains("base64url"));
        assert!(e("a.bé.c").unwrap().contains("base64url"));
    }

    #[test]
    fn numeric_dates() {
        let p = map(json!({"a": 5, "b": 5.9, "c": -1, "d": "5", "e": 1e300, "f": null}));
        assert_eq!(numeric_date(&p, "a"), Ok(Some(5)));
        assert_eq!(numeric_date(&p, "b"), Ok(Some(5)));
        assert_eq!(numeric_date(&p, "e"), Ok(Some(u64::MAX)));
        assert_eq!(numeric_date(&p, "x"), Ok(None));
        for c in ["c", "d", "f"] {
            assert!(numeric_date(&p, c).is_err(), "{c}");
        }
    }

    #[test]
    fn audience_shapes() {
        assert_eq!(audiences(&map(json!({"aud": "a"}))).unwrap(), vec!["a"]);
        assert_eq!(
            audiences(&map(json!({"aud": ["a", "b"]}))).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(
            audiences(&map(json!({}))).unwrap_err(),
            JwtError::WrongAudience
        );
        for bad in [json!(1), json!(["a", 1]), json!({"a": 1}), json!(null)] {
            assert_eq!(
                audiences(&map(json!({ "aud": bad })))
                    .unwrap_err()
                    .reason_code(),
                "bad_claims"
            );
        }
    }

    #[test]
    fn alg_header() {
        for none in ["none", "NONE", "nOnE", " none"] {
            assert_eq!(
                header_alg(&map(json!({ "alg": none }))),
                Err(JwtError::AlgNone)
            );
        }
        assert_eq!(
            header_alg(&map(json!({"alg": "HS256"}))),
            Err(JwtError::AlgNotAllowed)
        );
        assert_eq!(
            header_alg(&map(json!({"alg": "es256"}))),
            Err(JwtError::AlgNotAllowed)
        );
        assert_eq!(
            header_alg(&map(json!({"alg": 1})))
                .unwrap_err()
                .reason_code(),
            "malformed"
        );
        assert_eq!(header_alg(&map(json!({"alg": "EdDSA"}))), Ok(Alg::EdDSA));
    }
}
