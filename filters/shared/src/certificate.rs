//! Where the client certificate a token may be bound to (RFC 8705) is read from: the TLS
//! handshake Envoy terminated, or a front proxy that terminated it and forwarded the
//! certificate's hash in `x-forwarded-client-cert`, trusted only from that proxy's own
//! connection.

use crate::config::FromConfig;

use crate::config::{ConfigError, FieldPath};
use crate::headers::Headers;
use crate::ports::Properties;

/// The header in which Envoy (and other proxies) forward a client certificate's details.
pub const FORWARDED_CLIENT_CERT: &str = "x-forwarded-client-cert";

#[derive(Clone, Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(
    rename = "tagged:ClientCertificateConfig",
    rename_all = "snake_case",
    deny_unknown_fields
)]
#[cfg_attr(feature = "schema", schemars(rename = "ClientCertificateConfig", tag = "type"))]
pub enum ClientCertificateConfig {
    /// The client certificate of the downstream TLS connection: Envoy terminates mutual TLS.
    Connection {},
    /// The `Hash` of the last element of `x-forwarded-client-cert`, which the front proxy that
    /// terminated mutual TLS appended; read only on a connection whose own client certificate is
    /// one of `proxy_certificates` (the SHA-256 of each proxy's certificate, in hex).
    Forwarded { proxy_certificates: Vec<String> },
}

impl Default for ClientCertificateConfig {
    fn default() -> Self {
        ClientCertificateConfig::Connection {}
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClientCertificate {
    #[default]
    Connection,
    Forwarded {
        proxies: Vec<[u8; 32]>,
    },
}

impl ClientCertificate {
    pub fn compile(config: &ClientCertificateConfig, at: &FieldPath) -> Result<Self, ConfigError> {
        let ClientCertificateConfig::Forwarded { proxy_certificates } = config else {
            return Ok(ClientCertificate::Connection);
        };
        let at = at.field("proxy_certificates");
        if proxy_certificates.is_empty() {
            return Err(at.error("list the SHA-256 of each front proxy's client certificate"));
        }
        let mut proxies = Vec::with_capacity(proxy_certificates.len());
        for (i, hex) in proxy_certificates.iter().enumerate() {
            // `openssl x509 -fingerprint -sha256` writes it in uppercase, bytes between colons.
            let digits = hex.replace(':', "");
            let digest = sha256_from_hex(digits.as_bytes()).ok_or_else(|| {
                at.index(i)
                    .error("expected a SHA-256 in hex: 64 hex digits, bytes optionally separated by `:`")
            })?;
            proxies.push(digest);
        }
        Ok(ClientCertificate::Forwarded { proxies })
    }

    /// Whether the certificate comes from `x-forwarded-client-cert`, which a filter then keeps
    /// from the request's headers for the check.
    pub fn reads_forwarded_header(&self) -> bool {
        matches!(self, ClientCertificate::Forwarded { .. })
    }

    /// The SHA-256 of the client certificate of this request, if it presented one: `forwarded`
    /// is its `x-forwarded-client-cert` (every value, comma-joined).
    pub fn presented(&self, connection: &dyn Properties, forwarded: Option<&[u8]>) -> Option<[u8; 32]> {
        match self {
            ClientCertificate::Connection => connection.client_certificate_sha256(),
            ClientCertificate::Forwarded { proxies } => {
                let proxy = connection.client_certificate_sha256()?;
                proxies.contains(&proxy).then_some(())?;
                last_hop_hash(forwarded?)
            }
        }
    }
}

/// A request's `x-forwarded-client-cert`: every value, comma-joined, as one list.
pub fn forwarded_header(headers: &Headers) -> Option<Vec<u8>> {
    let values: Vec<&[u8]> = headers.get_all(FORWARDED_CLIENT_CERT).collect();
    (!values.is_empty()).then(|| values.join(&b","[..]))
}

/// The 32 bytes that 64 hex digits (either case) spell, and nothing else.
pub fn sha256_from_hex(hex: &[u8]) -> Option<[u8; 32]> {
    let digit = |d: u8| char::from(d).to_digit(16);
    let mut digest = [0u8; 32];
    if hex.len() != 2 * digest.len() {
        return None;
    }
    for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
        let (high, low) = (digit(*pair.first()?)?, digit(*pair.get(1)?)?);
        *byte = u8::try_from(high << 4 | low).ok()?;
    }
    Some(digest)
}

/// The `Hash` of the last element of an `x-forwarded-client-cert` value, the one the nearest
/// proxy appended. Envoy's format: elements separated by `,`, `key=value` pairs by `;`, a value
/// in double quotes when it holds one of those (`Subject="CN=a,O=b"`), `\"` inside quotes. A
/// malformed last element, or one with no `Hash` or two, gives `None`.
fn last_hop_hash(forwarded: &[u8]) -> Option<[u8; 32]> {
    let text = std::str::from_utf8(forwarded).ok()?;
    let mut last = "";
    for_each_unquoted(text, ',', |element| {
        last = element;
        Some(())
    })?;
    let mut hash = None;
    for_each_unquoted(last, ';', |pair| {
        let (key, value) = pair.split_once('=')?;
        if key.trim_ascii().eq_ignore_ascii_case("hash") {
            let value = value.trim_ascii();
            let unquoted = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
            hash.is_none().then_some(())?;
            hash = Some(unquoted.unwrap_or(value));
        }
        Some(())
    })?;
    sha256_from_hex(hash?.as_bytes())
}

/// Calls `each` with every part of `text` between `separator`s outside double quotes; `None` if
/// a quote is left open or `each` gives `None`.
fn for_each_unquoted<'a>(text: &'a str, separator: char, mut each: impl FnMut(&'a str) -> Option<()>) -> Option<()> {
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                each(text.get(start..i)?)?;
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    each(text.get(start..)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const PROXY: [u8; 32] = [0xaa; 32];
    const CLIENT: [u8; 32] = [0x1f; 32];

    fn hex(bytes: [u8; 32]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    struct Connection(Option<[u8; 32]>);

    impl Properties for Connection {
        fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            (path == ["connection", "sha256_peer_certificate_digest"])
                .then(|| self.0.map(|digest| hex(digest).into_bytes()))
                .flatten()
        }

        fn filter_state(&self, _key: &str) -> Option<Vec<u8>> {
            None
        }
    }

    fn forwarded() -> ClientCertificate {
        ClientCertificate::Forwarded { proxies: vec![PROXY] }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_last_hops_hash_is_read_from_a_trusted_proxy_only() {
        let xfcc = format!(
            "By=spiffe://gw;Hash={};Subject=\"CN=client,O=Example\";URI=",
            hex(CLIENT)
        );
        let presented = |connection, xfcc: &str| forwarded().presented(&Connection(connection), Some(xfcc.as_bytes()));
        assert_eq!(presented(Some(PROXY), &xfcc), Some(CLIENT));
        assert_eq!(presented(Some(CLIENT), &xfcc), None, "not a trusted proxy");
        assert_eq!(presented(None, &xfcc), None, "no TLS client certificate at all");
        assert_eq!(forwarded().presented(&Connection(Some(PROXY)), None), None, "no header");
        let earlier = format!("Hash={};By=x,{xfcc}", hex([0x22; 32]));
        assert_eq!(
            presented(Some(PROXY), &earlier),
            Some(CLIENT),
            "the last element is the proxy's"
        );
        assert_eq!(
            ClientCertificate::Connection.presented(&Connection(Some(PROXY)), Some(xfcc.as_bytes())),
            Some(PROXY),
            "the connection's own certificate; the header is not read"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_last_element_without_exactly_one_good_hash_gives_none() {
        let good = hex(CLIENT);
        for xfcc in [
            String::new(),
            "By=spiffe://gw".to_owned(),
            format!("Hash={good};Hash={good}"),
            format!("Hash={}", &good[2..]),
            format!("Hash={good}00"),
            format!("Hash={good};Subject=\"CN=open"),
            format!("Hash={good};junk"),
            format!("Hash={good},By=spiffe://later"),
        ] {
            assert_eq!(last_hop_hash(xfcc.as_bytes()), None, "{xfcc}");
        }
        for xfcc in [
            format!("hash={}", good.to_uppercase()),
            format!("Subject=\"CN=a\\\",Hash=x;y\";Hash=\"{good}\""),
            format!(" By=a ; Hash= {good} "),
        ] {
            assert_eq!(last_hop_hash(xfcc.as_bytes()), Some(CLIENT), "{xfcc}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn proxy_certificates_are_sha256_in_hex() {
        let at = FieldPath::root().field("client_certificate");
        let compile = |certificates: Vec<String>| {
            ClientCertificate::compile(
                &ClientCertificateConfig::Forwarded {
                    proxy_certificates: certificates,
                },
                &at,
            )
        };
        let openssl_style = PROXY.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
        assert_eq!(compile(vec![openssl_style]), Ok(forwarded()));
        assert_eq!(compile(vec![hex(PROXY)]), Ok(forwarded()));
        let error = compile(vec![]).unwrap_err();
        assert_eq!(error.path, "client_certificate.proxy_certificates");
        let error = compile(vec![hex(PROXY), "abc".into()]).unwrap_err();
        assert_eq!(error.path, "client_certificate.proxy_certificates[1]");
        assert_eq!(
            ClientCertificate::compile(&ClientCertificateConfig::default(), &at),
            Ok(ClientCertificate::Connection)
        );
    }
}
