//! The request attributes a decision looks at.

/// What the filter knows about a request when it decides.
///
/// Borrowed from the host's header values so building one costs no copies.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestAttrs<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// `:authority` / `Host`.
    pub host: &'a str,
}

impl<'a> RequestAttrs<'a> {
    /// Builds attributes from a raw `:path`, dropping any query string so
    /// rules cannot be bypassed by appending `?x`.
    pub fn new(method: &'a str, raw_path: &'a str, host: &'a str) -> Self {
        let path = raw_path.split(['?', '#']).next().unwrap_or_default();
        Self { method, path, host }
    }
}
