//! Static checks of `ratelimit/Containerfile` (no container runtime
//! needed), the shared ones of [`mcp_guard_test_support::containerfile`]:
//! the builder matches rust-toolchain.toml, the final stage is the binary
//! alone running as a numeric non-root user, every flag of the entrypoint
//! is one the real binary accepts, and the ports it listens on (gRPC and
//! HTTP) are the ones exposed.

use std::path::Path;

use mcp_guard_test_support::containerfile::{self, Containerfile};

#[test]
fn the_image_is_pinned_minimal_and_runs_what_the_binary_accepts() {
    let file = Containerfile::read("ratelimit/Containerfile");
    containerfile::assert_pinned_builder_matching_the_toolchain(&file);
    containerfile::assert_minimal_final_stage_as_non_root(&file);
    containerfile::assert_no_remote_add(&file);
    containerfile::assert_static_build_of(&file, "mcp-guard-ratelimit");
    containerfile::assert_entrypoint_runs(
        &file,
        Path::new(env!("CARGO_BIN_EXE_mcp-guard-ratelimit")),
        &["--listen", "--http-listen"],
    );
    assert_eq!(file.entrypoint()[0], "/usr/local/bin/mcp-guard-ratelimit");
}
