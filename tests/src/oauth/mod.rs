//! A test OAuth 2.0 / OpenID Connect server: discovery, JWKS, a
//! client-credentials token endpoint, token introspection and revocation,
//! over HTTP/1.1 on `127.0.0.1`, driven in-process by the test.
//!
//! Like [`EchoUpstream`](crate::EchoUpstream) it is a [`BackgroundServer`]:
//! it runs on its own thread with its own tokio runtime and stops on drop.
//!
//! | Endpoint | What it answers |
//! |---|---|
//! | `GET /.well-known/openid-configuration` | `issuer`, `jwks_uri`, `token_endpoint`, `introspection_endpoint`, `revocation_endpoint` (all under [`OAuthServer::issuer`]) and a few more metadata fields |
//! | `GET /jwks` | the JWKS of the [published](OAuthServer::publish) keys, `Cache-Control: max-age=300` |
//! | `POST /token` | OAuth 2.0 client credentials (RFC 6749 section 4.4), errors per section 5.2; JWT or [opaque](TokenFormat::Opaque) access tokens |
//! | `POST /introspect` | introspection of tokens this server issued: RFC 7662 JSON, the phantom JWT itself (`Accept: application/jwt`) or an RFC 9701 signed answer (`Accept: application/token-introspection+jwt`) |
//! | `POST /revoke` | RFC 7009 revocation |
//! | `POST /register` | RFC 7591 dynamic client registration, open (no initial access token): a new `client_credentials` client with the scopes asked for |
//!
//! # Opaque tokens and phantom JWTs
//!
//! With [`TokenFormat::Opaque`] (see [`OAuthServer::set_token_format`]) or
//! [`OAuthServer::opaque_token`], the server hands out a random reference
//! token and keeps, next to it, a "phantom" JWT carrying the claims, signed
//! exactly like a JWT access token. Introspection hands that JWT out: as the
//! whole body when the caller asks for `application/jwt` (the phantom-token
//! pattern), or as the `jwt` member of the introspection object. A JWT
//! access token is its own phantom JWT.
//!
//! # Introspection answers
//!
//! `POST /introspect` (client authentication as on `/token`, form
//! `token=...&token_type_hint=...`) answers according to the first media
//! type of the `Accept` header it recognises (`q` parameters are ignored):
//!
//! | `Accept` | active token | inactive, unknown, expired or revoked token |
//! |---|---|---|
//! | `application/jwt` | `200`, `application/jwt`, the JWT | `204`, empty body |
//! | `application/token-introspection+jwt` | `200`, a JWS (see below) | `200`, a JWS whose `token_introspection` is `{"active": false}` |
//! | `application/json`, anything else, none | `200`, `{"active": true, <claims>..., "token_type": "Bearer", "jwt": <JWT>}` (`token_type` is the claims' own when they have one) | `200`, `{"active": false}` |
//!
//! The RFC 9701 JWS is signed with the default key (its natural algorithm),
//! header `{"alg", "kid", "typ": "token-introspection+jwt"}`, claims
//! `{"iss": <issuer>, "aud": <the caller's client_id>, "iat": <now>,
//! "token_introspection": <the JSON answer>}`.
//!
//! An active answer carries `Cache-Control: max-age=<seconds until exp>`,
//! an inactive one no `Cache-Control`, unless
//! [`OAuthServer::set_introspection_cache_control`] says otherwise. Every
//! authenticated introspection request is recorded
//! ([`OAuthServer::introspection_requests`]).
//!
//! Signing keys are the committed fixtures in `tests/fixtures/keys/` (see
//! its README): `rsa-1` (the default signing key), `rsa-2`, `rsa-3`, `ec-1`,
//! `ec-2` (P-256), `ec384-1` (P-384), `ed-1`, `ed-2` (Ed25519). At start
//! `rsa-1`, `ec-1`, `ec384-1` and `ed-1` are published.
//!
//! ```no_run
//! use harness::oauth::{OAuthServer, SigningKey, TokenSpec};
//! use serde_json::json;
//!
//! let idp = OAuthServer::start();
//! // A valid RS256 token with the default claims, `sub` replaced, `aud` removed.
//! let good = idp.token(json!({"sub": "bob", "aud": null}));
//! // An attack: `alg: none` with an empty signature.
//! let none = idp.mint(TokenSpec::new("none", "rsa-1").claims(idp.claims(json!({}))).signing_key(SigningKey::None));
//! // Key rotation: publish rsa-2, sign with it, retire rsa-1.
//! idp.publish("rsa-2");
//! idp.set_default_kid("rsa-2");
//! idp.retire("rsa-1");
//! // A phantom-token pair: the opaque token a client presents, and the JWT
//! // introspection exchanges it for.
//! let opaque = idp.opaque_token(json!({"scope": "orders:read"}));
//! let jwt = idp.phantom_jwt(&opaque).expect("just issued");
//! ```

mod keys;
mod server;
mod token;
mod verify;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

pub use crate::server::Gate;
use crate::server::{BackgroundServer, BoundListener};

pub use keys::{
    fixture_jwk, fixture_kids, fixture_public_key_pem, jwks_for, jwks_without_rsa_alg, key_type, KeyType,
    ASYMMETRIC_ALGS,
};
pub use token::{b64url_decode, b64url_encode, jws_claims, jws_header, jws_parts, mint, SigningKey, TokenSpec};
pub use verify::{jwk_bytes, verify_jws, verify_jws_as};

/// Path of the OpenID Connect discovery document.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// Path of the JWKS.
pub const JWKS_PATH: &str = "/jwks";
/// Path of the token endpoint.
pub const TOKEN_PATH: &str = "/token";
/// Path of the introspection endpoint.
pub const INTROSPECT_PATH: &str = "/introspect";
/// Path of the revocation endpoint (RFC 7009).
pub const REVOKE_PATH: &str = "/revoke";
/// Path of the dynamic client registration endpoint (RFC 7591).
pub const REGISTER_PATH: &str = "/register";

/// The kid of the key that signs by default.
pub const DEFAULT_KID: &str = "rsa-1";
/// The keys published at start.
pub const DEFAULT_PUBLISHED: [&str; 4] = ["rsa-1", "ec-1", "ec384-1", "ed-1"];
/// The default `aud` claim.
pub const DEFAULT_AUDIENCE: &str = "api";
/// The default `sub` claim of [`OAuthServer::token`].
pub const DEFAULT_SUBJECT: &str = "alice";
/// The default token lifetime, in seconds.
pub const DEFAULT_TTL: u64 = 300;

/// Size the [`Fault::HugeBody`] bodies reach (at least): 2 MiB.
pub const HUGE_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The body [`Fault::Html`] serves.
pub const HTML_FAULT_BODY: &str = "<html><body>Service temporarily unavailable</body></html>";

/// The fixture key that signs under [`Fault::WrongSignature`]: never
/// published at start.
pub const WRONG_SIGNATURE_KID: &str = "rsa-3";

/// A misbehaviour of the JWKS and discovery endpoints (or, with
/// [`OAuthServer::set_fault_at`], of any one path).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Read the request, then close the connection without any response.
    Down,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// Answer normally once the test opens this gate: a call kept in flight
    /// for as long as the test needs, however slow the machine.
    Hold(Gate),
    /// Answer with this status and a small JSON error body.
    Status(u16),
    /// `200`, `application/json`, with a body that is not valid JSON.
    MalformedJwks,
    /// `200` with a valid JWKS of about 4 MiB: the published keys followed by
    /// thousands of filler RSA keys (kids `filler-00000`...). On the
    /// discovery path: the normal document plus a huge `x_padding` member.
    HugeJwks,
    /// `200` with `{"keys": []}` (the discovery document is unaffected).
    EmptyKeys,
    /// `503` with a small JSON error body (`temporarily_unavailable`), and
    /// `Retry-After: <value>` when `retry_after` is given (sent verbatim: a
    /// number of seconds, an HTTP date, or garbage).
    Unavailable {
        /// The `Retry-After` header value, if any.
        retry_after: Option<String>,
    },
    /// As [`Fault::Unavailable`], but with a `text/html` body of at least
    /// [`HUGE_BODY_BYTES`]: an overloaded load balancer's error page.
    HugeUnavailable {
        /// The `Retry-After` header value, if any.
        retry_after: Option<String>,
    },
    /// `200`, `Content-Type: text/html`, body [`HTML_FAULT_BODY`]: what a
    /// captive portal or a misrouted load balancer answers.
    Html,
    /// `200` with a body of at least [`HUGE_BODY_BYTES`], in the content
    /// type the request's `Accept` asked for (as introspection chooses it):
    /// `application/jwt` or `application/token-introspection+jwt` with `a`
    /// repeated, else `application/json` with
    /// `{"active": true, "x_padding": "aaa..."}`.
    HugeBody,
    /// Answer normally, except that every JWT in an introspection answer
    /// (the `application/jwt` body, the JSON `jwt` member, the RFC 9701
    /// response and the `jwt` inside its `token_introspection`) carries a
    /// signature that does not verify with the published keys: it is made
    /// by [`WRONG_SIGNATURE_KID`] while the header keeps the `alg` and `kid`
    /// of the key that should have signed. Other paths answer normally.
    WrongSignature,
}

/// What `/token` issues as the access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenFormat {
    /// A JWT signed by the default key (see [`OAuthServer::token`]).
    #[default]
    Jwt,
    /// A random reference token (32 random bytes, base64url without
    /// padding); its "phantom" JWT, signed as a [`TokenFormat::Jwt`] token
    /// would be, is what introspection hands out.
    Opaque,
}

/// How a client authenticated to an endpoint (RFC 6749 section 2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: an `Authorization: Basic` header.
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` form parameters.
    Post,
}

/// One introspection request that passed client authentication, as the
/// server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionRequest {
    /// The authenticated client.
    pub client_id: String,
    /// How it authenticated.
    pub auth_method: ClientAuth,
    /// The `token` form parameter (empty when it was missing: such a
    /// request is answered `400 invalid_request`).
    pub token: String,
    /// The `token_type_hint` form parameter, if any.
    pub token_type_hint: Option<String>,
    /// The `Accept` header (several joined with `", "`), if any.
    pub accept: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
}

/// A registered OAuth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// `client_secret`.
    pub secret: String,
    /// The scopes it may ask for; all of them are granted when it asks for
    /// none.
    pub scopes: Vec<String>,
}

impl Client {
    /// A client; `scopes` is space-separated.
    pub fn new(id: &str, secret: &str, scopes: &str) -> Client {
        Client {
            id: id.to_owned(),
            secret: secret.to_owned(),
            scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        }
    }
}

/// The default client: `demo` / `demo-secret`, scopes `orders:read orders:write`.
pub fn default_client() -> Client {
    Client::new("demo", "demo-secret", "orders:read orders:write")
}

pub(crate) struct State {
    addr: SocketAddr,
    issuer: Option<String>,
    published: Vec<String>,
    default_kid: String,
    fault: Fault,
    path_faults: HashMap<String, Fault>,
    calls: HashMap<String, usize>,
    clients: Vec<Client>,
    audience: String,
    ttl: u64,
    token_format: TokenFormat,
    /// Tokens issued by `/token`, [`OAuthServer::token`] or
    /// [`OAuthServer::opaque_token`], by the token string.
    issued: HashMap<String, Issued>,
    /// `Some(value)`: the `Cache-Control` of every introspection answer.
    introspection_cache_control: Option<String>,
    introspections: Vec<IntrospectionRequest>,
}

/// What the server remembers of an issued token.
#[derive(Debug, Clone)]
struct Issued {
    /// The claims of its JWT.
    claims: Value,
    /// Its JWT: the token itself, or the phantom JWT of an opaque token.
    jwt: String,
    /// Whether the token is an opaque reference to `jwt`.
    opaque: bool,
}

impl State {
    fn issuer(&self) -> String {
        self.issuer.clone().unwrap_or_else(|| format!("http://{}", self.addr))
    }

    fn jwks(&self) -> Value {
        let kids: Vec<&str> = self.published.iter().map(String::as_str).collect();
        jwks_for(&kids)
    }

    fn fault_for(&self, path: &str) -> Fault {
        match self.path_faults.get(path) {
            Some(f) => f.clone(),
            None if path == JWKS_PATH || path == DISCOVERY_PATH => self.fault.clone(),
            None => Fault::None,
        }
    }

    fn default_claims(&self) -> Map<String, Value> {
        let now = now_secs();
        let mut claims = Map::new();
        claims.insert("iss".into(), Value::from(self.issuer()));
        claims.insert("aud".into(), Value::from(self.audience.as_str()));
        claims.insert("sub".into(), Value::from(DEFAULT_SUBJECT));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(now + self.ttl));
        claims
    }

    /// Signs `claims` with the default key (its natural algorithm: RS256 for
    /// RSA) and records the token for introspection: the JWT itself, or with
    /// [`TokenFormat::Opaque`] a new opaque token whose phantom JWT it is.
    fn sign_and_record(&mut self, claims: Value, format: TokenFormat) -> String {
        let kid = self.default_kid.clone();
        let spec = TokenSpec::new(key_type(&kid).default_alg(), &kid).claims(claims.clone());
        let jwt = mint(&spec);
        let (token, opaque) = match format {
            TokenFormat::Jwt => (jwt.clone(), false),
            TokenFormat::Opaque => {
                let mut raw = [0u8; 32];
                keys::random_bytes(&mut raw);
                (b64url_encode(&raw), true)
            }
        };
        self.issued.insert(token.clone(), Issued { claims, jwt, opaque });
        token
    }

    /// The claims and JWT of `token` if it was issued here, is not revoked
    /// and has not expired (a token without `exp` never expires).
    fn active(&self, token: &str) -> Option<&Issued> {
        self.issued
            .get(token)
            .filter(|i| i.claims.get("exp").and_then(Value::as_u64).unwrap_or(u64::MAX) > now_secs())
    }
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(state: &Shared) -> MutexGuard<'_, State> {
    // Every update is a single assignment or insertion: a panic while holding
    // the lock cannot leave the state inconsistent.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The current time in seconds since the Unix epoch (a JWT `NumericDate`),
/// the clock of every minted `iat`/`exp`.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A running test OAuth/OIDC server. Stops on drop.
pub struct OAuthServer {
    state: Shared,
    server: BackgroundServer,
}

impl std::fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthServer")
            .field("addr", &self.addr())
            .field("issuer", &self.issuer())
            .field("published", &self.published())
            .finish()
    }
}

impl OAuthServer {
    /// Binds `127.0.0.1:0` and starts serving on a background thread.
    ///
    /// # Panics
    /// If the socket cannot be bound or the runtime cannot be built.
    pub fn start() -> OAuthServer {
        Self::bind(([127, 0, 0, 1], 0).into())
    }

    /// Binds `addr` (a fixed port, for the demo) and starts serving on a
    /// background thread.
    ///
    /// # Panics
    /// If the socket cannot be bound or the runtime cannot be built.
    pub fn bind(addr: SocketAddr) -> OAuthServer {
        let listener = BoundListener::bind(addr, "oauth server");
        let state: Shared = Arc::new(Mutex::new(State {
            addr: listener.addr(),
            issuer: None,
            published: DEFAULT_PUBLISHED.iter().map(|k| (*k).to_owned()).collect(),
            default_kid: DEFAULT_KID.to_owned(),
            fault: Fault::None,
            path_faults: HashMap::new(),
            calls: HashMap::new(),
            clients: vec![default_client()],
            audience: DEFAULT_AUDIENCE.to_owned(),
            ttl: DEFAULT_TTL,
            token_format: TokenFormat::Jwt,
            issued: HashMap::new(),
            introspection_cache_control: None,
            introspections: Vec::new(),
        }));
        let handler_state = Arc::clone(&state);
        let server = listener.serve(move |req| server::handle(req, Arc::clone(&handler_state)));
        OAuthServer { state, server }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://<addr><path>`: where `path` is served, whatever the issuer.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// The issuer: `http://<addr>` unless [set](OAuthServer::set_issuer).
    pub fn issuer(&self) -> String {
        lock(&self.state).issuer()
    }

    /// Sets the issuer: the `iss` of tokens minted from now on and the base
    /// of every URL in the discovery document (the paths stay the ones this
    /// server serves). An empty string restores the default.
    pub fn set_issuer(&self, issuer: &str) {
        lock(&self.state).issuer = (!issuer.is_empty()).then(|| issuer.to_owned());
    }

    /// `<issuer>/jwks`, as the discovery document advertises it.
    pub fn jwks_uri(&self) -> String {
        format!("{}{JWKS_PATH}", self.issuer())
    }

    /// The kid of the key `/token` and [`OAuthServer::token`] sign with.
    pub fn default_kid(&self) -> String {
        lock(&self.state).default_kid.clone()
    }

    /// Switches the default signing key (it is not published automatically:
    /// call [`OAuthServer::publish`] too for a proper rotation). A non-RSA
    /// key signs with its own algorithm (ES256, ES384, EdDSA).
    ///
    /// # Panics
    /// If `kid` is not a fixture key.
    pub fn set_default_kid(&self, kid: &str) {
        key_type(kid);
        lock(&self.state).default_kid = kid.to_owned();
    }

    /// Adds fixture key `kid` to the JWKS (after the keys already there; a
    /// no-op if it is published).
    ///
    /// # Panics
    /// If `kid` is not a fixture key.
    pub fn publish(&self, kid: &str) {
        key_type(kid);
        let mut st = lock(&self.state);
        if !st.published.iter().any(|k| k == kid) {
            st.published.push(kid.to_owned());
        }
    }

    /// Removes fixture key `kid` from the JWKS (a no-op if it is not
    /// published). It can still sign.
    ///
    /// # Panics
    /// If `kid` is not a fixture key.
    pub fn retire(&self, kid: &str) {
        key_type(kid);
        lock(&self.state).published.retain(|k| k != kid);
    }

    /// The kids in the JWKS, in order.
    pub fn published(&self) -> Vec<String> {
        lock(&self.state).published.clone()
    }

    /// The JWKS `/jwks` serves when healthy.
    pub fn jwks_json(&self) -> Value {
        lock(&self.state).jwks()
    }

    /// A JWKS of any fixture keys, published or not (for a native Envoy
    /// `jwt_authn` `local_jwks`, or a filter's inline JWKS).
    ///
    /// # Panics
    /// If one of them is not a fixture key.
    pub fn jwks_for(&self, kids: &[&str]) -> Value {
        jwks_for(kids)
    }

    /// The SubjectPublicKeyInfo PEM of fixture key `kid`.
    ///
    /// # Panics
    /// If `kid` is not a fixture key.
    pub fn public_key_pem(&self, kid: &str) -> String {
        fixture_public_key_pem(kid)
    }

    /// Sets the fault of the JWKS and discovery endpoints and clears every
    /// per-path fault ([`Fault::None`] makes everything healthy again).
    ///
    /// # Panics
    /// On `Fault::Status` with a code outside 100..=999, or a
    /// `Fault::Unavailable` whose `retry_after` is not a valid header value.
    pub fn set_fault(&self, fault: Fault) {
        check_fault(&fault);
        let mut st = lock(&self.state);
        st.fault = fault;
        st.path_faults.clear();
    }

    /// Sets the fault of one path (any path, `/token` included), overriding
    /// the one [`OAuthServer::set_fault`] set for it. On paths other than
    /// the JWKS and discovery, `MalformedJwks`, `HugeJwks` and `EmptyKeys`
    /// serve the same bodies as on `/jwks`. The faults meant for
    /// introspection (`Unavailable`, `HugeUnavailable`, `Html`, `HugeBody`,
    /// `WrongSignature`)
    /// are typically set on [`INTROSPECT_PATH`].
    ///
    /// # Panics
    /// On `Fault::Status` with a code outside 100..=999, or a
    /// `Fault::Unavailable` whose `retry_after` is not a valid header value.
    pub fn set_fault_at(&self, path: &str, fault: Fault) {
        check_fault(&fault);
        lock(&self.state).path_faults.insert(path.to_owned(), fault);
    }

    /// How many requests have arrived for `path` (query string ignored),
    /// whatever their method or outcome, faults included.
    pub fn calls(&self, path: &str) -> usize {
        lock(&self.state).calls.get(path).copied().unwrap_or_default()
    }

    /// How many requests have arrived, all paths together.
    pub fn total_calls(&self) -> usize {
        lock(&self.state).calls.values().sum()
    }

    /// Sets every call count back to zero.
    pub fn reset_calls(&self) {
        lock(&self.state).calls.clear();
    }

    /// Replaces the registered clients.
    pub fn set_clients(&self, clients: Vec<Client>) {
        lock(&self.state).clients = clients;
    }

    /// Registers one more client (replacing one with the same id).
    pub fn add_client(&self, client: Client) {
        let mut st = lock(&self.state);
        st.clients.retain(|c| c.id != client.id);
        st.clients.push(client);
    }

    /// Sets the `aud` of tokens minted from now on (default `"api"`).
    pub fn set_audience(&self, audience: &str) {
        lock(&self.state).audience = audience.to_owned();
    }

    /// Sets the lifetime of tokens minted from now on (default 300 s).
    pub fn set_token_ttl(&self, secs: u64) {
        lock(&self.state).ttl = secs;
    }

    /// Sets what `/token` issues from now on (default [`TokenFormat::Jwt`]).
    pub fn set_token_format(&self, format: TokenFormat) {
        lock(&self.state).token_format = format;
    }

    /// Makes a token (JWT or opaque) `/introspect` reports inactive from now
    /// on, as `POST /revoke` does. An opaque token loses its phantom JWT.
    pub fn revoke(&self, token: &str) {
        lock(&self.state).issued.remove(token);
    }

    /// The phantom JWT of opaque token `opaque`: `None` if this server did
    /// not issue it as an opaque token, or it was revoked (an expired token
    /// still has one).
    pub fn phantom_jwt(&self, opaque: &str) -> Option<String> {
        lock(&self.state)
            .issued
            .get(opaque)
            .filter(|i| i.opaque)
            .map(|i| i.jwt.clone())
    }

    /// Sets the `Cache-Control` of introspection answers: `Some(value)`
    /// puts exactly `value` on every answer, active or not; `None` restores
    /// the default (`max-age=<seconds until exp>` on an active answer,
    /// nothing on an inactive one).
    ///
    /// # Panics
    /// If `value` is not a valid header value.
    pub fn set_introspection_cache_control(&self, value: Option<&str>) {
        if let Some(v) = value {
            assert!(
                hyper::header::HeaderValue::from_str(v).is_ok(),
                "Cache-Control {v:?}: not a valid header value"
            );
        }
        lock(&self.state).introspection_cache_control = value.map(str::to_owned);
    }

    /// Every introspection request that passed client authentication since
    /// start (or [`OAuthServer::clear_introspection_requests`]), in arrival
    /// order. Requests answered by a fault other than `Slow` and
    /// `WrongSignature` are not authenticated, so not recorded (they are
    /// [counted](OAuthServer::calls)).
    pub fn introspection_requests(&self) -> Vec<IntrospectionRequest> {
        lock(&self.state).introspections.clone()
    }

    /// Forgets the recorded introspection requests.
    pub fn clear_introspection_requests(&self) {
        lock(&self.state).introspections.clear();
    }

    /// Writes exactly the token `spec` describes (see [`TokenSpec`]); the
    /// server does not remember it (it introspects as inactive).
    ///
    /// # Panics
    /// If the spec names a fixture key that does not exist.
    pub fn mint(&self, spec: TokenSpec) -> String {
        mint(&spec)
    }

    /// The default claims: `iss` (the issuer), `aud` (`"api"` unless
    /// [set](OAuthServer::set_audience)), `sub: "alice"`, `iat` now, `exp`
    /// now + TTL.
    pub fn default_claims(&self) -> Value {
        Value::Object(lock(&self.state).default_claims())
    }

    /// The default claims with the members of `overrides` added or replacing
    /// them; a `null` member removes that claim.
    ///
    /// # Panics
    /// If `overrides` is not a JSON object.
    pub fn claims(&self, overrides: Value) -> Value {
        Value::Object(merge(lock(&self.state).default_claims(), overrides))
    }

    /// A valid token: signed by the default key (RS256 with `rsa-1`), header
    /// `{"alg", "kid", "typ": "JWT"}`, claims [`OAuthServer::claims`]`(claims)`.
    /// It introspects as active.
    ///
    /// # Panics
    /// If `claims` is not a JSON object.
    pub fn token(&self, claims: Value) -> String {
        let mut st = lock(&self.state);
        let merged = Value::Object(merge(st.default_claims(), claims));
        st.sign_and_record(merged, TokenFormat::Jwt)
    }

    /// A new opaque token whose phantom JWT is what
    /// [`OAuthServer::token`]`(claims)` would return (that JWT is not itself
    /// recorded as issued). It introspects as active until the JWT's `exp`.
    ///
    /// # Panics
    /// If `claims` is not a JSON object.
    pub fn opaque_token(&self, claims: Value) -> String {
        let mut st = lock(&self.state);
        let merged = Value::Object(merge(st.default_claims(), claims));
        st.sign_and_record(merged, TokenFormat::Opaque)
    }

    /// A `Bearer <token>` header value for [`OAuthServer::token`]`(claims)`.
    pub fn bearer(&self, claims: Value) -> String {
        format!("Bearer {}", self.token(claims))
    }
}

fn check_fault(fault: &Fault) {
    match fault {
        Fault::Status(code) => assert!(
            (100..=999).contains(code),
            "Fault::Status({code}): not a valid HTTP status code"
        ),
        Fault::Unavailable {
            retry_after: Some(value),
        }
        | Fault::HugeUnavailable {
            retry_after: Some(value),
        } => assert!(
            hyper::header::HeaderValue::from_str(value).is_ok(),
            "Fault::Unavailable: Retry-After {value:?} is not a valid header value"
        ),
        _ => {}
    }
}

fn merge(mut base: Map<String, Value>, overrides: Value) -> Map<String, Value> {
    let Value::Object(overrides) = overrides else {
        panic!("claims must be a JSON object, got {overrides}");
    };
    for (k, v) in overrides {
        if v.is_null() {
            base.remove(&k);
        } else {
            base.insert(k, v);
        }
    }
    base
}

/// Used by the server for JSON bodies.
pub(crate) fn discovery_document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
        "revocation_endpoint": format!("{issuer}{REVOKE_PATH}"),
        "registration_endpoint": format!("{issuer}{REGISTER_PATH}"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_signing_alg_values_supported": ["RS256", "ES256", "ES384", "EdDSA"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256", "ES384", "EdDSA"],
    })
}
