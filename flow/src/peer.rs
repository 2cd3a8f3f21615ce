//! The peer workload's SPIFFE ID, read from what the proxy says about the
//! downstream TLS connection — never from a header such as
//! `x-forwarded-client-cert`, which any client can write.
//!
//! Fail closed: no certificate, a certificate without a URI SAN, or a URI
//! SAN that is not a strict SPIFFE ID all mean "no peer identity": rules
//! with `peers` do not match and a tokenless caller is refused. Envoy
//! exposes only the certificate's *first* URI SAN (both to proxy-wasm and
//! to dynamic modules); an X.509-SVID has exactly one, and the listener's
//! validation context decides which CA may issue the certificate at all.

use mcp_guard_engine::peer::SpiffeId;
use mcp_guard_engine::{Bundle, Decision, Reason};

use crate::host::{Host, PeerCertificate};

/// What the connection says about the peer, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// No client certificate (plain TLS or cleartext).
    Absent,
    /// A certificate whose URI SAN is a SPIFFE ID.
    Spiffe(SpiffeId),
    /// A certificate that names no usable SPIFFE ID; the reason code.
    Unusable(&'static str),
}

impl Peer {
    /// Judges the proxy's view of the peer certificate.
    pub fn judge(cert: &PeerCertificate) -> Self {
        if !cert.presented {
            return Self::Absent;
        }
        match cert.uri_san.as_deref() {
            None | Some("") => Self::Unusable("no_uri_san"),
            Some(san) => match SpiffeId::parse(san) {
                Ok(id) => Self::Spiffe(id),
                Err(_) => Self::Unusable("uri_san_not_spiffe"),
            },
        }
    }

    /// Reads and judges the peer of the current exchange.
    pub fn read(host: &mut impl Host) -> Self {
        Self::judge(&host.peer_certificate())
    }

    /// The SPIFFE ID, when there is one.
    pub fn id(&self) -> Option<&SpiffeId> {
        match self {
            Self::Spiffe(id) => Some(id),
            _ => None,
        }
    }
}

/// The workload a request is identified by when identity found no token:
/// only for `missing_token` (a bad or expired token is never replaced by
/// the peer), only when the bundle lets workloads call without a token,
/// and only for a peer from one of its trust domains.
pub fn workload_caller<'p>(
    bundle: &Bundle,
    denial: &Decision,
    peer: Option<&'p SpiffeId>,
) -> Option<&'p SpiffeId> {
    if denial.reason != Reason::MissingToken {
        return None;
    }
    let workloads = bundle.identity.workloads.as_ref()?;
    peer.filter(|id| workloads.admits(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(presented: bool, san: Option<&str>) -> PeerCertificate {
        PeerCertificate {
            presented,
            uri_san: san.map(str::to_owned),
        }
    }

    #[test]
    fn only_a_presented_certificate_with_a_spiffe_san_identifies() {
        let id = "spiffe://cluster.local/ns/a/sa/b";
        assert_eq!(
            Peer::judge(&cert(true, Some(id)))
                .id()
                .map(SpiffeId::as_str),
            Some(id)
        );
        // A SAN without `connection.mtls` is not trusted.
        assert_eq!(Peer::judge(&cert(false, Some(id))), Peer::Absent);
        assert_eq!(Peer::judge(&cert(true, None)), Peer::Unusable("no_uri_san"));
        assert_eq!(
            Peer::judge(&cert(true, Some(""))),
            Peer::Unusable("no_uri_san")
        );
        for san in [
            "https://cluster.local/ns/a",
            "spiffe://cluster.local/ns/a?x",
            "spiffe://Cluster.local/ns/a",
            "spiffe://cluster.local/ns/../a",
            "spiffe://cluster.local/ns/a/",
            "spiffe://cluster.local/ns/a%2Fb",
            " spiffe://cluster.local/ns/a",
        ] {
            assert_eq!(
                Peer::judge(&cert(true, Some(san))),
                Peer::Unusable("uri_san_not_spiffe"),
                "{san}"
            );
        }
    }
}
