//! `request_line`: the `:path` and `:authority` checks on arbitrary text.
//!
//! Invariants: no panic; an accepted path is a fixed point of the
//! reference normaliser (both orders of Envoy's normalisations), holds no
//! `?#;\`, and no segment decodes to a dot segment, a separator or a
//! control byte, or decodes differently twice; an accepted host is lower
//! case, clean and a fixed point of the check.

use super::normalise::{assert_host_fixed_point, assert_unambiguous};

pub fn check(data: &[u8]) {
    let raw = super::text(data);
    assert_unambiguous(&raw);
    assert_host_fixed_point(&raw);
    // The same text as a path, whatever it started with.
    if !raw.starts_with('/') {
        assert_unambiguous(&format!("/{raw}"));
    }
}
