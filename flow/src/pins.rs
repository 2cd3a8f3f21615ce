//! Tool pins in the exchange: the digests list answers advertise are
//! remembered through the host (process-wide), and a `tools/call` to a
//! pinned tool whose last advertised definition is not the pinned one is
//! denied with `tool_pin_mismatch`. See [`mcp_guard_engine::pins`].

use mcp_guard_engine::pins::{memory_key, CallVerdict, ToolDigest};
use mcp_guard_engine::{McpCall, Policy};

use crate::host::{Host, Level};

/// Remembers what a list answer advertised for pinned tools; counts the
/// answer once when it showed a changed one.
pub fn remember(
    host: &mut impl Host,
    policy: &Policy,
    advertised: &[(String, ToolDigest)],
    mismatched: bool,
) {
    let bundle = &policy.bundle().name;
    for (tool, digest) in advertised {
        let key = memory_key(bundle, tool);
        if host.advertised_tool(&key) != Some(*digest) {
            host.remember_advertised_tool(&key, *digest);
        }
    }
    if mismatched {
        host.count_tool_pin_mismatch();
        host.log(
            Level::Warn,
            "a tools/list answer changed a pinned tool's definition",
        );
    }
}

/// The first `tools/call` of `calls` the pins refuse, with why.
pub fn refused_call(
    host: &mut impl Host,
    policy: &Policy,
    calls: &[McpCall],
) -> Option<(String, CallVerdict)> {
    let pins = policy.bundle().tool_pins.as_ref()?;
    let bundle = &policy.bundle().name;
    for call in calls.iter().filter(|c| c.method == "tools/call") {
        let Some(tool) = call.target.as_deref() else {
            continue;
        };
        if !pins.tools.contains_key(tool) {
            continue;
        }
        let seen = host.advertised_tool(&memory_key(bundle, tool));
        let verdict = pins.judge_call(tool, seen);
        if verdict != CallVerdict::Allow {
            return Some((tool.to_owned(), verdict));
        }
    }
    None
}
