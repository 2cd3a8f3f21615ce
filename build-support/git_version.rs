// Shared by the binaries' build scripts (`include!`d): sets
// `MCP_GUARD_VERSION` to the crate version plus `git describe` of the
// checkout it was built from, so `--version` names the exact commit
// (with `-dirty` for uncommitted changes). Outside a git checkout (a
// source tarball) it is the crate version alone.

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn emit_version() {
    let crate_version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let version = match git(&["describe", "--tags", "--always", "--dirty"]) {
        Some(described) => format!("{crate_version} ({described})"),
        None => crate_version,
    };
    println!("cargo:rustc-env=MCP_GUARD_VERSION={version}");
    // Rebuild when the commit or the index moves (a commit, a checkout,
    // `git add`), not on every build.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/index");
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{head}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
