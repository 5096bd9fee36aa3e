//! TLS between the test client and the gateway, with the test-only material in
//! `tests/fixtures/tls/`: Envoy's side of it ([`downstream_tls`]) and the client's
//! ([`send_tls`]), with or without a client certificate.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};

use crate::http::{self, Request, Response};

/// A client certificate of the fixtures, by file stem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    One,
    Two,
}

impl Client {
    fn stem(self) -> &'static str {
        match self {
            Client::One => "client-1",
            Client::Two => "client-2",
        }
    }

    fn certificate(self) -> CertificateDer<'static> {
        certificate(self.stem())
    }

    /// The certificate's SHA-256 thumbprint as `cnf.x5t#S256` carries it (RFC 8705 section 3.1):
    /// base64url, no padding, of the DER certificate's SHA-256.
    pub fn thumbprint(self) -> String {
        crate::oauth::b64url_encode(self.sha256().as_ref())
    }

    /// The same SHA-256 in lowercase hex, as Envoy writes it in `x-forwarded-client-cert`'s
    /// `Hash` and as `proxy_certificates` takes it.
    pub fn sha256_hex(self) -> String {
        self.sha256().as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn sha256(self) -> ring::digest::Digest {
        ring::digest::digest(&ring::digest::SHA256, self.certificate().as_ref())
    }
}

fn fixture(file: &str) -> PathBuf {
    crate::paths::workspace_root().join("tests/fixtures/tls").join(file)
}

fn certificate(stem: &str) -> CertificateDer<'static> {
    let path = fixture(&format!("{stem}.pem"));
    CertificateDer::from_pem_file(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Envoy's `transport_socket` for a listener that speaks TLS with the fixture server certificate
/// and asks for a client certificate without requiring one; a certificate it gets must chain to
/// the fixture CA.
pub fn downstream_tls() -> Value {
    let file = |name: &str| json!({ "filename": fixture(name).to_string_lossy() });
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": false,
            "common_tls_context": {
                "tls_certificates": [{
                    "certificate_chain": file("server.pem"),
                    "private_key": file("server.key"),
                }],
                "validation_context": { "trusted_ca": file("ca.pem") },
            },
        },
    })
}

/// Sends one request over a fresh TLS connection to `addr` (a listener with
/// [`downstream_tls`]), presenting `client`'s certificate if given, and reads the whole response
/// as [`http::send`] does.
pub fn send_tls(addr: SocketAddr, req: &Request, client: Option<Client>) -> io::Result<Response> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate("ca")).map_err(io::Error::other)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots);
    let config = match client {
        Some(client) => {
            let key_path = fixture(&format!("{}.key", client.stem()));
            let key = PrivateKeyDer::from_pem_file(&key_path).map_err(io::Error::other)?;
            builder
                .with_client_auth_cert(vec![client.certificate()], key)
                .map_err(io::Error::other)?
        }
        None => builder.with_no_client_auth(),
    };
    let server = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let connection = rustls::ClientConnection::new(Arc::new(config), server).map_err(io::Error::other)?;
    let socket = TcpStream::connect_timeout(&addr, http::IO_TIMEOUT)?;
    http::set_timeouts(&socket)?;
    http::exchange(rustls::StreamOwned::new(connection, socket), addr, req)
}
