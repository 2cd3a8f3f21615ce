//! Who is calling: Envoy's verified `jwt_authn` payload when there is one,
//! else the bundle's own verification of the bearer token. Never a header
//! a client could forge.

use mcp_guard_engine::envoy_metadata::jwt_payload_from_metadata;
use mcp_guard_engine::{Claims, Decision, Reason};

use crate::active::ActivePolicy;
use crate::host::{Host, Side};

/// The metadata namespace `jwt_authn` writes verified payloads under.
const JWT_AUTHN_FILTER: &str = "envoy.filters.http.jwt_authn";

/// Reads claims from `jwt_authn` metadata. The whole `metadata` property
/// comes back as a typed protobuf message (a `Struct` per namespace), so
/// numbers, strings, booleans and maps are told apart by structure —
/// never guessed from their bytes.
fn read_claims(host: &mut impl Host, metadata_key: &str) -> Result<Claims, Reason> {
    match host.property(&["metadata"]) {
        Ok(Some(bytes)) => {
            match jwt_payload_from_metadata(&bytes, JWT_AUTHN_FILTER, metadata_key) {
                Ok(Some(map)) => Ok(Claims::new(map)),
                Ok(None) => Err(Reason::MissingToken),
                Err(_) => Err(Reason::InvalidToken),
            }
        }
        Ok(None) => Err(Reason::MissingToken),
        Err(_) => Err(Reason::InvalidToken),
    }
}

/// The caller's claims, or the denial that says why there are none; under
/// a `resource` section the token must also be meant for this server.
pub fn identify(host: &mut impl Host, active: &ActivePolicy) -> Result<Claims, Decision> {
    let claims = identify_caller(host, active)?;
    crate::resource::check_audience(&active.policy, &claims)?;
    Ok(claims)
}

/// The claims from either source, before any audience binding.
fn identify_caller(host: &mut impl Host, active: &ActivePolicy) -> Result<Claims, Decision> {
    let bundle = active.policy.bundle();
    match read_claims(host, &bundle.identity.jwt_authn_metadata) {
        Ok(claims) => return Ok(claims),
        Err(Reason::MissingToken) => {}
        Err(reason) => return Err(Decision::deny(reason)),
    }
    let (Some(verifier), Some(config)) =
        (active.policy.verifier(), bundle.identity.verify.as_ref())
    else {
        return Err(Decision::deny(Reason::MissingToken));
    };
    let Some(value) = host.header(Side::Request, &config.header) else {
        return Err(Decision::deny(Reason::MissingToken));
    };
    let Some(token) = config.token_from_header(&value) else {
        return Err(Decision::deny(Reason::InvalidToken).with_detail("malformed"));
    };
    let now = host.now_ms() / 1000;
    let mut cache = active.token_cache();
    verifier
        .verify_cached(&mut cache, token, now)
        .map_err(|e| Decision::deny(Reason::InvalidToken).with_detail(e.reason_code()))
}
