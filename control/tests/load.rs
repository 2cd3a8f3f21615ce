//! Loading a bundle directory, in the library and through the binary.

mod support;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_guard_control::{BundleName, BundleStore, RejectReason};
use support::{get, scratch_dir, spawn_binary, Server};

const GOOD: &str = r#"{"name":"good","version":1,"rules":[{"id":"all","effect":"allow"}]}"#;

/// A directory with one good bundle and one of each way to be rejected.
fn fill(dir: &Path) {
    let write = |file: &str, text: &str| fs::write(dir.join(file), text).expect("write");
    write("good.json", GOOD);
    // Unknown field: the engine's strict parse names it.
    write("typo.json", r#"{"name":"typo","version":1,"rulez":[]}"#);
    // Parses, but the engine's checks fail.
    write(
        "dupe.json",
        r#"{"name":"dupe","version":1,"rules":[
        {"id":"a","effect":"allow"},{"id":"a","effect":"deny"}]}"#,
    );
    write("mismatch.json", r#"{"name":"other","version":1}"#);
    write("bad name.json", r#"{"name":"bad name","version":1}"#);
    write("notes.txt", "not a bundle");
    fs::create_dir_all(dir.join("nested.json")).expect("mkdir");
}

#[tokio::test]
async fn invalid_files_are_skipped_with_their_reason() {
    let dir = scratch_dir("skipped");
    fill(&dir);
    let load = BundleStore::load_dir(&dir).expect("directory readable");

    let names: Vec<String> = load
        .store
        .list()
        .iter()
        .map(|b| b.name().to_owned())
        .collect();
    assert_eq!(names, ["good"]);

    let rejected: Vec<(String, &RejectReason)> = load
        .rejected
        .iter()
        .map(|e| {
            let file = Path::new(&e.origin).file_name().expect("file name");
            (file.to_string_lossy().into_owned(), &e.reason)
        })
        .collect();
    let files: Vec<&str> = rejected.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        files,
        ["bad name.json", "dupe.json", "mismatch.json", "typo.json"]
    );
    assert!(matches!(rejected[0].1, RejectReason::BadName(_)));
    assert!(matches!(rejected[1].1, RejectReason::Invalid(_)));
    assert!(matches!(rejected[2].1, RejectReason::NameMismatch { .. }));
    assert!(matches!(rejected[3].1, RejectReason::Invalid(_)));
    // The reasons carry the engine's findings, located by JSON path.
    let typo = load.rejected[3].to_string();
    assert!(
        typo.contains("typo.json") && typo.contains("rulez"),
        "{typo}"
    );
    let dupe = load.rejected[1].to_string();
    assert!(
        dupe.contains("$.rules[1].id") && dupe.contains("duplicate"),
        "{dupe}"
    );

    // Rejected bundles are never served.
    let server = Server::start(load.store).await;
    assert_eq!(
        get(server.addr, "/v1/bundles/good", &[]).await.body,
        GOOD.as_bytes()
    );
    for name in ["typo", "dupe", "other", "mismatch"] {
        let path = format!("/v1/bundles/{name}");
        assert_eq!(get(server.addr, &path, &[]).await.status, 404, "{name}");
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn missing_directory_is_an_error() {
    let dir = scratch_dir("missing").join("absent");
    let err = BundleStore::load_dir(&dir).expect_err("no such directory");
    assert!(err.to_string().contains("absent"), "{err}");
}

#[test]
fn lookups_take_checked_names() {
    let store = BundleStore::from_bundles([("good", GOOD)]).expect("valid");
    let name = BundleName::parse("good").expect("valid name");
    assert_eq!(store.get(&name).map(|b| b.version()), Some(1));
}

#[tokio::test]
async fn binary_logs_each_bundle_and_stops_on_sigterm() {
    let dir = scratch_dir("binary");
    fill(&dir);
    let (mut child, addr) = spawn_binary(
        &[std::ffi::OsStr::new("--bundles"), dir.as_os_str()],
        Stdio::piped(),
    );

    let reply = get(addr, "/v1/bundles/good", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-bundle-version"), Some("1"));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "binary did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status:?}");

    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    // One JSON object per line.
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let with_msg = |msg: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|l| l["message"] == msg).collect()
    };
    let loaded = with_msg("loaded bundle");
    assert_eq!(loaded.len(), 1, "{stderr}");
    assert_eq!(loaded[0]["bundle"], "good");
    assert_eq!(loaded[0]["version"], 1);
    let skipped = with_msg("skipped file");
    assert_eq!(skipped.len(), 4, "{stderr}");
    assert!(
        skipped.iter().any(|l| {
            l["file"].as_str().is_some_and(|f| f.ends_with("typo.json"))
                && l["reason"].as_str().is_some_and(|r| r.contains("rulez"))
        }),
        "{stderr}"
    );
    assert_eq!(with_msg("signing key").len(), 1, "{stderr}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn binary_rejects_unknown_flags() {
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-guard-control"))
        .arg("--bundle")
        .output()
        .expect("run binary");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--bundles"));
}
