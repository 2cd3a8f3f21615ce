//! Keeping every worker VM on the newest verified bundle with one fetcher.
//!
//! Envoy runs one VM per worker thread (plus one on the main thread), and
//! Istio's `WasmPlugin` offers no singleton service. So the VMs elect a
//! fetcher through a lease in shared data (compare-and-swap): the holder
//! long-polls the control service, verifies what it gets, and publishes it
//! in shared data; every VM (the holder included) activates what shared
//! data holds on its next sync tick. A holder that dies stops renewing and
//! another VM takes over when the lease expires.

use crate::calls as hostcalls;

/// Shared-data keys of one subscribed bundle.
#[derive(Debug, Clone)]
pub struct SharedKeys {
    /// `"<version> <etag>"` of the published bundle: small, read every tick.
    pub version: String,
    /// The published bundle bytes (verified by the VM that fetched them).
    pub bundle: String,
    /// `"<holder> <expiry ms>"`: which VM fetches.
    pub lease: String,
    /// This Envoy's instance id in status reports, when it has no node id:
    /// the first VM picks one, the others read it.
    pub instance: String,
}

impl SharedKeys {
    /// Keys for a bundle name.
    pub fn new(bundle: &str) -> Self {
        Self {
            version: format!("mcp_guard/{bundle}/version"),
            bundle: format!("mcp_guard/{bundle}/bundle"),
            lease: format!("mcp_guard/{bundle}/lease"),
            instance: format!("mcp_guard/{bundle}/instance"),
        }
    }
}

/// Renders the version key's value.
pub fn version_value(version: u64, etag: Option<&str>) -> String {
    format!("{version} {}", etag.unwrap_or_default())
}

/// Reads the version key's value back: version and ETag.
pub fn parse_version_value(value: &[u8]) -> Option<(u64, Option<String>)> {
    let text = std::str::from_utf8(value).ok()?;
    let (version, etag) = text.split_once(' ').unwrap_or((text, ""));
    Some((
        version.parse().ok()?,
        (!etag.is_empty()).then(|| etag.to_string()),
    ))
}

/// Reads a shared-data key; `None` when absent or unreadable.
pub fn read(key: &str) -> Option<Vec<u8>> {
    hostcalls::get_shared_data(key)
        .ok()
        .and_then(|(value, _)| value)
}

/// Publishes a verified bundle for every VM: bundle first, then the
/// version key the other VMs watch, so they never see a version without
/// its bytes.
pub fn publish(
    keys: &SharedKeys,
    bytes: &[u8],
    version: u64,
    etag: Option<&str>,
) -> Result<(), crate::host::RawStatus> {
    hostcalls::set_shared_data(&keys.bundle, Some(bytes), None)?;
    hostcalls::set_shared_data(
        &keys.version,
        Some(version_value(version, etag).as_bytes()),
        None,
    )
}

fn parse_lease(value: &[u8]) -> Option<(&str, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let (holder, expiry) = text.split_once(' ')?;
    Some((holder, expiry.parse().ok()?))
}

/// Takes or renews the fetch lease for `holder` until `now_ms + ttl_ms`.
/// Returns whether `holder` now holds it. Compare-and-swap makes two VMs
/// racing for an expired lease end with one holder.
pub fn acquire_lease(keys: &SharedKeys, holder: &str, now_ms: u64, ttl_ms: u64) -> bool {
    let mine = format!("{holder} {}", now_ms + ttl_ms);
    let Ok((current, cas)) = hostcalls::get_shared_data(&keys.lease) else {
        return false;
    };
    match current.as_deref().and_then(parse_lease) {
        Some((other, expiry)) if other != holder && expiry > now_ms => false,
        Some(_) => hostcalls::set_shared_data(&keys.lease, Some(mine.as_bytes()), cas).is_ok(),
        None => {
            // First lease ever: Envoy does not compare-and-swap a key that
            // does not exist yet, so check who won after writing.
            if hostcalls::set_shared_data(&keys.lease, Some(mine.as_bytes()), cas).is_err() {
                return false;
            }
            read(&keys.lease).is_some_and(|v| v == mine.as_bytes())
        }
    }
}

/// One instance id for every VM of this Envoy: the id already in shared
/// data, else `candidate` (written, then read back so racing VMs agree).
pub fn shared_instance_id(keys: &SharedKeys, candidate: &str) -> String {
    let stored = |value: Vec<u8>| String::from_utf8(value).ok().filter(|id| !id.is_empty());
    if let Some(id) = read(&keys.instance).and_then(stored) {
        return id;
    }
    let _ = hostcalls::set_shared_data(&keys.instance, Some(candidate.as_bytes()), None);
    read(&keys.instance)
        .and_then(stored)
        .unwrap_or_else(|| candidate.to_owned())
}
