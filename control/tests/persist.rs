//! The file store: versions survive restarts and `kill -9`; corrupt files
//! are reported and never served.

mod support;

use std::ffi::OsStr;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_guard_control::{BundleName, BundleStore, Commit, RejectReason, Source};
use mcp_guard_engine::signing::{self, SigningKey};
use mcp_guard_engine::Bundle;
use support::{
    bearer, blocking_request, bundle, scratch_dir, spawn_binary, tokens_json, TEAM_A_TOKEN,
};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn commit(store: &BundleStore, name: &str, rule: &str) -> u64 {
    let name = BundleName::parse(name).expect("name");
    store
        .commit(Commit {
            name: &name,
            content: bundle(name.as_str(), rule).as_bytes(),
            source: Source::Push,
            by: "test",
            signed_by: None,
            if_match: None,
        })
        .expect("stored")
        .version()
}

#[test]
fn restart_recovers_every_version() {
    let dir = scratch_dir("recover");
    let (store, rejected) = BundleStore::open(&dir, key()).expect("open");
    assert!(rejected.is_empty());
    for rule in ["a", "b", "c"] {
        commit(&store, "demo", rule);
    }
    commit(&store, "team-a-x", "z");
    let before = store
        .history(&BundleName::parse("demo").expect("name"))
        .expect("held");
    drop(store);

    let (store, rejected) = BundleStore::open(&dir, key()).expect("reopen");
    assert!(rejected.is_empty(), "{rejected:?}");
    let demo = BundleName::parse("demo").expect("name");
    let after = store.history(&demo).expect("held");
    assert_eq!(after.len(), 3);
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a.version(), b.version());
        assert_eq!(a.bytes(), b.bytes());
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.stored_at(), b.stored_at());
        assert_eq!(b.source(), Source::Push);
    }
    assert_eq!(store.len(), 2);
    // Numbering continues after the recovered versions.
    assert_eq!(commit(&store, "demo", "d"), 4);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_files_are_reported_and_skipped() {
    let dir = scratch_dir("corrupt");
    let (store, _) = BundleStore::open(&dir, key()).expect("open");
    for rule in ["a", "b", "c", "d"] {
        commit(&store, "demo", rule);
    }
    drop(store);
    let versions = dir.join("bundles/demo");
    // v2: a flipped byte (digest mismatch); v3: truncated; v4: no sidecar.
    let v2 = versions.join("0000000002.json");
    let mut bytes = fs::read(&v2).expect("read");
    bytes[5] ^= 1;
    fs::write(&v2, bytes).expect("write");
    let v3 = versions.join("0000000003.json");
    let bytes = fs::read(&v3).expect("read");
    fs::write(&v3, &bytes[..bytes.len() / 2]).expect("write");
    fs::remove_file(versions.join("0000000004.meta")).expect("remove");
    fs::write(versions.join(".tmp-0000000005.json-1"), "{\"na").expect("write");

    let (store, rejected) = BundleStore::open(&dir, key()).expect("reopen");
    let demo = BundleName::parse("demo").expect("name");
    let held: Vec<u64> = store
        .history(&demo)
        .expect("held")
        .iter()
        .map(|b| b.version())
        .collect();
    assert_eq!(held, [1]);
    let files: Vec<String> = rejected
        .iter()
        .map(|e| {
            Path::new(&e.origin)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        files,
        [
            ".tmp-0000000005.json-1",
            "0000000002.json",
            "0000000003.json",
            "0000000004.json"
        ],
        "{rejected:?}"
    );
    assert!(rejected
        .iter()
        .all(|e| matches!(e.reason, RejectReason::Corrupt(_))));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn seeding_imports_once_as_version_1() {
    let dir = scratch_dir("seed");
    let seeds = dir.join("seeds");
    fs::create_dir_all(&seeds).expect("mkdir");
    fs::write(
        seeds.join("demo.json"),
        bundle("demo", "a").replace("\"version\":1", "\"version\":12"),
    )
    .expect("write");
    let data = dir.join("data");
    let (store, _) = BundleStore::open(&data, key()).expect("open");
    assert!(store.seed_dir(&seeds).expect("seed").is_empty());
    let demo = BundleName::parse("demo").expect("name");
    assert_eq!(store.get(&demo).map(|b| b.version()), Some(1));
    commit(&store, "demo", "b");
    drop(store);
    let (store, _) = BundleStore::open(&data, key()).expect("reopen");
    assert!(store.seed_dir(&seeds).expect("seed").is_empty());
    let latest = store.get(&demo).expect("held");
    assert_eq!(latest.version(), 2, "the seed does not overwrite pushes");
    assert_eq!(
        store.get_version(&demo, 1).map(|b| b.source()),
        Some(Source::Seed)
    );
    let _ = fs::remove_dir_all(&dir);
}

/// Starts the binary on `data`, returns it and its address.
fn spawn(data: &Path, tokens: &Path) -> (Child, SocketAddr) {
    let args: [&OsStr; 6] = [
        "--jwks-refresh".as_ref(),
        "0".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--tokens".as_ref(),
        tokens.as_os_str(),
    ];
    spawn_binary(&args, Stdio::null())
}

/// One acknowledged push: version and digest from the 201.
type Acked = Vec<(u64, String)>;

#[test]
fn kill_9_during_a_burst_loses_no_acknowledged_version() {
    let dir = scratch_dir("kill9");
    let data = dir.join("data");
    let tokens = dir.join("tokens.json");
    fs::write(&tokens, tokens_json()).expect("write tokens");
    let (mut child, addr) = spawn(&data, &tokens);

    let acked: Arc<Mutex<Acked>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = {
        let acked = Arc::clone(&acked);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let auth = bearer(TEAM_A_TOKEN);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = bundle("demo", &format!("rule-{i}"));
                let Ok(reply) = blocking_request(
                    addr,
                    "PUT",
                    "/v1/bundles/demo",
                    &[("authorization", &auth)],
                    body.as_bytes(),
                ) else {
                    break;
                };
                if reply.status != 201 {
                    break;
                }
                let json: serde_json::Value = match serde_json::from_slice(&reply.body) {
                    Ok(json) => json,
                    Err(_) => break, // cut off mid-body: not acknowledged
                };
                let version = json["version"].as_u64().expect("version");
                let digest = json["digest"].as_str().expect("digest").to_owned();
                acked.lock().expect("lock").push((version, digest));
            }
        })
    };
    // A pseudo-random delay between 150 and 400 ms.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::thread::sleep(Duration::from_millis(150 + u64::from(nanos % 250)));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    stop.store(true, Ordering::Relaxed);
    pusher.join().expect("pusher thread");
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 3,
        "too few pushes before the kill: {}",
        acked.len()
    );

    let (mut child, addr) = spawn(&data, &tokens);
    let keys = blocking_request(addr, "GET", "/v1/keys", &[], b"")
        .expect("keys")
        .json();
    let key = signing::verifying_key_from_text(keys["keys"][0]["ed25519"].as_str().expect("key"))
        .expect("public key");
    let history = blocking_request(addr, "GET", "/v1/bundles/demo/versions", &[], b"")
        .expect("history")
        .json();
    let listed: Vec<(u64, String)> = history["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().expect("version"),
                v["digest"].as_str().expect("digest").to_owned(),
            )
        })
        .collect();
    for (version, digest) in &acked {
        assert!(
            listed.contains(&(*version, digest.clone())),
            "acknowledged version {version} lost; recovered {} versions",
            listed.len()
        );
        let reply = blocking_request(
            addr,
            "GET",
            &format!("/v1/bundles/demo/versions/{version}"),
            &[],
            b"",
        )
        .expect("version");
        assert_eq!(reply.status, 200);
        let bundle = Bundle::parse(&reply.body).expect("intact bundle");
        assert_eq!(bundle.version, *version);
        let signed = signing::Signed {
            name: "demo",
            version: *version,
            bytes: &reply.body,
        };
        assert!(signing::verify(&signed, reply.header("x-bundle-signature"), &[key]).is_ok());
    }
    // Versions are dense from 1: the un-acknowledged tail at most adds one.
    let top = listed.last().map_or(0, |v| v.0);
    assert!(top as usize >= acked.len() && top as usize <= acked.len() + 1);
    child.kill().expect("stop");
    let _ = child.wait();
    let _ = fs::remove_dir_all(&dir);
}
