//! The control service's TLS to PostgreSQL, against a real throwaway
//! cluster with `ssl = on` that lets TCP clients in only over TLS
//! (`hostssl`), its certificates made here with a test CA:
//! - `verify-full` with the right CA: the binary starts, a push and a get
//!   work, the server sees the session encrypted, the log shows the mode
//!   and never the password;
//! - a CA that did not sign the server's certificate: the start fails at
//!   once (not after the retry window), exit non-zero, "unknown CA";
//! - a server that does not speak TLS at all: "does not support TLS",
//!   never a plaintext retry;
//! - `sslmode=disable` against the hostssl-only server: refused by it;
//! - a server that accepts and stays silent: the connection set-up
//!   (TLS handshake included) gives up after its limit;
//! - `require` without a CA: connects, and warns that an active attacker
//!   is not kept out;
//! - a certificate for another host name (signed by the right CA):
//!   `verify-full` refuses "host name mismatch", `verify-ca` connects.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_guard_control::auth::token_digest_hex;
use mcp_guard_control::pg::{PgStore, Target};
use mcp_guard_control::{keys, BundleStore};
use mcp_guard_e2e::control_process::{control_path, ControlProcess};
use mcp_guard_e2e::http::send;
use mcp_guard_e2e::postgres::Postgres;
use mcp_guard_engine::signing;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use serde_json::json;

const TOKEN: &str = "tls-push-token";
const BUNDLE: &str = "tlsb";
const SECRET: &str = "not-a-real-secret-tls-5c1e";

/// A certificate and its key, PEM.
struct Pem {
    cert: String,
    key: String,
}

fn ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("CA certificate").pem();
    (Issuer::new(params, key), cert)
}

fn server(issuer: &Issuer<'_, KeyPair>, sans: Vec<SanType>) -> Pem {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.distinguished_name.push(DnType::CommonName, "db");
    let cert = params.signed_by(&key, issuer).expect("server certificate");
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// The service's files and the flags that use them.
struct Bed {
    dir: PathBuf,
    port: u16,
    common: Vec<String>,
    runs: usize,
}

impl Bed {
    fn new(port: u16) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("mcp-guard-pgtls-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let signer = keys::generate();
        std::fs::write(dir.join("signing.key"), signing::seed_base64(&signer)).expect("key");
        let tokens =
            json!({"tokens": [{"id": "t", "sha256": token_digest_hex(TOKEN), "bundles": ["*"]}]});
        std::fs::write(dir.join("tokens.json"), tokens.to_string()).expect("tokens");
        let path = |p: &Path| p.display().to_string();
        let common = vec![
            "--signing-key".into(),
            path(&dir.join("signing.key")),
            "--tokens".into(),
            path(&dir.join("tokens.json")),
            "--jwks-refresh".into(),
            "0".into(),
        ];
        Self {
            dir,
            port,
            common,
            runs: 0,
        }
    }

    /// A file in the bed's directory.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("file");
        path.display().to_string()
    }

    /// The store URL with `query` (the password proves it is never logged).
    fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres:{SECRET}@127.0.0.1:{}/postgres?{query}",
            self.port
        )
    }

    fn args(&self, query: &str) -> Vec<String> {
        let mut args = vec!["--store".to_owned(), self.url(query)];
        args.extend(self.common.iter().cloned());
        args
    }

    fn start(&mut self, query: &str) -> ControlProcess {
        self.runs += 1;
        let log = self.dir.join(format!("run-{}.log", self.runs));
        ControlProcess::start(&self.args(query), log).expect("control service starts")
    }

    /// Runs the binary expecting it to fail: its exit status, log and
    /// how long it took (killed after 12 s).
    fn fail(&mut self, query: &str) -> (ExitStatus, String, Duration) {
        self.runs += 1;
        let log = self.dir.join(format!("run-{}.log", self.runs));
        let started = Instant::now();
        let mut child = Command::new(control_path())
            .args(self.args(query))
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("control binary runs (cargo build -p mcp-guard-control)");
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > Duration::from_secs(12) {
                let _ = child.kill();
                break child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (status, text, started.elapsed())
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn push(r: &ControlProcess, note: &str) -> u16 {
    let body = json!({ "name": BUNDLE, "version": 1, "description": note }).to_string();
    send(
        "PUT",
        &r.url(&format!("/v1/bundles/{BUNDLE}")),
        Some(TOKEN),
        &[],
        Some(&body),
    )
    .expect("push completes")
    .status
}

fn get_body(r: &ControlProcess) -> String {
    let reply = send(
        "GET",
        &r.url(&format!("/v1/bundles/{BUNDLE}")),
        None,
        &[],
        None,
    )
    .expect("get completes");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

/// A TCP server that answers PostgreSQL's SSLRequest with `N` (no TLS):
/// its port, and what it saw that it should not have.
fn plaintext_only_server() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let wrong = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&wrong);
    std::thread::spawn(move || {
        let note = |what: String| seen.lock().expect("lock").push(what);
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { break };
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).is_ok() {
                // SSLRequest: length 8, code 80877103.
                if request != [0, 0, 0, 8, 4, 210, 22, 47] {
                    note(format!("not an SSLRequest first: {request:?}"));
                }
                let _ = stream.write_all(b"N");
                // Whatever comes next would be plaintext: nothing must.
                let mut rest = Vec::new();
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = stream.read_to_end(&mut rest);
                if !rest.is_empty() {
                    note(format!("plaintext after a refused TLS: {rest:?}"));
                }
            }
        }
    });
    (port, wrong)
}

#[test]
fn control_service_speaks_tls_to_postgres_and_refuses_what_it_cannot_verify() {
    let (issuer, ca_pem) = ca("mcp-guard test database CA");
    let (_, rogue_pem) = ca("some other CA");
    let good = server(
        &issuer,
        vec![
            SanType::IpAddress([127, 0, 0, 1].into()),
            SanType::DnsName("localhost".try_into().expect("name")),
        ],
    );
    let pg = Postgres::start_tls(&good.cert, &good.key).expect("TLS PostgreSQL starts");
    let mut bed = Bed::new(pg.port());
    let ca_file = bed.file("ca.pem", &ca_pem);
    let rogue_file = bed.file("rogue.pem", &rogue_pem);
    let started = Instant::now();

    // verify-full with the right CA: push and get through the database.
    let full = format!("sslmode=verify-full&sslrootcert={ca_file}");
    let r = bed.start(&full);
    assert!(matches!(push(&r, "over tls"), 200 | 201));
    assert!(get_body(&r).contains("over tls"));
    let encrypted = pg
        .psql(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE ssl AND application_name = 'mcp-guard-control'",
        )
        .expect("psql");
    assert!(
        encrypted.parse::<u32>().expect("count") >= 1,
        "no encrypted session of the service: {encrypted}"
    );
    let log = r.log_text();
    assert!(log.contains("?sslmode=verify-full"), "{log}");
    assert!(!log.contains(SECRET), "password logged: {log}");
    drop(r);
    println!("verify-full run: {:?}", started.elapsed());

    // A CA that did not sign the server's certificate (verify-full is the
    // default with sslrootcert): fails at once, names the cause.
    let (status, log, took) = bed.fail(&format!("sslrootcert={rogue_file}"));
    assert!(!status.success(), "started with an unknown CA: {log}");
    assert!(log.contains("unknown CA"), "{log}");
    assert!(log.contains(&rogue_file), "{log}");
    assert!(took < Duration::from_secs(5), "not fail-fast: {took:?}");
    assert!(!log.contains(SECRET), "password logged: {log}");
    println!("unknown CA refused in {took:?}");

    // A server without TLS: refused, never retried in plaintext (the fake
    // server asserts that nothing follows its "N").
    let (fake, wrong) = plaintext_only_server();
    let mut fake_bed = Bed::new(fake);
    let fake_ca = fake_bed.file("ca.pem", &ca_pem);
    let (status, log, took) = fake_bed.fail(&format!("sslmode=verify-full&sslrootcert={fake_ca}"));
    assert!(!status.success(), "{log}");
    assert!(log.contains("does not support TLS"), "{log}");
    assert!(took < Duration::from_secs(5), "not fail-fast: {took:?}");
    assert!(wrong.lock().expect("lock").is_empty(), "{wrong:?}");

    // sslmode=disable against the hostssl-only server: the server refuses
    // the plaintext session (checked through the library: the binary
    // would retry it for its whole start-up window).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let target = Target::parse(&bed.url("sslmode=disable"), None).expect("parses");
    assert_eq!(target.tls().mode().as_str(), "disable");
    let store = Arc::new(BundleStore::in_memory(keys::generate()));
    let refused = runtime
        .block_on(PgStore::open(target, &store, Duration::from_millis(300)))
        .expect_err("plaintext refused by pg_hba.conf");
    let refused = refused.to_string();
    assert!(refused.contains("no encryption"), "{refused}");
    assert!(!refused.contains(SECRET), "{refused}");

    // A server that accepts and stays silent: the set-up is bounded.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={ca_file}",
        silent.local_addr().expect("addr").port()
    );
    let target = Target::parse(&silent_url, None)
        .expect("parses")
        .with_handshake_timeout(Duration::from_millis(200));
    let stalled = Instant::now();
    let refused = runtime
        .block_on(PgStore::open(target, &store, Duration::from_millis(100)))
        .expect_err("silent server");
    assert!(refused.to_string().contains("no answer"), "{refused}");
    assert!(
        stalled.elapsed() < Duration::from_secs(3),
        "{:?}",
        stalled.elapsed()
    );
    drop(silent);

    // require without a CA: encrypted, unverified, and said so.
    let r = bed.start("sslmode=require");
    assert!(get_body(&r).contains("over tls"));
    assert!(r.log_text().contains("active attacker"), "{}", r.log_text());
    drop(r);

    // A certificate from the right CA for another host name.
    let other = server(
        &issuer,
        vec![SanType::DnsName(
            "db.other.example".try_into().expect("name"),
        )],
    );
    pg.switch_cert("other", &other.cert, &other.key)
        .expect("certificate switched");
    let (status, log, took) = bed.fail(&full);
    assert!(
        !status.success(),
        "started with a certificate for another name: {log}"
    );
    assert!(log.contains("host name mismatch"), "{log}");
    assert!(log.contains("127.0.0.1"), "{log}");
    assert!(took < Duration::from_secs(5), "not fail-fast: {took:?}");
    // verify-ca checks the chain only: the same server is accepted.
    let r = bed.start(&format!("sslmode=verify-ca&sslrootcert={ca_file}"));
    assert!(get_body(&r).contains("over tls"));
    assert!(r.log_text().contains("host name"), "{}", r.log_text());
    drop(r);
    println!("whole TLS test: {:?}", started.elapsed());
}
