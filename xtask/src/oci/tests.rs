//! The image as a puller sees it: read back through JSON, digests, gzip
//! and tar, the way Istio's fetcher walks it (index → manifest → last
//! layer → gunzip → untar → `plugin.wasm`), never through the writer's
//! own fields.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

use super::*;

/// A small but valid-looking module: the wasm header and some bytes.
fn module(tail: &[u8]) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    m.extend_from_slice(tail);
    m
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The blob a descriptor points at, after checking its size and that the
/// layout stores it under its own digest.
fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, desc: &Value) -> &'a [u8] {
    let digest = desc["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let bytes = &files[&format!("blobs/sha256/{hex}")];
    assert_eq!(desc["size"].as_u64().unwrap(), bytes.len() as u64);
    assert_eq!(sha256_hex(bytes), hex);
    bytes
}

/// Entries of a tar: (name, type, mode, uid, gid, mtime, user, group, bytes).
type Entry = (
    String,
    tar::EntryType,
    u32,
    u64,
    u64,
    u64,
    String,
    String,
    Vec<u8>,
);

fn entries(tar_bytes: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                h.username().unwrap().unwrap_or("").to_owned(),
                h.groupname().unwrap().unwrap_or("").to_owned(),
                bytes,
            )
        })
        .collect()
}

/// What Istio does with the image: the module it would load and the
/// digest it compares `sha256` with.
fn pull(files: &BTreeMap<String, Vec<u8>>, tag: &str) -> (Vec<u8>, String) {
    let index = json(&files["index.json"]);
    let found: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["annotations"][REF_NAME_ANNOTATION] == tag)
        .collect();
    assert_eq!(found.len(), 1, "one manifest tagged {tag}");
    let manifest_bytes = blob(files, found[0]);
    let manifest = json(manifest_bytes);
    let layers = manifest["layers"].as_array().unwrap();
    let last = layers.last().unwrap();
    assert_eq!(last["mediaType"], LAYER_MEDIA_TYPE);
    let mut layer_tar = Vec::new();
    flate2::read::GzDecoder::new(blob(files, last))
        .read_to_end(&mut layer_tar)
        .unwrap();
    let wasm = entries(&layer_tar)
        .into_iter()
        .find(|e| e.0.rsplit('/').next() == Some(MODULE_FILE))
        .unwrap()
        .8;
    (wasm, sha256_hex(manifest_bytes))
}

#[test]
fn the_layout_is_one_compat_image_istio_loads() {
    let m = module(b"the filter");
    let image = image(&m, "0.1.0", 1_700_000_000).unwrap();
    let f = &image.files;

    assert_eq!(json(&f["oci-layout"])["imageLayoutVersion"], "1.0.0");
    let index = json(&f["index.json"]);
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], INDEX_MEDIA_TYPE);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(
        manifests[0]["digest"],
        format!("sha256:{}", image.manifest.hex)
    );

    let manifest = json(blob(f, &manifests[0]));
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(
        manifest["annotations"]["module.wasm.image/variant"],
        "compat"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.version"],
        "0.1.0"
    );
    assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "exactly one layer");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    // The config names the layer's uncompressed digest (diff_id).
    let config = json(blob(f, &manifest["config"]));
    let mut layer_tar = Vec::new();
    flate2::read::GzDecoder::new(blob(f, &layers[0]))
        .read_to_end(&mut layer_tar)
        .unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([format!("sha256:{}", sha256_hex(&layer_tar))])
    );
    assert_eq!(config["created"], "2023-11-14T22:13:20.000Z");

    // The layer holds exactly plugin.wasm, byte for byte the module.
    let layer_entries = entries(&layer_tar);
    assert_eq!(layer_entries.len(), 1);
    let e = &layer_entries[0];
    assert_eq!(
        (e.0.as_str(), e.1, e.2, e.3, e.4, e.5),
        (
            "plugin.wasm",
            tar::EntryType::Regular,
            0o644,
            0,
            0,
            1_700_000_000
        )
    );
    assert_eq!(e.8, m);

    // Every file is accounted for: two JSON files and three blobs, each
    // stored under the SHA-256 of its content.
    assert_eq!(f.len(), 5);
    for (path, bytes) in f {
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            assert_eq!(hex, sha256_hex(bytes), "{path}");
        } else {
            assert!(path == "oci-layout" || path == "index.json", "{path}");
        }
    }

    let (wasm, digest) = pull(f, "0.1.0");
    assert_eq!(wasm, m);
    assert_eq!(digest, image.manifest.hex);
    assert_eq!(image.module_sha256, sha256_hex(&m));
}

#[test]
fn the_same_module_gives_the_same_bytes() {
    let m = module(&[7u8; 70_000]);
    let a = image(&m, "1.2.3", 1_600_000_000).unwrap();
    let b = image(&m.clone(), "1.2.3", 1_600_000_000).unwrap();
    assert_eq!(a, b);
    assert_eq!(archive(&a).unwrap(), archive(&b).unwrap());

    // ... and anything that changes the module, tag or time changes the
    // digest operators pin (so a stale pin fails closed in Istio).
    let other = image(&module(&[8u8; 70_000]), "1.2.3", 1_600_000_000).unwrap();
    let retagged = image(&m, "1.2.4", 1_600_000_000).unwrap();
    let later = image(&m, "1.2.3", 1_600_000_001).unwrap();
    for changed in [&other, &retagged, &later] {
        assert_ne!(changed.manifest.hex, a.manifest.hex);
    }
    // The module bytes are hashed as is, whatever the tag and time.
    assert_eq!(retagged.module_sha256, a.module_sha256);
}

#[test]
fn the_archive_holds_exactly_the_layout_with_fixed_metadata() {
    let m = module(b"x");
    let image = image(&m, "0.1.0", 1_234_567_890).unwrap();
    let tar_bytes = archive(&image).unwrap();
    assert_eq!(tar_bytes.len() % 512, 0);
    let got = entries(&tar_bytes);

    let mut want: Vec<String> = LAYOUT_DIRS.iter().map(|d| d.to_string()).collect();
    want.extend(image.files.keys().cloned());
    want.sort();
    let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, want);
    assert_eq!(names[0], "blobs");
    assert_eq!(names[names.len() - 1], "oci-layout");

    for (name, kind, mode, uid, gid, mtime, user, group, bytes) in &got {
        assert_eq!((*uid, *gid, *mtime), (0, 0, 1_234_567_890), "{name}");
        assert_eq!((user.as_str(), group.as_str()), ("", ""), "{name}");
        match image.files.get(name) {
            Some(content) => {
                assert_eq!(*kind, tar::EntryType::Regular, "{name}");
                assert_eq!(*mode, 0o644, "{name}");
                assert_eq!(bytes, content, "{name}");
            }
            None => {
                assert_eq!(*kind, tar::EntryType::Directory, "{name}");
                assert_eq!(*mode, 0o755, "{name}");
            }
        }
    }

    // Unpacked, the archive is the layout, and Istio reads the module.
    let unpacked: BTreeMap<String, Vec<u8>> = got
        .into_iter()
        .filter(|e| e.1 == tar::EntryType::Regular)
        .map(|e| (e.0, e.8))
        .collect();
    assert_eq!(unpacked, image.files);
    assert_eq!(pull(&unpacked, "0.1.0").0, m);
}

#[test]
fn the_gzip_layer_carries_no_name_or_time() {
    let image = image(&module(b"y"), "0.1.0", 1_700_000_000).unwrap();
    let manifest = json(&image.files[&format!("blobs/sha256/{}", image.manifest.hex)]);
    let layer = blob(&image.files, &manifest["layers"][0]);
    // RFC 1952: magic, method 8, no flags (so no FNAME), MTIME 0, OS 255.
    assert_eq!(&layer[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&layer[4..8], &[0, 0, 0, 0]);
    assert_eq!(layer[9], 255);
}

#[test]
fn refuses_what_istio_or_a_registry_would_refuse() {
    let m = module(b"z");
    for bad in [
        "",
        "-1",
        ".1",
        "1/2",
        "../x",
        "v1 ",
        "v1\"",
        "v1\n",
        "ü",
        &"a".repeat(129),
    ] {
        assert_eq!(
            image(&m, bad, 0),
            Err(OciError::BadVersion(bad.to_owned())),
            "{bad:?}"
        );
    }
    for good in ["0.1.0", "_x", "v1.0.0-rc.1", &"a".repeat(128)] {
        assert!(image(&m, good, 0).is_ok(), "{good:?}");
    }
    // Not a wasm module: an ELF, a text file, an empty or truncated file.
    for bad in [&b"\x7fELF\x02\x01\x01\0"[..], b"hello world", b"", b"\0asm"] {
        assert_eq!(image(bad, "1", 0), Err(OciError::NotWasm));
    }
    assert_eq!(
        image(&m, "1", 0o100_000_000_000),
        Err(OciError::BadTimestamp(0o100_000_000_000))
    );
    assert!(image(&m, "1", 0o77_777_777_777).is_ok());
}

/// With `MCP_GUARD_WASM` set (CI sets it to the built filter), the real
/// module packages, reads back unchanged and packages reproducibly.
#[test]
fn the_real_filter_packages() {
    let Ok(path) = std::env::var("MCP_GUARD_WASM") else {
        eprintln!("MCP_GUARD_WASM not set; skipping the real-module check");
        return;
    };
    let m = std::fs::read(&path).unwrap();
    let a = image(&m, "0.1.0", 1_700_000_000).unwrap();
    let b = image(&m, "0.1.0", 1_700_000_000).unwrap();
    assert_eq!(archive(&a).unwrap(), archive(&b).unwrap());
    let (wasm, digest) = pull(&a.files, "0.1.0");
    assert_eq!(wasm, m);
    assert_eq!(digest, a.manifest.hex);
}
