//! Signature algorithms and JWK compilation.
//!
//! JWKs are parsed here rather than with `jsonwebtoken::jwk` so that every
//! rejection names the exact problem (and so that a short Ed25519 key, which
//! would panic inside the crate, is refused up front). The resulting
//! [`DecodingKey`]s are then checked once through the crypto backend, so a
//! bad curve point fails at bundle validation, not on the first request.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::crypto::JwtVerifier;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

/// Smallest accepted RSA modulus, in bits (NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest accepted RSA modulus, in bits (the `rsa` crate's own limit).
pub const MAX_RSA_BITS: usize = 4096;

/// A signature algorithm the verifier accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

/// Every supported algorithm, in documentation order.
pub const SUPPORTED_ALGS: &[Alg] = &[
    Alg::RS256,
    Alg::RS384,
    Alg::RS512,
    Alg::PS256,
    Alg::PS384,
    Alg::PS512,
    Alg::ES256,
    Alg::ES384,
    Alg::EdDSA,
];

/// The key type an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `kty: RSA`.
    Rsa,
    /// `kty: EC`, `crv: P-256`.
    P256,
    /// `kty: EC`, `crv: P-384`.
    P384,
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
}

impl Alg {
    /// Parses a JOSE `alg` name, exactly (JOSE names are case-sensitive).
    pub fn parse(name: &str) -> Option<Self> {
        SUPPORTED_ALGS.iter().copied().find(|a| a.name() == name)
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// The only key kind this algorithm may be verified with; this is what
    /// rules out algorithm confusion between key types.
    pub fn key_kind(self) -> KeyKind {
        match self {
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                KeyKind::Rsa
            }
            Self::ES256 => KeyKind::P256,
            Self::ES384 => KeyKind::P384,
            Self::EdDSA => KeyKind::Ed25519,
        }
    }

    pub(crate) fn to_jwt(self) -> Algorithm {
        match self {
            Self::RS256 => Algorithm::RS256,
            Self::RS384 => Algorithm::RS384,
            Self::RS512 => Algorithm::RS512,
            Self::PS256 => Algorithm::PS256,
            Self::PS384 => Algorithm::PS384,
            Self::PS512 => Algorithm::PS512,
            Self::ES256 => Algorithm::ES256,
            Self::ES384 => Algorithm::ES384,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }
}

/// Why an `alg` name is refused in config, or `None` when it is supported.
pub(crate) fn refuse_alg_name(name: &str) -> Option<String> {
    if Alg::parse(name).is_some() {
        return None;
    }
    Some(if name.eq_ignore_ascii_case("none") {
        "\"none\" (unsigned tokens) is never accepted".to_string()
    } else if name.len() == 5 && name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("HS")) {
        format!("{name:?}: HMAC (shared-secret) algorithms are not supported")
    } else {
        let names: Vec<&str> = SUPPORTED_ALGS.iter().map(|a| a.name()).collect();
        format!(
            "unsupported algorithm {name:?}; expected one of {}",
            names.join(", ")
        )
    })
}

/// One compiled public key.
#[derive(Debug, Clone)]
pub struct Key {
    /// `kid`, when the JWK has one.
    pub kid: Option<String>,
    /// What the key is.
    pub kind: KeyKind,
    /// The `alg` the JWK pins, if any; tokens must then use exactly it.
    pub pinned: Option<Alg>,
    decoding: DecodingKey,
}

impl Key {
    /// Whether a token signed with `alg` may be checked with this key.
    pub fn accepts(&self, alg: Alg) -> bool {
        alg.key_kind() == self.kind && self.pinned.is_none_or(|p| p == alg)
    }

    /// Verifies `signature` over `message` (the `header.payload` text).
    /// Callers check [`Key::accepts`] first.
    pub(crate) fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        match verifier_for(alg, &self.decoding) {
            Ok(v) => v.verify(message, &signature.to_vec()).is_ok(),
            Err(_) => false,
        }
    }
}

fn verifier_for(
    alg: Alg,
    key: &DecodingKey,
) -> Result<Box<dyn JwtVerifier>, jsonwebtoken::errors::Error> {
    // The RustCrypto provider is named explicitly rather than through the
    // process default, so another crate enabling a second backend cannot
    // change (or break) what the engine verifies with.
    (DEFAULT_PROVIDER.verifier_factory)(&alg.to_jwt(), key)
}

/// The outcome of compiling one JWK.
pub(crate) enum Compiled {
    /// A usable signature key.
    Key(Key),
    /// An encryption key (`"use": "enc"`), ignored by design: IdP JWKS
    /// documents often mix them in.
    Skipped,
}

/// Members that only private keys have (RFC 7518 section 6); a bundle is
/// distributed widely, so private material in it is an incident.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Compiles one JWK. `Err` is a human-readable reason without key bytes.
pub(crate) fn compile_jwk(jwk: &Value, allowed: &[Alg]) -> Result<Compiled, String> {
    let obj = jwk.as_object().ok_or("a JWK must be a JSON object")?;
    if let Some(u) = obj.get("use") {
        match u.as_str() {
            Some("sig") => {}
            Some("enc") => return Ok(Compiled::Skipped),
            _ => return Err("`use` must be \"sig\" or \"enc\"".into()),
        }
    }
    if let Some(ops) = obj.get("key_ops") {
        let ops = ops.as_array().ok_or("`key_ops` must be an array")?;
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return Err("`key_ops` does not include \"verify\"".into());
        }
    }
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("`kid` must be a string".into()),
    };
    let kty = obj
        .get("kty")
        .ok_or("missing `kty`")?
        .as_str()
        .ok_or("`kty` must be a string")?;
    if kty == "oct" {
        return Err("symmetric (`oct`) keys are not supported".into());
    }
    if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
        return Err(format!(
            "private key member `{m}` present; publish public keys only"
        ));
    }
    let (kind, decoding) = match kty {
        "RSA" => rsa_key(obj)?,
        "EC" => ec_key(obj)?,
        "OKP" => okp_key(obj)?,
        other => return Err(format!("unsupported key type {other:?}")),
    };
    let pinned = match obj.get("alg") {
        None => None,
        Some(Value::String(name)) => {
            let alg = Alg::parse(name).ok_or_else(|| refuse_alg_name(name).unwrap_or_default())?;
            if alg.key_kind() != kind {
                return Err(format!(
                    "`alg` {name:?} does not fit a {} key",
                    kind_name(kind)
                ));
            }
            Some(alg)
        }
        Some(_) => return Err("`alg` must be a string".into()),
    };
    let key = Key {
        kid,
        kind,
        pinned,
        decoding,
    };
    let usable: Vec<Alg> = allowed
        .iter()
        .copied()
        .filter(|a| key.accepts(*a))
        .collect();
    let Some(first) = usable.first() else {
        let names: Vec<&str> = allowed.iter().map(|a| a.name()).collect();
        return Err(format!(
            "a {} key{} can verify none of the issuer's algorithms [{}]",
            kind_name(kind),
            key.pinned
                .map(|a| format!(" pinned to {}", a.name()))
                .unwrap_or_default(),
            names.join(", ")
        ));
    };
    // Build a verifier once so invalid points or moduli fail here.
    verifier_for(*first, &key.decoding)
        .map_err(|_| format!("not a valid {} public key", kind_name(kind)))?;
    Ok(Compiled::Key(key))
}

fn kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Rsa => "RSA",
        KeyKind::P256 => "EC P-256",
        KeyKind::P384 => "EC P-384",
        KeyKind::Ed25519 => "Ed25519",
    }
}

fn b64_member(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = obj
        .get(name)
        .ok_or_else(|| format!("missing `{name}`"))?
        .as_str()
        .ok_or_else(|| format!("`{name}` must be a string"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("`{name}` is not unpadded base64url"))
}

fn rsa_key(obj: &Map<String, Value>) -> Result<(KeyKind, DecodingKey), String> {
    let n = b64_member(obj, "n")?;
    let e = b64_member(obj, "e")?;
    let n_trim = strip_leading_zeros(&n);
    let bits = bit_len(n_trim);
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA modulus is {bits} bits; at least {MIN_RSA_BITS} required"
        ));
    }
    if bits > MAX_RSA_BITS {
        return Err(format!(
            "RSA modulus is {bits} bits; at most {MAX_RSA_BITS} supported"
        ));
    }
    let e_trim = strip_leading_zeros(&e);
    // Public exponents are small odd numbers (almost always 65537); an
    // oversized or even one is a broken or hostile key.
    let odd = e_trim.last().is_some_and(|b| b & 1 == 1);
    if !odd || e_trim.len() > 4 || e_trim == [1] {
        return Err("RSA exponent must be an odd number between 3 and 2^32".into());
    }
    Ok((
        KeyKind::Rsa,
        DecodingKey::from_rsa_raw_components(n_trim, e_trim),
    ))
}

fn ec_key(obj: &Map<String, Value>) -> Result<(KeyKind, DecodingKey), String> {
    let crv = obj
        .get("crv")
        .ok_or("missing `crv`")?
        .as_str()
        .ok_or("`crv` must be a string")?;
    let (kind, size) = match crv {
        "P-256" => (KeyKind::P256, 32),
        "P-384" => (KeyKind::P384, 48),
        other => return Err(format!("unsupported EC curve {other:?} (P-256, P-384)")),
    };
    let x = b64_member(obj, "x")?;
    let y = b64_member(obj, "y")?;
    if x.len() != size || y.len() != size {
        return Err(format!("`x` and `y` must be {size} bytes for {crv}"));
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    // `from_ec_der` takes the SEC1 point the verifier parses, despite its name.
    Ok((kind, DecodingKey::from_ec_der(&point)))
}

fn okp_key(obj: &Map<String, Value>) -> Result<(KeyKind, DecodingKey), String> {
    let crv = obj
        .get("crv")
        .ok_or("missing `crv`")?
        .as_str()
        .ok_or("`crv` must be a string")?;
    if crv != "Ed25519" {
        return Err(format!("unsupported OKP curve {crv:?} (Ed25519)"));
    }
    let x = b64_member(obj, "x")?;
    if x.len() != 32 {
        return Err("`x` must be 32 bytes for Ed25519".into());
    }
    Ok((KeyKind::Ed25519, DecodingKey::from_ed_der(&x)))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(top) => (be.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn err(jwk: Value, allowed: &[Alg]) -> String {
        match compile_jwk(&jwk, allowed) {
            Err(e) => e,
            Ok(_) => panic!("accepted {jwk}"),
        }
    }

    #[test]
    fn alg_names_round_trip_and_refusals_are_specific() {
        for a in SUPPORTED_ALGS {
            assert_eq!(Alg::parse(a.name()), Some(*a));
        }
        assert_eq!(Alg::parse("rs256"), None);
        assert!(refuse_alg_name("NoNe").unwrap().contains("never"));
        assert!(refuse_alg_name("HS256").unwrap().contains("HMAC"));
        assert!(refuse_alg_name("ES512").unwrap().contains("unsupported"));
        assert_eq!(refuse_alg_name("EdDSA"), None);
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[1]), 1);
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(strip_leading_zeros(&[0, 0, 5]), &[5]);
    }

    #[test]
    fn bad_keys_are_named() {
        let all = SUPPORTED_ALGS;
        assert!(err(json!("x"), all).contains("object"));
        assert!(err(json!({"kty": "oct", "k": "AA"}), all).contains("symmetric"));
        assert!(err(json!({"kty": "EC", "crv": "P-256", "d": "AA"}), all).contains("private"));
        assert!(err(json!({"kty": "XYZ"}), all).contains("unsupported key type"));
        assert!(err(json!({"kty": "EC", "crv": "P-521"}), all).contains("P-521"));
        assert!(err(json!({"kty": "OKP", "crv": "Ed448", "x": "AA"}), all).contains("Ed448"));
        assert!(err(
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[1; 31])}),
            all
        )
        .contains("32 bytes"));
        assert!(
            err(json!({"kty": "OKP", "crv": "Ed25519", "x": "A+=="}), all).contains("base64url")
        );
        let small = json!({"kty": "RSA", "n": b64(&[0xff; 128]), "e": "AQAB"});
        assert!(err(small, all).contains("1024 bits"));
        let even = json!({"kty": "RSA", "n": b64(&[0xff; 256]), "e": b64(&[2])});
        assert!(err(even, all).contains("exponent"));
        let key = json!({"kty": "RSA", "n": b64(&[0xff; 256]), "e": "AQAB", "alg": "ES256"});
        assert!(err(key, all).contains("does not fit"));
        let key = json!({"kty": "RSA", "n": b64(&[0xff; 256]), "e": "AQAB"});
        assert!(err(key, &[Alg::ES256]).contains("none of the issuer's algorithms"));
        let key = json!({"kty": "EC", "crv": "P-256", "x": b64(&[7; 32]), "y": b64(&[7; 32])});
        assert!(err(key, all).contains("not a valid EC P-256"));
        let key = json!({"kty": "RSA", "use": "sig", "key_ops": ["encrypt"]});
        assert!(err(key, all).contains("key_ops"));
    }

    #[test]
    fn enc_keys_are_skipped() {
        let key = json!({"kty": "RSA", "use": "enc", "alg": "RSA-OAEP"});
        assert!(matches!(
            compile_jwk(&key, SUPPORTED_ALGS),
            Ok(Compiled::Skipped)
        ));
    }
}
