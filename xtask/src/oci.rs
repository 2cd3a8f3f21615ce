//! The filter module as an OCI image that Istio's `WasmPlugin` pulls with
//! `url: oci://…`: an image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) and the same layout as one tar (an "OCI archive").
//!
//! Everything here is a pure function of (module bytes, version, timestamp):
//! no clock, no file system, no environment, so the same module packaged
//! twice gives byte-identical output and therefore the same manifest digest
//! (the value operators pin).
//!
//! # Which format, and why
//!
//! Istio's fetcher (`pkg/wasm/imagefetcher.go`, `PrepareFetch`) accepts
//! three shapes and tries them in this order:
//!
//! 1. a Docker schema-2 manifest whose last layer is
//!    `application/vnd.docker.image.rootfs.diff.tar.gzip`;
//! 2. the *compat* variant (solo-io/wasm `spec-compat.md`): an OCI manifest
//!    whose last layer is `application/vnd.oci.image.layer.v1.tar+gzip`,
//!    a gzip'd tar holding a file whose base name is `plugin.wasm`;
//! 3. the *oci* artifact variant: layers of media type
//!    `application/vnd.module.wasm.content.layer.v1+wasm` (the raw module),
//!    which Istio only reads from an image of **exactly two layers**
//!    (`extractOCIArtifactImage`: "number of layers must be 2").
//!
//! We ship one image with one layer, so the artifact variant is out (Istio
//! would refuse it with "number of layers must be 2 but got 1"); the compat
//! variant is what Istio tries first for OCI manifests, and its media types
//! are the standard image ones, so every registry and tool (crane, skopeo,
//! oras, docker, podman) stores and copies it unchanged. The manifest
//! carries the spec's `module.wasm.image/variant: compat` annotation.
//!
//! # The digest to pin
//!
//! For `oci://` URLs Istio compares `WasmPlugin.spec.sha256` with the
//! **manifest digest** (`img.Digest().Hex` in `PrepareFetch`, checked in
//! `pkg/wasm/cache.go` `Get`), as bare hex without `sha256:`, not with the
//! module's own hash (that one is what it checks for `http(s)://` URLs).

use std::collections::BTreeMap;
use std::io::Write;

use sha2::{Digest as _, Sha256};

/// The image layout's version file (`oci-layout`).
pub const LAYOUT_VERSION: &str = "1.0.0";
/// Media type of `index.json`.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of the image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the one layer: what Istio's compat-variant reader wants.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The file inside the layer that Istio loads (compat variant).
pub const MODULE_FILE: &str = "plugin.wasm";
/// Manifest annotation the compat spec requires for a `tar+gzip` layer.
pub const VARIANT_ANNOTATION: (&str, &str) = ("module.wasm.image/variant", "compat");
/// `index.json` annotation naming the image, so `oci:DIR:<version>`
/// (skopeo) and `--from-oci-layout DIR:<version>` (oras) find it.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Title annotation of the manifest.
pub const TITLE: &str = "mcp-guard";

/// Largest mtime a ustar header holds (11 octal digits).
const MAX_USTAR_MTIME: u64 = 0o77_777_777_777;
/// The longest tag the distribution spec allows.
const MAX_TAG_LEN: usize = 128;

/// Why an image cannot be made.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OciError {
    /// The version is not a valid OCI tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`):
    /// it becomes the tag and a JSON string, so nothing else may pass.
    #[error("version {0:?} is not a valid image tag ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}})")]
    BadVersion(String),
    /// The bytes are not a WebAssembly module (Istio refuses those too,
    /// but only after the image is published and pulled).
    #[error("the module is not WebAssembly (no \\0asm header)")]
    NotWasm,
    /// The timestamp does not fit a tar header.
    #[error("timestamp {0} is past what a tar header holds")]
    BadTimestamp(u64),
    /// Writing into memory failed (tar or gzip encoder).
    #[error("encoding the image: {0}")]
    Encode(String),
}

/// A content descriptor: what a manifest or index says about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type of the blob.
    pub media_type: &'static str,
    /// Lower-case hex SHA-256 of the blob (no `sha256:` prefix).
    pub hex: String,
    /// Size of the blob in bytes.
    pub size: u64,
}

/// One packaged image: the layout's files and the digests to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Layout files by path relative to the layout root, sorted.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The manifest: its hex is what `WasmPlugin.spec.sha256` pins.
    pub manifest: Descriptor,
    /// The module's own SHA-256 (what an `http(s)://` URL would pin).
    pub module_sha256: String,
    /// The timestamp every entry carries (seconds since the epoch).
    pub mtime: u64,
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn describe(media_type: &'static str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type,
        hex: sha256_hex(bytes),
        size: bytes.len() as u64,
    }
}

/// Checks `version` against the distribution spec's tag grammar.
pub fn check_version(version: &str) -> Result<(), OciError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let first_ok = version
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if first_ok && version.len() <= MAX_TAG_LEN && version.chars().all(ok) {
        Ok(())
    } else {
        Err(OciError::BadVersion(version.to_owned()))
    }
}

/// A tar header with fixed ownership and the given type, mode and time:
/// nothing of the build machine (user names, ids, umask) leaks in.
fn header(entry: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(entry);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h
}

fn encode_err(e: std::io::Error) -> OciError {
    OciError::Encode(e.to_string())
}

/// One tar entry: a directory (`None`) or a regular file and its bytes.
pub type TarEntry<'a> = (&'a str, Option<&'a [u8]>);

/// A tar of `entries` in the given order: directories with mode 0755,
/// files 0644, all owned by 0:0 and dated `mtime`.
pub fn tar_of<'a>(
    entries: impl IntoIterator<Item = TarEntry<'a>>,
    mtime: u64,
) -> Result<Vec<u8>, OciError> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in entries {
        let (entry, mode, bytes) = match bytes {
            None => (tar::EntryType::Directory, 0o755, &[][..]),
            Some(bytes) => (tar::EntryType::Regular, 0o644, bytes),
        };
        let mut h = header(entry, mode, bytes.len() as u64, mtime);
        builder
            .append_data(&mut h, path, bytes)
            .map_err(encode_err)?;
    }
    builder.into_inner().map_err(encode_err)
}

/// Gzip with no file name, mtime 0, "unknown" OS byte and a fixed level,
/// so the output depends on the input alone.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>, OciError> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).map_err(encode_err)?;
    encoder.finish().map_err(encode_err)
}

fn descriptor_json(d: &Descriptor) -> String {
    format!(
        r#"{{"mediaType":"{}","digest":"sha256:{}","size":{}}}"#,
        d.media_type, d.hex, d.size
    )
}

/// Builds the image of `module`, tagged `version`, every timestamp `mtime`
/// (seconds since the epoch; callers pass `SOURCE_DATE_EPOCH` or the last
/// commit's time).
///
/// The JSON is written by hand with a fixed key order (not through a map
/// whose order could depend on crate features): its bytes are hashed.
/// Every interpolated value is a constant, a hex digest, a number, the
/// checked version or an RFC 3339 date, so none needs escaping.
pub fn image(module: &[u8], version: &str, mtime: u64) -> Result<Image, OciError> {
    check_version(version)?;
    if module.len() < 8 || !module.starts_with(b"\0asm") {
        return Err(OciError::NotWasm);
    }
    if mtime > MAX_USTAR_MTIME {
        return Err(OciError::BadTimestamp(mtime));
    }
    let created = mcp_guard_control::timefmt::rfc3339_millis(mtime.saturating_mul(1000));

    let layer_tar = tar_of([(MODULE_FILE, Some(module))], mtime)?;
    let layer = gzip(&layer_tar)?;
    let layer_desc = describe(LAYER_MEDIA_TYPE, &layer);

    let config = format!(
        concat!(
            r#"{{"architecture":"wasm","os":"wasip1","created":"{created}","#,
            r#""config":{{}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff}"]}}}}"#
        ),
        created = created,
        diff = sha256_hex(&layer_tar),
    )
    .into_bytes();
    let config_desc = describe(CONFIG_MEDIA_TYPE, &config);

    let manifest = format!(
        concat!(
            r#"{{"schemaVersion":2,"mediaType":"{mt}","config":{config},"layers":[{layer}],"#,
            r#""annotations":{{"{vk}":"{vv}","org.opencontainers.image.created":"{created}","#,
            r#""org.opencontainers.image.title":"{title}","org.opencontainers.image.version":"{version}"}}}}"#
        ),
        mt = MANIFEST_MEDIA_TYPE,
        config = descriptor_json(&config_desc),
        layer = descriptor_json(&layer_desc),
        vk = VARIANT_ANNOTATION.0,
        vv = VARIANT_ANNOTATION.1,
        created = created,
        title = TITLE,
        version = version,
    )
    .into_bytes();
    let manifest_desc = describe(MANIFEST_MEDIA_TYPE, &manifest);

    let index = format!(
        concat!(
            r#"{{"schemaVersion":2,"mediaType":"{mt}","manifests":[{{"mediaType":"{mmt}","#,
            r#""digest":"sha256:{hex}","size":{size},"annotations":{{"{ref_key}":"{version}"}}}}]}}"#
        ),
        mt = INDEX_MEDIA_TYPE,
        mmt = MANIFEST_MEDIA_TYPE,
        hex = manifest_desc.hex,
        size = manifest_desc.size,
        ref_key = REF_NAME_ANNOTATION,
        version = version,
    )
    .into_bytes();

    let mut files = BTreeMap::new();
    files.insert(
        "oci-layout".to_owned(),
        format!(r#"{{"imageLayoutVersion":"{LAYOUT_VERSION}"}}"#).into_bytes(),
    );
    files.insert("index.json".to_owned(), index);
    for (desc, bytes) in [
        (&config_desc, config),
        (&layer_desc, layer),
        (&manifest_desc, manifest),
    ] {
        files.insert(format!("blobs/sha256/{}", desc.hex), bytes);
    }
    Ok(Image {
        files,
        manifest: manifest_desc,
        module_sha256: sha256_hex(module),
        mtime,
    })
}

/// The directories of the layout, as tar entries name them.
pub const LAYOUT_DIRS: [&str; 2] = ["blobs", "blobs/sha256"];

/// The layout as one tar (the "OCI archive" that `skopeo copy
/// oci-archive:…`, `crane push` and `oras` read): the directories
/// `blobs` and `blobs/sha256` and every file, sorted by path, with the
/// image's timestamp, owner 0:0 and fixed modes.
pub fn archive(image: &Image) -> Result<Vec<u8>, OciError> {
    let mut entries: Vec<TarEntry<'_>> = LAYOUT_DIRS.iter().map(|d| (*d, None)).collect();
    entries.extend(
        image
            .files
            .iter()
            .map(|(p, b)| (p.as_str(), Some(b.as_slice()))),
    );
    entries.sort_by(|a, b| a.0.cmp(b.0));
    tar_of(entries, image.mtime)
}

#[cfg(test)]
mod tests;
