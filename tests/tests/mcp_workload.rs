//! Workload identity through a real Envoy with a mutual-TLS listener:
//! certificates are made here at run time (a CA Envoy trusts, Envoy's
//! server certificate, client certificates with different SPIFFE URI
//! SANs, and one from a CA Envoy does not trust), and a rustls client
//! presents them. One Envoy per target, several callers on it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mcp_guard_e2e::envoy::DownstreamTls;
use mcp_guard_e2e::{target, tokens, Stack, StackOptions, Target};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use serde_json::{json, Value};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
use ureq::Agent;

const AGENT: &str = "spiffe://cluster.local/ns/agents/sa/agent";
const OTHER_SA: &str = "spiffe://cluster.local/ns/agents/sa/other";
const WEB: &str = "spiffe://cluster.local/ns/web/sa/frontend";

/// Workload-only callers may reach `GET /healthz` as the agent; token
/// holders with `model-user` may `HEAD /healthz` from any agents workload.
fn bundle() -> String {
    json!({
        "name": "workload",
        "version": 1,
        "identity": {
            "jwt_authn_metadata": "jwt_payload",
            "subject_claim": "sub",
            "workloads": {"allow_without_token": true, "trust_domains": ["cluster.local"]}
        },
        "rules": [
            {"id": "agent-health", "effect": "allow", "when": {
                "methods": ["GET"], "path": {"exact": "/healthz"}, "peers": [AGENT]}},
            {"id": "users-via-agents", "effect": "allow", "when": {
                "methods": ["HEAD"], "path": {"exact": "/healthz"},
                "peers": ["spiffe://cluster.local/ns/agents/*"],
                "claims": [{"claim": "roles", "contains_any": ["model-user"]}]}}
        ],
        "pii": {"enabled": false}
    })
    .to_string()
}

/// A certificate and its key, PEM.
struct Pem {
    cert: String,
    key: String,
}

/// Every certificate the test uses.
struct Pki {
    /// The CA Envoy trusts (PEM certificate).
    ca: String,
    server: Pem,
    agent: Pem,
    other_sa: Pem,
    web: Pem,
    /// The agent's SPIFFE ID, but issued by a CA Envoy does not trust.
    rogue_agent: Pem,
    /// First URI SAN is not a SPIFFE ID (the agent's ID comes second).
    https_first: Pem,
    /// Two SPIFFE URI SANs, the agent's second (Envoy shows the first).
    two_ids: Pem,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("CA certificate").pem();
    (params, key, cert)
}

fn leaf(issuer: &Issuer<'_, KeyPair>, sans: Vec<SanType>, usage: ExtendedKeyUsagePurpose) -> Pem {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![usage];
    params.distinguished_name.push(DnType::CommonName, "leaf");
    let cert = params
        .signed_by(&key, issuer)
        .expect("leaf certificate")
        .pem();
    Pem {
        cert,
        key: key.serialize_pem(),
    }
}

fn uri(text: &str) -> SanType {
    SanType::URI(text.try_into().expect("URI SAN"))
}

fn client(issuer: &Issuer<'_, KeyPair>, uris: &[&str]) -> Pem {
    leaf(
        issuer,
        uris.iter().map(|u| uri(u)).collect(),
        ExtendedKeyUsagePurpose::ClientAuth,
    )
}

fn make_pki() -> Pki {
    let (ca_params, ca_key, ca_cert) = ca("mcp-guard test mesh CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let server = leaf(
        &issuer,
        vec![SanType::IpAddress([127, 0, 0, 1].into())],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (rogue_params, rogue_key, _) = ca("untrusted CA");
    let rogue = Issuer::new(rogue_params, rogue_key);
    Pki {
        ca: ca_cert,
        server,
        agent: client(&issuer, &[AGENT]),
        other_sa: client(&issuer, &[OTHER_SA]),
        web: client(&issuer, &[WEB]),
        rogue_agent: client(&rogue, &[AGENT]),
        https_first: client(&issuer, &["https://agent.example", AGENT]),
        two_ids: client(&issuer, &[OTHER_SA, AGENT]),
    }
}

fn write_listener_files(pki: &Pki, dir: &Path) -> DownstreamTls {
    std::fs::create_dir_all(dir).expect("dir");
    let files = DownstreamTls {
        cert_chain: dir.join("server.pem"),
        private_key: dir.join("server.key"),
        client_ca: dir.join("ca.pem"),
    };
    std::fs::write(&files.cert_chain, &pki.server.cert).expect("write");
    std::fs::write(&files.private_key, &pki.server.key).expect("write");
    std::fs::write(&files.client_ca, &pki.ca).expect("write");
    files
}

/// A TLS client trusting the test CA, presenting `identity` if given.
fn agent(pki: &Pki, identity: Option<&Pem>) -> Agent {
    let ca = Certificate::from_pem(pki.ca.as_bytes()).expect("CA PEM");
    let client_cert = identity.map(|pem| {
        let cert = Certificate::from_pem(pem.cert.as_bytes()).expect("cert PEM");
        let key = PrivateKey::from_pem(pem.key.as_bytes()).expect("key PEM");
        ClientCert::new_with_certs(&[cert], key)
    });
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
        .client_cert(client_cert)
        .build();
    Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// Status and body of one request, or the transport error.
fn call(
    stack: &Stack,
    client: &Agent,
    method: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<(u16, Value), String> {
    let url = format!("https://127.0.0.1:{}/healthz", stack.envoy.port);
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(()).map_err(|e| e.to_string())?;
    let mut response = client.run(request).map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// The decision record of the access-log line the predicate picks.
fn record_where(stack: &Stack, pick: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let found = stack.envoy.access_log_lines().into_iter().find_map(|l| {
            let record = l.get("mcp")?.clone();
            pick(&record).then_some(record)
        });
        if let Some(record) = found {
            return record;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no matching record in {:?}", stack.envoy.access_log_lines());
}

#[test]
fn workload_identity_over_mutual_tls() {
    let pki = make_pki();
    for target in target::available() {
        eprintln!("workload_identity_over_mutual_tls: {}", target.name());
        workload_identity_on(&target, &pki);
    }
}

fn workload_identity_on(target: &Target, pki: &Pki) {
    let dir = std::env::temp_dir().join(format!(
        "mcp-guard-workload-{}-{}",
        target.name(),
        std::process::id()
    ));
    let tls = write_listener_files(pki, &dir.join("tls"));
    let stack = Stack::start(StackOptions {
        target: target.clone(),
        bundles: vec![("workload".into(), bundle())],
        bundle_name: "workload".into(),
        concurrency: 1,
        work_dir: Some(dir.clone()),
        downstream_tls: Some(tls),
        ..StackOptions::default()
    })
    .expect("stack starts");
    let name = target.name();

    // 1. The agent workload, no token: identified by its SPIFFE ID.
    let (status, body) =
        call(&stack, &agent(pki, Some(&pki.agent)), "GET", None, &[]).expect("agent connects");
    assert_eq!(status, 200, "{name}: agent without token: {body}");
    let record = record_where(&stack, |r| r["rule"] == "agent-health");
    assert_eq!(record["sub"], AGENT, "{name}: {record}");
    assert_eq!(record["peer"], AGENT, "{name}: {record}");

    // 2. Another service account of the same namespace: not named.
    let other = agent(pki, Some(&pki.other_sa));
    let (status, body) = call(&stack, &other, "GET", None, &[]).expect("other SA connects");
    assert_eq!(status, 403, "{name}: other SA: {body}");
    assert_eq!(body["reason"], "default_deny", "{name}");

    // 3. A forged x-forwarded-client-cert naming the agent changes nothing:
    //    the filter reads the connection, and Envoy sanitises the header.
    let xfcc = format!("By=spiffe://cluster.local/ns/mesh/sa/gw;URI={AGENT}");
    let (status, body) = call(
        &stack,
        &other,
        "GET",
        None,
        &[("x-forwarded-client-cert", &xfcc)],
    )
    .expect("other SA connects");
    assert_eq!(status, 403, "{name}: forged XFCC: {body}");
    assert_eq!(body["reason"], "default_deny", "{name}");

    // 4. A certificate whose first URI SAN is not a SPIFFE ID carries no
    //    workload identity (fail closed), even when a later SAN is one.
    let (status, body) = call(
        &stack,
        &agent(pki, Some(&pki.https_first)),
        "GET",
        None,
        &[("x-forwarded-client-cert", &xfcc)],
    )
    .expect("connects");
    assert_eq!(status, 401, "{name}: non-SPIFFE first SAN: {body}");
    assert_eq!(body["reason"], "missing_token", "{name}");

    // A certificate with two SPIFFE IDs is judged by the first only (the
    // one Envoy exposes): a second ID never adds rights.
    let (status, body) =
        call(&stack, &agent(pki, Some(&pki.two_ids)), "GET", None, &[]).expect("connects");
    assert_eq!(status, 403, "{name}: two SPIFFE SANs: {body}");
    let record = record_where(&stack, |r| r["peer"] == OTHER_SA && r["sub"] == OTHER_SA);
    assert_eq!(record["reason"], "default_deny", "{name}: {record}");

    // 5. Untrusted CA, or no client certificate at all: refused at TLS.
    let rogue = call(
        &stack,
        &agent(pki, Some(&pki.rogue_agent)),
        "GET",
        None,
        &[],
    );
    assert!(rogue.is_err(), "{name}: untrusted CA got {rogue:?}");
    let anonymous = call(&stack, &agent(pki, None), "GET", None, &[]);
    assert!(
        anonymous.is_err(),
        "{name}: no client cert got {anonymous:?}"
    );

    // 6. With a token, the user and the peer must both hold.
    let alice = tokens::alice().expect("token");
    let mallory = tokens::mallory().expect("token");
    for (who, identity, token, want) in [
        ("alice via agent", &pki.agent, &alice, 200),
        ("alice via other agents SA", &pki.other_sa, &alice, 200),
        ("alice via web", &pki.web, &alice, 403),
        ("mallory via agent", &pki.agent, &mallory, 403),
    ] {
        let (status, _) = call(
            &stack,
            &agent(pki, Some(identity)),
            "HEAD",
            Some(token),
            &[],
        )
        .expect("connects");
        assert_eq!(status, want, "{name}: {who}");
    }
    let record = record_where(&stack, |r| r["rule"] == "users-via-agents");
    assert_eq!(record["sub"], "alice", "{name}: {record}");
    // A token holder on another workload's connection does not pass the
    // rule that names the agent.
    let (status, _) = call(
        &stack,
        &agent(pki, Some(&pki.web)),
        "GET",
        Some(&alice),
        &[],
    )
    .expect("connects");
    assert_eq!(status, 403, "{name}: alice via web on the agent rule");
    drop(stack);
    let _ = std::fs::remove_dir_all(&dir);
}
