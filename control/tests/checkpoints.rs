//! Decision-trail checkpoints over HTTP, against the binary: countersigned
//! with the data directory's checkpoint key, kept across a `kill -9`
//! restart, conflicts refused and kept, bounded input refused.

mod support;

use std::ffi::OsStr;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};

use mcp_guard_engine::audit::checkpoint::Countersigned;
use mcp_guard_engine::signing;
use support::{blocking_request, scratch_dir, spawn_binary};

fn spawn(data: &Path) -> (Child, SocketAddr) {
    let args: [&OsStr; 4] = [
        "--jwks-refresh".as_ref(),
        "0".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
    ];
    spawn_binary(&args, Stdio::null())
}

fn post(addr: SocketAddr, body: &str) -> support::Reply {
    blocking_request(
        addr,
        "POST",
        "/v1/checkpoints",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .expect("reply")
}

fn get(addr: SocketAddr, path: &str) -> support::Reply {
    blocking_request(addr, "GET", path, &[], b"").expect("reply")
}

fn body(chain: &str, seq: u64, fill: char) -> String {
    format!(
        "{{\"chain\":\"{chain}\",\"seq\":{seq},\"hash\":\"{}\"}}",
        fill.to_string().repeat(64)
    )
}

#[test]
fn countersigned_kept_across_restart_and_conflicts_refused() {
    let dir = scratch_dir("checkpoints");
    let data = dir.join("data");
    let (mut child, addr) = spawn(&data);

    let key_reply = get(addr, "/v1/checkpoints/key");
    assert_eq!(key_reply.status, 200);
    let key = signing::verifying_key_from_text(key_reply.json()["ed25519"].as_str().unwrap())
        .expect("a public key");
    assert_ne!(
        key_reply.json()["id"],
        get(addr, "/v1/keys").json()["current"],
        "the checkpoint key is not the bundle signing key"
    );

    let first = post(addr, &body("proxy-a/w0/1f", 3, 'a'));
    assert_eq!(first.status, 201, "{}", first.text());
    let signed: Countersigned = serde_json::from_slice(&first.body).expect("countersigned");
    assert_eq!(signed.verify(&[key]).expect("verifies"), [0xaa; 32]);
    // The same again: the same countersignature, not a new one.
    let again = post(addr, &body("proxy-a/w0/1f", 3, 'a'));
    assert_eq!(again.status, 200);
    assert_eq!(
        serde_json::from_slice::<Countersigned>(&again.body).unwrap(),
        signed
    );
    // Another hash for the same seq, or an older seq: 409, kept.
    let conflict = post(addr, &body("proxy-a/w0/1f", 3, 'b'));
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.json()["conflict"]["reason"], "different_hash");
    assert_eq!(post(addr, &body("proxy-a/w0/1f", 2, 'b')).status, 409);
    assert_eq!(post(addr, &body("proxy-a/w0/1f", 4, 'c')).status, 201);
    assert_eq!(post(addr, &body("proxy-b/w0/2e", 1, 'd')).status, 201);

    // Bounds and shape.
    for bad in [
        body("bad chain", 1, 'a'),
        body("x", 0, 'a'),
        body("x", 1, 'A'),
        format!(
            "{{\"chain\":\"{}\",\"seq\":1,\"hash\":\"{}\"}}",
            "a".repeat(161),
            "a".repeat(64)
        ),
        "{\"chain\":\"x\",\"seq\":1}".into(),
        "not json".into(),
    ] {
        assert_eq!(post(addr, &bad).status, 400, "{bad}");
    }
    assert_eq!(post(addr, &"x".repeat(4096)).status, 413);
    assert_eq!(
        blocking_request(addr, "PUT", "/v1/checkpoints", &[], b"{}")
            .unwrap()
            .status,
        405
    );
    assert_eq!(
        blocking_request(addr, "POST", "/v1/checkpoints/key", &[], b"{}")
            .unwrap()
            .status,
        405
    );

    let listed = get(addr, "/v1/checkpoints?chain=proxy-a/w0/1f").json();
    assert_eq!(listed["checkpoints"].as_array().unwrap().len(), 2);
    assert_eq!(listed["conflicts"].as_array().unwrap().len(), 2);
    assert_eq!(
        get(addr, "/v1/checkpoints").json()["checkpoints"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(get(addr, "/v1/checkpoints?who=me").status, 400);

    // kill -9 and restart on the same data: same key, same book.
    child.kill().expect("kill");
    let _ = child.wait();
    let key_file = data.join("keys").join("checkpoint.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (mut child, addr) = spawn(&data);
    assert_eq!(get(addr, "/v1/checkpoints/key").json(), key_reply.json());
    let all = get(addr, "/v1/checkpoints").json();
    let list: Vec<Countersigned> = serde_json::from_value(all["checkpoints"].clone()).unwrap();
    assert_eq!(list.len(), 3);
    assert!(list.contains(&signed));
    assert!(list.iter().all(|c| c.verify(&[key]).is_ok()));
    assert_eq!(all["conflicts"].as_array().unwrap().len(), 2);
    assert_eq!(post(addr, &body("proxy-a/w0/1f", 4, 'e')).status, 409);
    assert_eq!(post(addr, &body("proxy-a/w0/1f", 5, 'e')).status, 201);
    child.kill().expect("kill");
    let _ = child.wait();
    let _ = fs::remove_dir_all(&dir);
}
