//! The remote commands against a real control service on loopback, and
//! the key and token helpers.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use mcp_guard_control::author::TrustedSigners;
use mcp_guard_control::{BundleStore, Options, Tokens};
use serde_json::Value;

const TOKEN: &str = "cli-test-token";

fn mcp_guard(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        // The services in these tests listen on plain http (loopback).
        .env("MCP_GUARD_ALLOW_PLAIN_HTTP", "1")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("binary finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts the service in a background runtime; returns its base URL.
fn start_service() -> (String, tokio::runtime::Runtime) {
    start_service_with(None)
}

/// [`start_service`] with author keys every push must be signed by.
fn start_service_with(
    trusted_signers: Option<TrustedSigners>,
) -> (String, tokio::runtime::Runtime) {
    let hash = mcp_guard(&["hash-token"], Some(&format!("{TOKEN}\n")));
    assert_eq!(hash.status.code(), Some(0), "{}", text(&hash.stderr));
    let digest = text(&hash.stdout).trim().to_owned();
    assert_eq!(digest.len(), 64);
    let tokens = format!(r#"{{"tokens":[{{"id":"cli","sha256":"{digest}","bundles":["demo"]}}]}}"#);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let options = Options {
        tokens: Tokens::parse(tokens.as_bytes()).expect("tokens"),
        jwks_refresh: None,
        trusted_signers: trusted_signers.map(std::sync::Arc::new),
        ..Options::default()
    };
    runtime.spawn(mcp_guard_control::serve_with(
        listener,
        std::sync::Arc::new(BundleStore::new()),
        options,
        std::future::pending(),
    ));
    (format!("http://{addr}"), runtime)
}

#[test]
fn push_get_history_rollback() {
    let (server, _runtime) = start_service();
    let dir = std::env::temp_dir().join(format!("mcp-guard-cli-remote-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write");
    let token_file = token_file.to_string_lossy().into_owned();
    let write_bundle = |file: &str, rule: &str| {
        let path = dir.join(file);
        std::fs::write(
            &path,
            format!(
                r#"{{"name":"demo","version":1,"rules":[{{"id":"{rule}","effect":"allow"}}]}}"#
            ),
        )
        .expect("write");
        path.to_string_lossy().into_owned()
    };
    let a = write_bundle("a.json", "a");
    let b = write_bundle("b.json", "b");

    // A first push without --create is refused: the name is new.
    let typo = mcp_guard(
        &["push", "--server", &server, "--token-file", &token_file, &a],
        None,
    );
    assert_eq!(typo.status.code(), Some(1), "{}", text(&typo.stderr));
    assert!(
        text(&typo.stderr).contains("has no bundle named `demo`")
            && text(&typo.stderr).contains("--create"),
        "{}",
        text(&typo.stderr)
    );
    let nothing = mcp_guard(&["get", "--server", &server, "demo"], None);
    assert_eq!(nothing.status.code(), Some(1), "nothing was stored");
    let conflict = mcp_guard(
        &[
            "push",
            "--server",
            &server,
            "--token-file",
            &token_file,
            &a,
            "--create",
            "--if-match",
            "x",
        ],
        None,
    );
    assert_eq!(conflict.status.code(), Some(2));

    let pushed = mcp_guard(
        &[
            "push",
            "--server",
            &server,
            "--token-file",
            &token_file,
            &a,
            "--create",
        ],
        None,
    );
    assert_eq!(pushed.status.code(), Some(0), "{}", text(&pushed.stderr));
    let created: Value = serde_json::from_slice(&pushed.stdout).expect("json");
    assert_eq!(created["version"], 1);
    let etag = created["etag"]
        .as_str()
        .expect("etag")
        .trim_matches('"')
        .to_owned();

    // --if-match with the current tag (given bare) succeeds, then is stale.
    let args = [
        "push",
        "--server",
        &server,
        "--token-file",
        &token_file,
        &b,
        "--if-match",
        &etag,
    ];
    assert_eq!(mcp_guard(&args, None).status.code(), Some(0));
    let stale = mcp_guard(&args, None);
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        text(&stale.stderr).contains("412"),
        "{}",
        text(&stale.stderr)
    );

    let invalid = dir.join("bad.json");
    std::fs::write(
        &invalid,
        r#"{"name":"demo","version":1,"rules":[{"id":"","effect":"allow"}]}"#,
    )
    .expect("write");
    let refused = mcp_guard(
        &[
            "push",
            "--server",
            &server,
            "--token-file",
            &token_file,
            &invalid.to_string_lossy(),
        ],
        None,
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("$.rules[0].id: must not be empty"),
        "{}",
        text(&refused.stderr)
    );

    // Files that are not bundles say what they are.
    for (content, expected) in [
        (
            "name: demo\n",
            "not JSON (expected ident at line 1 column 2)",
        ),
        ("[1, 2]", "a JSON object is expected"),
        (r#"{"name": 7}"#, "`name` must be a non-empty string"),
        (r#"{"version": 1}"#, "no \"name\" field"),
    ] {
        std::fs::write(&invalid, content).expect("write");
        let refused = mcp_guard(
            &[
                "push",
                "--server",
                &server,
                "--token-file",
                &token_file,
                &invalid.to_string_lossy(),
            ],
            None,
        );
        assert_eq!(refused.status.code(), Some(1), "{content}");
        assert!(
            text(&refused.stderr).contains(expected),
            "{content}: {}",
            text(&refused.stderr)
        );
    }

    let rolled = mcp_guard(
        &[
            "rollback",
            "--server",
            &server,
            "--token-file",
            &token_file,
            "demo",
            "--to",
            "1",
        ],
        None,
    );
    assert_eq!(rolled.status.code(), Some(0), "{}", text(&rolled.stderr));

    let latest = mcp_guard(&["get", "--server", &server, "demo"], None);
    let latest: Value = serde_json::from_slice(&latest.stdout).expect("bundle");
    assert_eq!(
        (
            latest["version"].as_u64(),
            latest["rules"][0]["id"].as_str()
        ),
        (Some(3), Some("a"))
    );
    let v2 = mcp_guard(
        &["get", "--server", &server, "demo", "--version", "2"],
        None,
    );
    let v2: Value = serde_json::from_slice(&v2.stdout).expect("bundle");
    assert_eq!(v2["rules"][0]["id"], "b");

    let history = mcp_guard(
        &["history", "--server", &server, "demo", "-o", "json"],
        None,
    );
    let history: Value = serde_json::from_slice(&history.stdout).expect("history");
    let sources: Vec<&str> = history["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["source"].as_str())
        .collect();
    assert_eq!(sources, ["push", "push", "rollback"]);

    // diff between stored versions: rule a replaced by rule b.
    let diff = mcp_guard(&["diff", "--server", &server, "demo", "1", "2"], None);
    assert_eq!(diff.status.code(), Some(1), "{}", text(&diff.stderr));
    let table = text(&diff.stdout);
    assert!(
        table.contains("-  rules[id=a]")
            && table.contains("+  rules[id=b]")
            && table.contains("changes: 1 added, 1 removed"),
        "{table}"
    );
    let same = mcp_guard(
        &["diff", "--server", &server, "demo", "1", "3", "-o", "json"],
        None,
    );
    assert_eq!(same.status.code(), Some(1), "the version differs");
    let same: Value = serde_json::from_slice(&same.stdout).expect("json");
    assert_eq!(same[0]["path"], "version", "{same}");
    assert_eq!(same.as_array().map(Vec::len), Some(1), "{same}");
    let absent = mcp_guard(&["diff", "--server", &server, "demo", "1", "9"], None);
    assert_eq!(absent.status.code(), Some(2));
    assert!(
        text(&absent.stderr).contains("demo v9"),
        "{}",
        text(&absent.stderr)
    );

    let missing = mcp_guard(&["get", "--server", &server, "nope"], None);
    assert_eq!(missing.status.code(), Some(1));
    let unreachable = mcp_guard(&["get", "--server", "http://127.0.0.1:9", "demo"], None);
    assert_eq!(unreachable.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keygen_prints_a_usable_key() {
    let out = mcp_guard(&["keygen"], None);
    assert_eq!(out.status.code(), Some(0));
    let key: Value = serde_json::from_slice(&out.stdout).expect("json");
    let seed =
        mcp_guard_engine::signing::signing_key_from_text(key["seed"].as_str().expect("seed"))
            .expect("seed parses");
    assert_eq!(
        key["ed25519"],
        mcp_guard_engine::signing::public_key_base64(&seed.verifying_key())
    );
    let empty = mcp_guard(&["hash-token"], Some(""));
    assert_eq!(empty.status.code(), Some(2));
}

/// The whole offline-signing path against the real service: a key made by
/// `keygen`, the bundle built and signed by the CLI, pushed with its
/// `.sig`; unsigned, untrusted and stale pushes are refused and nothing of
/// them is stored.
#[test]
fn signed_pushes_against_a_service_with_trusted_signers() {
    let dir = std::env::temp_dir().join(format!("mcp-guard-cli-signed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let keygen = |file: &str| -> Value {
        let out = mcp_guard(&["keygen"], None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        std::fs::write(dir.join(file), &out.stdout).expect("write key");
        serde_json::from_slice(&out.stdout).expect("keygen json")
    };
    let team = keygen("team.key");
    keygen("stranger.key");
    let signers = serde_json::json!({"signers": [{"key": team["ed25519"], "bundles": ["demo"]}]});
    let signers = TrustedSigners::parse(signers.to_string().as_bytes()).expect("signers");
    let (server, _runtime) = start_service_with(Some(signers));
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).expect("write");
    let token_file = path("token");
    std::fs::write(
        dir.join("src.json"),
        r#"{"name":"demo","version":1,"rules":[{"id":"a","effect":"allow"}]}"#,
    )
    .expect("write");
    let built = mcp_guard(
        &["build", &path("src.json"), "-o", &path("demo.json")],
        None,
    );
    assert_eq!(built.status.code(), Some(0), "{}", text(&built.stderr));
    let bundle = path("demo.json");
    let push = |extra: &[&str]| {
        let mut args = vec![
            "push",
            "--server",
            &server,
            "--token-file",
            &token_file,
            "--create",
        ];
        args.extend_from_slice(extra);
        args.push(&bundle);
        mcp_guard(&args, None)
    };
    let stored = || {
        let out = mcp_guard(
            &["history", "--server", &server, "demo", "-o", "json"],
            None,
        );
        (out.status.code() == Some(0)).then(|| text(&out.stdout))
    };

    // Unsigned: the service refuses, and says why.
    let unsigned = push(&[]);
    assert_ne!(unsigned.status.code(), Some(0));
    assert!(
        text(&unsigned.stderr).contains("author_signature_missing"),
        "{}",
        text(&unsigned.stderr)
    );
    // Signed by a key the service does not trust for `demo`.
    let signed = mcp_guard(
        &[
            "sign",
            "--key",
            &path("stranger.key"),
            &bundle,
            "-o",
            &path("stranger.sig"),
        ],
        None,
    );
    assert_eq!(signed.status.code(), Some(0), "{}", text(&signed.stderr));
    let untrusted = push(&["--signature", &path("stranger.sig")]);
    assert_ne!(untrusted.status.code(), Some(0));
    assert!(
        text(&untrusted.stderr).contains("author_signature_untrusted"),
        "{}",
        text(&untrusted.stderr)
    );
    assert!(stored().is_none(), "nothing stored yet");

    // Signed by the team: `<bundle>.sig` is picked up, the answer and the
    // history name the key.
    let signed = mcp_guard(&["sign", "--key", &path("team.key"), &bundle], None);
    assert_eq!(signed.status.code(), Some(0), "{}", text(&signed.stderr));
    let ok = push(&[]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    let answer: Value = serde_json::from_slice(&ok.stdout).expect("json");
    assert_eq!(answer["signed_by"], team["id"], "{answer}");
    let history: Value = serde_json::from_str(&stored().expect("history")).expect("json");
    assert_eq!(history["versions"][0]["signed_by"], team["id"], "{history}");

    // Edited after signing: refused before anything is sent.
    std::fs::write(
        &bundle,
        r#"{"name":"demo","version":1,"rules":[{"id":"a","effect":"allow"},{"id":"b","effect":"allow"}]}"#,
    )
    .expect("write");
    let stale = push(&[]);
    assert_ne!(stale.status.code(), Some(0));
    assert!(
        text(&stale.stderr).contains("stale signature"),
        "{}",
        text(&stale.stderr)
    );
    let history: Value = serde_json::from_str(&stored().expect("history")).expect("json");
    assert_eq!(
        history["versions"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
