//! The downstream client certificate as Envoy's attributes describe it
//! (`connection.mtls`, `connection.uri_san_peer_certificate`), for
//! workload identity. Envoy fills both from the TLS handshake the
//! listener validated; nothing here reads a header.

use mcp_guard_flow::host::PeerCertificate;

use crate::abi::{self, EnvoyBuffer};
use crate::host::Filter;

fn attribute_bool(filter: Filter, id: u32) -> Option<bool> {
    let mut value = false;
    // SAFETY: `filter` is the live stream of the current hook; `value`
    // outlives the call.
    let found = unsafe {
        abi::envoy_dynamic_module_callback_http_filter_get_attribute_bool(filter.0, id, &mut value)
    };
    found.then_some(value)
}

fn attribute_string(filter: Filter, id: u32) -> Option<String> {
    let mut out = EnvoyBuffer::EMPTY;
    // SAFETY: as above; Envoy's buffer stays valid until the hook ends and
    // is copied out at once.
    let found = unsafe {
        abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(filter.0, id, &mut out)
    };
    if !found {
        return None;
    }
    // SAFETY: Envoy filled `out` with a pointer to `length` bytes.
    String::from_utf8(unsafe { out.to_vec() }).ok()
}

/// The peer certificate of the stream's downstream connection; nothing
/// when the peer presented none.
pub fn peer_certificate(filter: Filter) -> PeerCertificate {
    if attribute_bool(filter, abi::ATTRIBUTE_CONNECTION_MTLS) != Some(true) {
        return PeerCertificate::default();
    }
    PeerCertificate {
        presented: true,
        uri_san: attribute_string(filter, abi::ATTRIBUTE_CONNECTION_URI_SAN_PEER_CERTIFICATE),
    }
}
