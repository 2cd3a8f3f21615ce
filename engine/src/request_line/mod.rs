//! Strict checks of the request line (`:path`) and `:authority` before a
//! decision.
//!
//! Rules match the path and host as text. If the text a rule sees is not
//! the text the upstream acts on — `/tenants/acme/../globex`, `/%61dmin`,
//! `//admin`, `internal.local.` — a rule can be bypassed. Envoy is
//! configured to normalise these (see `envoy/envoy.yaml.tmpl`), but a mesh
//! or proxy with other defaults may not be, so the filter refuses (400)
//! anything that is not already in normal form instead of trusting the
//! proxy in front of it. The checks never rewrite the path: the upstream
//! gets exactly the bytes the decision looked at.

pub mod authority;
pub mod path;

pub use authority::{check_authority, HostError, NormalHost};
pub use path::{check_path, NormalPath, PathError};
