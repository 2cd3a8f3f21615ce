//! Static checks of `control/Containerfile` (no container runtime needed),
//! the shared ones of [`mcp_guard_test_support::containerfile`]:
//! multi-stage, pinned builder matching rust-toolchain.toml, a final stage
//! with nothing but the binary running as a numeric non-root user, no
//! remote `ADD`, an entrypoint whose flags the real binary accepts and
//! whose listen port is the one exposed, and a build context that keeps
//! every workspace member. Plus the control service's own: its data
//! directory is the declared volume.

use std::path::Path;

use mcp_guard_test_support::containerfile::{self, Containerfile};

fn the_containerfile() -> Containerfile {
    Containerfile::read("control/Containerfile")
}

#[test]
fn is_multi_stage_with_a_pinned_builder_matching_the_toolchain() {
    containerfile::assert_pinned_builder_matching_the_toolchain(&the_containerfile());
}

#[test]
fn the_final_stage_is_only_the_binary_run_as_a_numeric_non_root_user() {
    containerfile::assert_minimal_final_stage_as_non_root(&the_containerfile());
}

#[test]
fn no_remote_add_anywhere() {
    containerfile::assert_no_remote_add(&the_containerfile());
}

#[test]
fn the_entrypoint_listens_on_all_interfaces_at_the_exposed_port_with_real_flags() {
    let file = the_containerfile();
    containerfile::assert_entrypoint_runs(
        &file,
        Path::new(env!("CARGO_BIN_EXE_mcp-guard-control")),
        &["--listen"],
    );
    // The data directory flag points at the declared volume.
    let data = file.entrypoint_value("--data");
    assert!(file.last("VOLUME").args.contains(&format!("\"{data}\"")));
}

#[test]
fn the_build_compiles_the_service_with_the_profile_it_copies() {
    containerfile::assert_static_build_of(&the_containerfile(), "mcp-guard-control");
}

#[test]
fn the_build_context_keeps_every_workspace_member() {
    containerfile::assert_context_keeps_every_member();
}
