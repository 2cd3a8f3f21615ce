//! TLS to the PostgreSQL store, with libpq's URL parameters `sslmode` and
//! `sslrootcert`.
//!
//! | `sslmode` | encrypted | chain checked | host name checked |
//! | --- | --- | --- | --- |
//! | `disable` | no | – | – |
//! | `require` | yes | no (yes with `sslrootcert`, as libpq) | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` | yes | yes | yes |
//!
//! `prefer` and `allow` are refused: both send the password and every
//! bundle in plaintext when the server (or an attacker in between, who
//! only has to answer "no TLS") declines TLS. Without `sslmode`, the mode
//! is `verify-full` when `sslrootcert` is given, `disable` when every host
//! is loopback or a unix socket, and otherwise the URL is refused: the
//! operator says which one it is. A TLS failure is never retried in
//! plaintext.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the client checks of the server (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext: loopback, or a mesh whose sidecars encrypt.
    Disable,
    /// Encrypted, any certificate: not safe against an active attacker.
    Require,
    /// Encrypted, certificate signed by a trusted CA, any host name.
    VerifyCa,
    /// Encrypted, trusted CA and the host name of the URL.
    VerifyFull,
}

impl SslMode {
    /// The URL spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Parses an `sslmode` value; `prefer` and `allow` are refused.
    pub fn parse(value: &str) -> Result<Self, TlsError> {
        match value {
            "disable" => Ok(SslMode::Disable),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            "prefer" | "allow" => Err(TlsError::FallsBack),
            _ => Err(TlsError::UnknownMode),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where trusted CA certificates come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// `sslrootcert=PATH`: a PEM bundle.
    File(String),
    /// `sslrootcert=system`: Mozilla's roots, built in (a container need
    /// not ship a CA store).
    System,
}

/// A TLS setting that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsError {
    /// `prefer` or `allow`.
    #[error("sslmode=prefer and sslmode=allow fall back to plaintext when the server (or an attacker) declines TLS: use verify-full (with sslrootcert=CA.pem), verify-ca, require, or disable")]
    FallsBack,
    /// Not one of libpq's values.
    #[error("sslmode must be disable, require, verify-ca or verify-full")]
    UnknownMode,
    /// No `sslmode` for a host that is not loopback.
    #[error("the store URL names a remote host without sslmode: add sslmode=verify-full&sslrootcert=/path/ca.pem for a database reached over a network, or sslmode=disable inside a mesh whose sidecars encrypt")]
    ModeMissing,
    /// Checking a chain needs trusted CAs.
    #[error("sslmode={0} needs sslrootcert=PATH (PEM CA bundle) or sslrootcert=system")]
    NoRoots(SslMode),
    /// `sslrootcert` with plaintext.
    #[error("sslrootcert is given but sslmode=disable: drop one of them")]
    RootsUnused,
    /// Public CAs certify any name: the chain alone proves nothing.
    #[error("sslrootcert=system needs sslmode=verify-full (public CAs sign certificates for anyone's names)")]
    SystemNeedsFull,
    /// PostgreSQL has no TLS on unix sockets.
    #[error("sslmode={0} cannot be used with a unix-socket host")]
    UnixSocket(SslMode),
    /// The CA file is unreadable or holds no usable certificate.
    #[error("sslrootcert={path}: {reason}")]
    RootFile {
        /// The path (not a secret).
        path: String,
        /// Why.
        reason: String,
    },
    /// The TLS library refused the configuration.
    #[error("TLS setup: {0}")]
    Setup(String),
    /// The parameter appears twice.
    #[error("{0} is given twice in the store URL")]
    Repeated(&'static str),
}

/// The TLS side of a store URL: mode, roots, and the connector built
/// from them.
#[derive(Clone)]
pub struct Tls {
    mode: SslMode,
    roots: Option<Roots>,
    connector: MakeRustlsConnect,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("mode", &self.mode)
            .field("roots", &self.roots)
            .finish()
    }
}

impl Tls {
    /// Decides the mode (see the module doc) and reads the CA bundle.
    /// `local` says every host is loopback or a unix socket; `unix` that
    /// one is a unix socket.
    pub fn new(
        mode: Option<SslMode>,
        roots: Option<Roots>,
        local: bool,
        unix: bool,
    ) -> Result<Self, TlsError> {
        let mode = match (mode, &roots) {
            // As libpq: require with a CA file checks the chain.
            (Some(SslMode::Require), Some(Roots::File(_))) => SslMode::VerifyCa,
            (Some(mode), _) => mode,
            (None, Some(_)) => SslMode::VerifyFull,
            (None, None) if local => SslMode::Disable,
            (None, None) => return Err(TlsError::ModeMissing),
        };
        match (mode, &roots) {
            (SslMode::Disable, Some(_)) => return Err(TlsError::RootsUnused),
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => return Err(TlsError::NoRoots(mode)),
            (SslMode::Require | SslMode::VerifyCa, Some(Roots::System)) => {
                return Err(TlsError::SystemNeedsFull)
            }
            _ => {}
        }
        if unix && mode != SslMode::Disable {
            return Err(TlsError::UnixSocket(mode));
        }
        let store = match &roots {
            None => RootCertStore::empty(),
            Some(Roots::System) => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            Some(Roots::File(path)) => read_roots(path)?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(Verifier {
            mode,
            roots: Arc::new(store),
            provider: Arc::clone(&provider),
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Self {
            mode,
            roots,
            connector: MakeRustlsConnect::new(config),
        })
    }

    /// The mode in force.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The connector handed to `tokio_postgres::Config::connect` (unused
    /// with `disable`: tokio-postgres never asks the server for TLS).
    pub fn connector(&self) -> MakeRustlsConnect {
        self.connector.clone()
    }

    /// A warning for the start-up log, for modes that do not authenticate
    /// the server.
    pub fn warning(&self) -> Option<&'static str> {
        match self.mode {
            SslMode::Require => Some(
                "sslmode=require encrypts but does not check the server's certificate: not safe against an active attacker; use verify-full with sslrootcert",
            ),
            SslMode::VerifyCa => Some(
                "sslmode=verify-ca does not check the host name: any server holding a certificate from the CA can pose as the database",
            ),
            _ => None,
        }
    }

    /// When `e` is a TLS refusal, what it means for an operator (unknown
    /// CA, host name mismatch, no TLS on the server...). Such a failure
    /// is a configuration error: it fails the start at once.
    pub fn refusal(&self, e: &tokio_postgres::Error) -> Option<String> {
        let mut cause = std::error::Error::source(e);
        let mut causes = Vec::new();
        while let Some(err) = cause {
            let rustls_error = err.downcast_ref::<rustls::Error>().or_else(|| {
                err.downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            });
            if let Some(rustls_error) = rustls_error {
                return Some(self.explain(rustls_error));
            }
            let text = err.to_string();
            if text == "server does not support TLS" {
                return Some(format!(
                    "TLS refused: the server does not support TLS (sslmode={} needs ssl = on in its postgresql.conf); never retried in plaintext",
                    self.mode
                ));
            }
            causes.push(text);
            cause = err.source();
        }
        (e.to_string() == "error performing TLS handshake")
            .then(|| format!("TLS refused ({}): {}", self.mode, causes.join(": ")))
    }

    fn explain(&self, e: &rustls::Error) -> String {
        let roots = match &self.roots {
            Some(Roots::File(path)) => format!("sslrootcert={path}"),
            Some(Roots::System) => "the system roots".to_owned(),
            None => "the trusted CAs".to_owned(),
        };
        let what = match e {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                format!("unknown CA: the server's certificate is not signed by a CA in {roots}")
            }
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!("host name mismatch: {e}"),
            rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. },
            ) => format!("expired certificate: {e}"),
            other => other.to_string(),
        };
        format!("TLS refused ({}): {what}", self.mode)
    }
}

/// Every certificate of a PEM file.
fn read_roots(path: &str) -> Result<RootCertStore, TlsError> {
    let fail = |reason: String| TlsError::RootFile {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(Path::new(path)).map_err(|e| fail(e.to_string()))?;
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| fail(format!("not a PEM certificate bundle: {e}")))?;
        store
            .add(cert)
            .map_err(|e| fail(format!("unusable CA certificate: {e}")))?;
    }
    if store.is_empty() {
        return Err(fail("no CERTIFICATE in the file".into()));
    }
    Ok(store)
}

/// Checks the server as the mode says; handshake signatures always.
#[derive(Debug)]
struct Verifier {
    mode: SslMode,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        match self.mode {
            SslMode::Disable => {
                return Err(rustls::Error::General(
                    "TLS with sslmode=disable".to_owned(),
                ))
            }
            SslMode::Require => {}
            SslMode::VerifyCa | SslMode::VerifyFull => {
                verify_server_cert_signed_by_trust_anchor(
                    &cert,
                    &self.roots,
                    intermediates,
                    now,
                    self.provider.signature_verification_algorithms.all,
                )?;
            }
        }
        if self.mode == SslMode::VerifyFull {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
