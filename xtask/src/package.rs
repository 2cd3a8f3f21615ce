//! `cargo xtask package`: builds the filter and writes it as an OCI image
//! (layout directory + archive tar, see [`crate::oci`]) that Istio's
//! `WasmPlugin` pulls with `url: oci://…`, then prints what to paste into
//! the `WasmPlugin`.

use std::path::{Path, PathBuf};
use std::process::Command;

use mcp_guard_e2e::paths;

use crate::oci;
use crate::steps;

/// What `cargo xtask package` was asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Output directory (default `<target dir>/package`).
    pub out: Option<PathBuf>,
    /// Image tag (default: the filter crate's version).
    pub version: Option<String>,
    /// A module built elsewhere, packaged as is instead of building.
    pub module: Option<PathBuf>,
}

/// Parses the arguments after `package`.
pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "--out" => options.out = Some(value("--out")?.into()),
            "--version" => options.version = Some(value("--version")?),
            "--module" => options.module = Some(value("--module")?.into()),
            other => return Err(format!("package: unexpected argument `{other}`")),
        }
    }
    Ok(options)
}

/// The `version` of `[package]` in a Cargo.toml's text.
fn package_version(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(rest) = line.strip_prefix("version") {
                let value = rest.trim_start().strip_prefix('=')?.trim();
                return Some(value.trim_matches('"').to_owned());
            }
        }
    }
    None
}

fn filter_version() -> Result<String, String> {
    let file = paths::workspace_root().join("filter/Cargo.toml");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    package_version(&text).ok_or_else(|| format!("{} has no [package] version", file.display()))
}

/// The timestamp every entry carries: `SOURCE_DATE_EPOCH` when set (the
/// reproducible-builds convention), else the last commit's time, else 0;
/// with the source it came from, for the log.
fn timestamp() -> Result<(u64, &'static str), String> {
    if let Ok(value) = std::env::var("SOURCE_DATE_EPOCH") {
        let secs = value
            .trim()
            .parse()
            .map_err(|_| format!("SOURCE_DATE_EPOCH={value:?} is not a number of seconds"))?;
        return Ok((secs, "SOURCE_DATE_EPOCH"));
    }
    let commit = Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(paths::workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok());
    Ok(match commit {
        Some(secs) => (secs, "the last commit"),
        None => (0, "no SOURCE_DATE_EPOCH and no git history: the epoch"),
    })
}

/// Writes the layout into `dir`, replacing an earlier layout there but
/// refusing to touch a directory that is not one.
fn write_layout(dir: &Path, image: &oci::Image) -> Result<(), String> {
    if dir.exists() {
        if !dir.join("oci-layout").is_file() {
            return Err(format!(
                "{} exists and is not an OCI layout; not overwriting it",
                dir.display()
            ));
        }
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    for (path, bytes) in &image.files {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&file, bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(())
}

/// Writes `bytes` to `file` through a temporary file and a rename, so a
/// reader never sees half an archive.
fn write_atomically(file: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = file.with_extension("tar.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, file).map_err(|e| format!("{}: {e}", file.display()))
}

/// The text printed for the operator: digests, push commands and the
/// `WasmPlugin` lines. `sha256` is the manifest digest (what Istio checks
/// for `oci://` URLs), never the module's.
pub fn instructions(image: &oci::Image, version: &str, layout: &Path, archive: &Path) -> String {
    let (layout, archive) = (layout.display(), archive.display());
    let manifest = &image.manifest.hex;
    format!(
        "\
OCI image layout: {layout}
OCI archive:      {archive}
manifest digest:  sha256:{manifest}
module sha256:    {module} (for http(s):// URLs only)

Push it (REGISTRY = your registry/repository prefix; any one tool):
  crane push {layout} REGISTRY/mcp-guard:{version}
  skopeo copy --preserve-digests oci-archive:{archive}:{version} docker://REGISTRY/mcp-guard:{version}
  oras cp --from-oci-layout {layout}:{version} REGISTRY/mcp-guard:{version}

Pin it in the WasmPlugin:
  url: oci://REGISTRY/mcp-guard:{version}
  sha256: {manifest}
(or pin in the URL alone: url: oci://REGISTRY/mcp-guard@sha256:{manifest})
",
        module = image.module_sha256,
    )
}

/// Runs `cargo xtask package [--out DIR] [--version V] [--module FILE]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    let version = match options.version {
        Some(v) => v,
        None => filter_version()?,
    };
    oci::check_version(&version).map_err(|e| e.to_string())?;
    let module_path = match options.module {
        Some(path) => path,
        None => steps::build_wasm()?,
    };
    let module =
        std::fs::read(&module_path).map_err(|e| format!("{}: {e}", module_path.display()))?;
    let (mtime, source) = timestamp()?;
    eprintln!("xtask: timestamp {mtime} from {source}");
    let image = oci::image(&module, &version, mtime).map_err(|e| e.to_string())?;
    let tar = oci::archive(&image).map_err(|e| e.to_string())?;

    let out = options
        .out
        .unwrap_or_else(|| steps::target_dir().join("package"));
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let layout = out.join(format!("mcp-guard-{version}.oci"));
    let archive = out.join(format!("mcp-guard-{version}.oci.tar"));
    write_layout(&layout, &image)?;
    write_atomically(&archive, &tar)?;
    print!("{}", instructions(&image, &version, &layout, &archive));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_options() {
        assert_eq!(parse(&[]), Ok(Options::default()));
        let o = parse(&args(&[
            "--out",
            "o",
            "--version",
            "1.2.3",
            "--module",
            "m.wasm",
        ]));
        assert_eq!(
            o,
            Ok(Options {
                out: Some("o".into()),
                version: Some("1.2.3".into()),
                module: Some("m.wasm".into()),
            })
        );
        assert!(parse(&args(&["--out"])).is_err());
        assert!(parse(&args(&["--bogus"])).is_err());
    }

    #[test]
    fn reads_the_package_version_only() {
        let toml =
            "[package]\nname = \"x\"\nversion = \"0.4.2\"\n\n[dependencies]\nversion = \"9\"\n";
        assert_eq!(package_version(toml), Some("0.4.2".into()));
        let late = "[dependencies]\nversion = \"9\"\n[package]\nname = \"x\"\n";
        assert_eq!(package_version(late), None);
    }

    #[test]
    fn the_filter_version_is_a_valid_tag() {
        let v = filter_version().unwrap();
        oci::check_version(&v).unwrap();
    }

    #[test]
    fn instructions_pin_the_manifest_digest_not_the_module() {
        let module = b"\0asm\x01\0\0\0 a module".to_vec();
        let image = oci::image(&module, "1.0.0", 1_700_000_000).unwrap();
        let text = instructions(&image, "1.0.0", Path::new("L"), Path::new("A"));
        assert!(text.contains(&format!("  sha256: {}\n", image.manifest.hex)));
        assert!(text.contains("  url: oci://REGISTRY/mcp-guard:1.0.0\n"));
        assert!(!text.contains(&format!("sha256: {}", image.module_sha256)));
        assert_ne!(image.manifest.hex, image.module_sha256);
    }

    #[test]
    fn never_overwrites_a_directory_that_is_not_a_layout() {
        let dir = std::env::temp_dir().join(format!("mcp-guard-pkg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("precious"), b"keep").unwrap();
        let image = oci::image(b"\0asm\x01\0\0\0", "1", 0).unwrap();
        assert!(write_layout(&dir, &image).is_err());
        assert_eq!(std::fs::read(dir.join("precious")).unwrap(), b"keep");
        // A layout from an earlier run is replaced whole (no stale blobs).
        let layout = dir.join("layout");
        write_layout(&layout, &image).unwrap();
        std::fs::write(layout.join("blobs/sha256/stale"), b"old").unwrap();
        write_layout(&layout, &image).unwrap();
        assert!(!layout.join("blobs/sha256/stale").exists());
        assert!(layout.join("oci-layout").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
