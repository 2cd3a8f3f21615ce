//! Telling the proxy's own answers from the upstream's, for a request
//! whose headers went upstream while its body is still held (headers not
//! held, [`crate::Exchange::with_held_headers`]).
//!
//! An upstream answering such a request answers something nobody
//! decided, and is refused. Envoy's router and connection manager answer
//! it themselves when the upstream cannot be reached, times out, or the
//! held body outgrows Envoy's buffer: those answers carry no upstream
//! data, and replacing them with a 502 would hide an outage (and count
//! it as a refused body). Envoy names its answer in the stream's
//! response-code details before the response headers reach the filter;
//! only the names below count, anything else (`via_upstream`, another
//! filter's answer, nothing readable) is treated as the upstream's.

use crate::host::Host;

/// Response-code details of answers Envoy makes up itself (no upstream
/// bytes in them), as Envoy's `ResponseCodeDetailValues` names them. A
/// name matches exactly or followed by `{...}`.
const PROXY_OWN: [&str; 13] = [
    "upstream_reset_before_response_started",
    "upstream_response_timeout",
    "upstream_per_try_timeout",
    "upstream_per_try_idle_timeout",
    "upstream_max_stream_duration_reached",
    "no_healthy_upstream",
    "cluster_not_found",
    "maintenance_mode",
    "request_payload_too_large",
    "stream_idle_timeout",
    "request_overall_timeout",
    "max_duration_timeout",
    "overload",
];

/// Whether the response now at the filter is Envoy's own answer.
pub fn is_proxy_own(host: &mut impl Host) -> bool {
    let Ok(Some(details)) = host.property(&["response", "code_details"]) else {
        return false;
    };
    let Ok(details) = std::str::from_utf8(&details) else {
        return false;
    };
    PROXY_OWN.iter().any(|own| {
        details
            .strip_prefix(own)
            .is_some_and(|rest| rest.is_empty() || (rest.starts_with('{') && rest.ends_with('}')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryHost;

    #[test]
    fn only_envoys_own_answers_count() {
        for (details, own) in [
            (
                "upstream_reset_before_response_started{remote_connection_failure}",
                true,
            ),
            ("upstream_response_timeout", true),
            ("request_payload_too_large", true),
            ("via_upstream", false),
            ("upstream_response_timeoutx", false),
            ("upstream_response_timeout{", false),
            ("cache.response_from_cache_filter", false),
            ("", false),
        ] {
            let mut host = MemoryHost::at(0);
            host.set_property(&["response", "code_details"], details);
            assert_eq!(is_proxy_own(&mut host), own, "{details}");
        }
        assert!(!is_proxy_own(&mut MemoryHost::at(0)), "unreadable");
    }
}
