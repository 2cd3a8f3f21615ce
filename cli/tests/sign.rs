//! `fmt`, `build`, `sign` offline, and `push` sending the author
//! signature (to a loopback server that records what it receives; the
//! control service's verification is tested on its side).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;

use mcp_guard_engine::author_signing::{author_verify, SignatureFile, AUTHOR_SIGNATURE_HEADER};
use serde_json::Value;

fn mcp_guard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .args(args)
        .env("MCP_GUARD_ALLOW_PLAIN_HTTP", "1")
        .env("MCP_GUARD_TOKEN", "push-token")
        .env_remove("MCP_GUARD_TOKEN_FILE")
        .output()
        .expect("binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-guard-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

const UGLY: &str = "{\"name\":\"demo\", \"version\":2,\n\"rules\":[{\"id\":\"b\",\"effect\":\"allow\"} ,{\"id\":\"a\",\"effect\":\"deny\"}]}";

#[test]
fn fmt_checks_writes_and_locates_errors() {
    let dir = scratch("fmt");
    let ugly = dir.join("ugly.json");
    let tidy = dir.join("tidy.json");
    let broken = dir.join("broken.json");
    std::fs::write(&ugly, UGLY).expect("write");
    let printed = mcp_guard(&["fmt", s(&ugly)]);
    assert_eq!(printed.status.code(), Some(0));
    let canonical = text(&printed.stdout);
    assert!(
        canonical.starts_with("{\n  \"name\": \"demo\",\n  \"version\": 2,\n  \"rules\": [\n    {\n      \"id\": \"b\","),
        "key order kept: {canonical}"
    );
    assert!(canonical.ends_with("}\n") && !canonical.ends_with("\n\n"));
    std::fs::write(&tidy, &canonical).expect("write");

    let check = mcp_guard(&["fmt", "--check", s(&ugly), s(&tidy)]);
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(text(&check.stdout), format!("{}\n", ugly.display()));
    assert_eq!(
        std::fs::read_to_string(&ugly).expect("read"),
        UGLY,
        "--check writes nothing"
    );

    let write = mcp_guard(&["fmt", "-w", s(&ugly), s(&tidy)]);
    assert_eq!(write.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&ugly).expect("read"), canonical);
    assert_eq!(
        mcp_guard(&["fmt", "--check", s(&ugly)]).status.code(),
        Some(0)
    );

    std::fs::write(&broken, "{\n  \"name\": \"demo\",\n  \"rules\": [,]\n}\n").expect("write");
    let bad = mcp_guard(&["fmt", "--check", s(&broken)]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).starts_with(&format!("{}:3:13: not JSON: ", broken.display())),
        "{}",
        text(&bad.stderr)
    );
    let both = mcp_guard(&["fmt", "--check", "-w", s(&ugly)]);
    assert_eq!(
        both.status.code(),
        Some(2),
        "--check and -w exclude each other"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn build_validates_writes_canonical_and_guards_the_source() {
    let dir = scratch("build");
    let src = dir.join("src.json");
    let out = dir.join("out.json");
    std::fs::write(&src, UGLY).expect("write");
    let built = mcp_guard(&["build", s(&src), "-o", s(&out)]);
    assert_eq!(built.status.code(), Some(0), "{}", text(&built.stderr));
    let bytes = std::fs::read(&out).expect("built");
    let digest = mcp_guard_engine::author_signing::sha256_hex(&bytes);
    assert_eq!(
        text(&built.stdout),
        format!("built demo v2 -> {} sha256 {digest}\n", out.display())
    );
    assert_eq!(
        mcp_guard(&["fmt", "--check", s(&out)]).status.code(),
        Some(0)
    );

    // The source is not overwritten unless asked for (also via `./`).
    let same = dir.join(".").join("src.json");
    let refused = mcp_guard(&["build", s(&src), "-o", s(&same)]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("--in-place"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(std::fs::read_to_string(&src).expect("read"), UGLY);
    let in_place = mcp_guard(&["build", s(&src), "-o", s(&src), "--in-place"]);
    assert_eq!(
        in_place.status.code(),
        Some(0),
        "{}",
        text(&in_place.stderr)
    );
    assert_eq!(std::fs::read(&src).expect("read"), bytes);

    // Every issue, located, exit 1, nothing written.
    let invalid = dir.join("invalid.json");
    std::fs::write(
        &invalid,
        "{\"name\": \"demo\", \"version\": 1,\n \"rules\": [{\"id\": \"\", \"effect\": \"maybe\"}, {\"id\": \"x\"}]}",
    )
    .expect("write");
    let none = dir.join("none.json");
    let rejected = mcp_guard(&["build", s(&invalid), "-o", s(&none)]);
    assert_eq!(rejected.status.code(), Some(1));
    let err = text(&rejected.stderr);
    assert!(err.contains(&format!("{}:2:", invalid.display())), "{err}");
    assert!(err.lines().count() >= 2, "every issue: {err}");
    assert!(!none.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A one-shot HTTP server on loopback: records the request head and body,
/// answers `status` with `body`.
fn recorder(status: u16, body: &'static str) -> (String, mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            head.push_str(&line);
        }
        let mut received = vec![0; length];
        let _ = reader.read_exact(&mut received);
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tx.send((head, received));
    });
    (url, rx)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn sign_then_push_sends_the_signature_and_refuses_a_stale_one() {
    let dir = scratch("sign");
    let key = dir.join("team.key");
    let keygen = mcp_guard(&["keygen"]);
    std::fs::write(&key, &keygen.stdout).expect("key");
    let key_json: Value = serde_json::from_slice(&keygen.stdout).expect("json");
    let bundle = dir.join("demo.json");
    let src = dir.join("src.json");
    std::fs::write(&src, UGLY).expect("write");
    assert_eq!(
        mcp_guard(&["build", s(&src), "-o", s(&bundle)])
            .status
            .code(),
        Some(0)
    );

    let signed = mcp_guard(&["sign", "--key", s(&key), s(&bundle)]);
    assert_eq!(signed.status.code(), Some(0), "{}", text(&signed.stderr));
    let id = key_json["id"].as_str().expect("id");
    assert!(
        text(&signed.stdout).contains(&format!("with key {id} -> ")),
        "{}",
        text(&signed.stdout)
    );
    assert!(!text(&signed.stdout).contains(key_json["seed"].as_str().expect("seed")));
    let sig_path = PathBuf::from(format!("{}.sig", bundle.display()));
    let sig: SignatureFile =
        serde_json::from_slice(&std::fs::read(&sig_path).expect("sig")).expect("signature file");
    let bytes = std::fs::read(&bundle).expect("bundle");
    assert!(sig.covers("demo", &bytes));
    let public = mcp_guard_engine::signing::verifying_key_from_text(
        key_json["ed25519"].as_str().expect("public"),
    )
    .expect("public key");
    assert_eq!(
        author_verify("demo", &bytes, Some(&sig.signature), &[public]).expect("verifies"),
        id
    );

    // A bare seed signs the same; a public key alone cannot.
    let seed_file = dir.join("seed");
    std::fs::write(&seed_file, key_json["seed"].as_str().expect("seed")).expect("seed");
    let other = dir.join("other.sig");
    let by_seed = mcp_guard(&["sign", "--key", s(&seed_file), s(&bundle), "-o", s(&other)]);
    assert_eq!(by_seed.status.code(), Some(0), "{}", text(&by_seed.stderr));
    let public_only = dir.join("public.json");
    std::fs::write(
        &public_only,
        format!("{{\"ed25519\":{}}}", key_json["ed25519"]),
    )
    .expect("w");
    let refused = mcp_guard(&[
        "sign",
        "--key",
        s(&public_only),
        s(&bundle),
        "-o",
        s(&other),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("no \"seed\""),
        "{}",
        text(&refused.stderr)
    );

    // push finds BUNDLE.json.sig and sends it; the answer's signer shows.
    let answer =
        r#"{"name":"demo","version":3,"etag":"\"e3\"","digest":"sha256:x","signed_by":"KEYID"}"#;
    let (server, rx) = recorder(201, answer);
    let pushed = mcp_guard(&["push", "--server", &server, s(&bundle)]);
    assert_eq!(pushed.status.code(), Some(0), "{}", text(&pushed.stderr));
    assert!(text(&pushed.stdout).contains("\"signed_by\":\"KEYID\""));
    let (head, body) = rx.recv().expect("request recorded");
    assert!(head.starts_with("PUT /v1/bundles/demo HTTP/1.1"), "{head}");
    assert_eq!(
        header(&head, AUTHOR_SIGNATURE_HEADER),
        Some(sig.signature.as_str())
    );
    assert_eq!(header(&head, "authorization"), Some("Bearer push-token"));
    assert_eq!(body, bytes, "the exact signed bytes are pushed");

    // --signature names another file explicitly.
    let (server, rx) = recorder(201, answer);
    let explicit = mcp_guard(&[
        "push",
        "--server",
        &server,
        "--signature",
        s(&other),
        s(&bundle),
    ]);
    assert_eq!(
        explicit.status.code(),
        Some(0),
        "{}",
        text(&explicit.stderr)
    );
    let (head, _) = rx.recv().expect("request recorded");
    assert!(header(&head, AUTHOR_SIGNATURE_HEADER).is_some_and(|v| v.contains(id)));

    // The bundle changed after signing: refused before anything is sent.
    std::fs::write(&bundle, UGLY).expect("edit");
    let (server, rx) = recorder(201, answer);
    let stale = mcp_guard(&["push", "--server", &server, s(&bundle)]);
    assert_eq!(stale.status.code(), Some(2));
    assert!(
        text(&stale.stderr).contains("stale signature")
            && text(&stale.stderr).contains("mcp-guard sign"),
        "{}",
        text(&stale.stderr)
    );
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "nothing sent"
    );

    // A signature for another bundle name is stale too.
    std::fs::write(&bundle, &bytes).expect("restore");
    let renamed = dir.join("renamed.json");
    std::fs::write(&renamed, text(&bytes).replace("\"demo\"", "\"prod\"")).expect("w");
    let (server, _rx) = recorder(201, answer);
    let wrong = mcp_guard(&[
        "push",
        "--server",
        &server,
        "--signature",
        s(&sig_path),
        s(&renamed),
    ]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        text(&wrong.stderr).contains("signs bundle `demo`"),
        "{}",
        text(&wrong.stderr)
    );

    // The service refuses an unsigned push: the reason and the way out.
    std::fs::remove_file(&sig_path).expect("rm");
    let (server, rx) = recorder(
        403,
        r#"{"error":"forbidden","reason":"author_signature_missing"}"#,
    );
    let unsigned = mcp_guard(&["push", "--server", &server, s(&bundle)]);
    assert_eq!(unsigned.status.code(), Some(1));
    let (head, _) = rx.recv().expect("request recorded");
    assert!(header(&head, AUTHOR_SIGNATURE_HEADER).is_none(), "{head}");
    let err = text(&unsigned.stderr);
    assert!(
        err.contains("HTTP 403 forbidden (author_signature_missing)")
            && err.contains("mcp-guard sign"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
