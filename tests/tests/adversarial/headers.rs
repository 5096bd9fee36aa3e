//! The adversarial suite: hostile headers against the whole shipped chain.

use super::*;

fn header_cases<'a>(oauth: &'a OAuthServer, introspections: &'a std::cell::Cell<usize>) -> Vec<Case<'a>> {
    let opaque = || oauth.opaque_token(json!({"scope": "orders:read"}));
    let auth = |path: &str, value: &str| Request::get(path).header("Authorization", value);
    let with_token = |request: Request| request.header("Authorization", &format!("Bearer {}", opaque()));
    let no_identity = |case: Case<'a>| {
        case.upstream_header("x-user-id", &[])
            .upstream_header("x-user-scope", &[])
            .upstream_header("x-jwt-payload", &[])
    };
    let count_introspections = move || introspections.set(oauth.introspection_requests().len());
    let not_introspected = move |_: &Response, _: &[RecordedRequest]| {
        let now = oauth.introspection_requests().len();
        if now == introspections.get() {
            Ok(())
        } else {
            Err(format!("the IdP was asked {} times", now - introspections.get()))
        }
    };
    let (token, other) = (opaque(), opaque());
    let jwt = oauth.phantom_jwt(&token).expect("a phantom JWT");
    let payload = segments(&jwt).1;
    let many_headers = (0..150).fold(Request::get("/public/x"), |r, i| r.header(&format!("x-h{i}"), "v"));
    let big_headers = (0..70).fold(Request::get("/public/x"), |r, i| {
        r.header(&format!("x-big{i}"), &"b".repeat(1000))
    });

    vec![
        Case::allowed("control: a valid opaque token", bearer("/orders", &token))
            .upstream_header("authorization", &[&format!("Bearer {jwt}")])
            .upstream_header("x-user-id", &["alice"]),
        // duplicate credentials
        Case::refused(
            "two Authorization headers, the same token",
            bearer("/orders", &token).header("Authorization", &format!("Bearer {token}")),
            400,
            Some(INVALID_REQUEST),
        ),
        Case::refused(
            "two Authorization headers, valid then forged",
            bearer("/orders", &token).header("Authorization", "Bearer forged-token-0123456789"),
            400,
            Some(INVALID_REQUEST),
        ),
        Case::refused(
            "two Authorization headers, forged then valid",
            bearer("/orders", "forged-token-0123456789").header("Authorization", &format!("Bearer {token}")),
            400,
            Some(INVALID_REQUEST),
        ),
        Case::refused(
            "authorization and AUTHORIZATION",
            Request::get("/orders")
                .header("authorization", &format!("Bearer {token}"))
                .header("AUTHORIZATION", &format!("Bearer {other}")),
            400,
            Some(INVALID_REQUEST),
        ),
        Case::refused(
            "two Authorization headers on a token-optional route",
            bearer("/public/x", &token).header("Authorization", &format!("Bearer {other}")),
            400,
            Some(INVALID_REQUEST),
        ),
        Case::refused(
            "two bearer tokens comma-joined in one header",
            auth("/orders", &format!("Bearer {token}, Bearer {other}")),
            400,
            Some(INVALID_REQUEST),
        ),
        // identity headers a client must never control
        Case::allowed(
            "spoofed identity headers in mixed case, with a valid token",
            with_token(Request::get("/orders"))
                .header("x-user-id", "admin")
                .header("X-User-Id", "root")
                .header("X-USER-ID", "mallory")
                .header("x-User-Scope", "admin orders:write")
                .header("X-JWT-Payload", "eyJzdWIiOiJhZG1pbiJ9"),
        )
        .upstream_header("x-user-id", &["alice"])
        .upstream_header("x-user-scope", &["orders:read"]),
        Case::allowed(
            "spoofed x-jwt-payload with a valid token",
            bearer("/orders", &token).header("X-Jwt-Payload", "eyJzdWIiOiJhZG1pbiJ9"),
        )
        .upstream_header("x-jwt-payload", &[&payload]),
        no_identity(Case::allowed(
            "spoofed identity headers on a public route",
            Request::get("/public/x")
                .header("X-User-Id", "admin")
                .header("x-user-scope", "admin")
                .header("x-jwt-payload", "eyJzdWIiOiJhZG1pbiJ9"),
        )),
        Case::refused(
            "underscore variant x_user_id",
            Request::get("/public/x").header("x_user_id", "admin"),
            400,
            None,
        ),
        Case::refused(
            "underscore variant X_User_Scope with a valid token",
            with_token(Request::get("/orders")).header("X_User_Scope", "admin"),
            400,
            None,
        ),
        Case::allowed(
            "internal header prefix",
            Request::get("/public/x").header("X-Internal-Role", "admin"),
        )
        .upstream_header("x-internal-role", &[]),
        Case::allowed(
            "non-UTF-8 x-user-id with a valid token",
            with_token(Request::get("/orders")).header_bytes(b"x-user-id", b"\xff\xfeadmin"),
        )
        .upstream_header("x-user-id", &["alice"]),
        no_identity(Case::allowed(
            "non-UTF-8 identity headers on a public route",
            Request::get("/public/x")
                .header_bytes(b"X-User-Id", b"adm\xe9n")
                .header_bytes(b"x-jwt-payload", b"\x80\x81"),
        )),
        // bytes in header values
        Case::refused(
            "control byte in a header value",
            Request::get("/public/x").header_bytes(b"X-Note", b"a\x01b"),
            400,
            None,
        ),
        Case::refused(
            "NUL in the Authorization value",
            Request::get("/orders").header_bytes(b"Authorization", format!("Bearer {token}\0x").as_bytes()),
            400,
            None,
        ),
        Case::refused(
            "non-UTF-8 bearer token",
            Request::get("/orders").header_bytes(b"Authorization", b"Bearer \xff\xfe\xfd\xfc-token-0123456789"),
            401,
            Some(INVALID_TOKEN),
        ),
        // Envoy replaces an obs-fold with a space (RFC 9112 5.2 allows that instead of a 400):
        // the folded value is an ordinary credential, checked like any other.
        Case::allowed(
            "obs-fold continuation in Authorization, valid token",
            Request::get("/orders").header_bytes(b"Authorization", format!("Bearer\r\n {token}").as_bytes()),
        )
        .upstream_header("authorization", &[&format!("Bearer {jwt}")]),
        Case::refused(
            "obs-fold continuation in Authorization, forged token",
            Request::get("/orders").header_bytes(b"Authorization", b"Bearer\r\n forged-token-0123456789"),
            401,
            Some(INVALID_TOKEN),
        ),
        Case::refused(
            "space before the colon of a header name",
            Request::get("/public/x").header_bytes(b"X-User-Id ", b"admin"),
            400,
            None,
        ),
        // sizes
        Case::refused(
            "bearer token over max_token_bytes, never sent to the IdP",
            bearer("/orders", &"a".repeat(10_000)),
            401,
            Some(INVALID_TOKEN),
        )
        .setup(count_introspections)
        .check(not_introspected),
        Case::refused(
            "oversized Authorization (100 KB)",
            bearer("/orders", &"a".repeat(100_000)),
            431,
            None,
        ),
        Case::refused("headers over 60 KB in total", big_headers, 431, None),
        Case::refused("150 headers", many_headers, 431, None),
        // credentials in the wrong place or shape
        Case::refused("no token", Request::get("/orders"), 401, Some(BARE)),
        Case::refused(
            "the Bearer scheme without a token",
            auth("/orders", "Bearer"),
            401,
            Some(BARE),
        ),
        Case::refused(
            "Basic credentials",
            auth("/orders", "Basic YWxpY2U6c2VjcmV0"),
            401,
            Some(BARE),
        ),
        // RFC 6750 2.1: "Bearer" 1*SP b64token. With a tab it is a bearer credential the gateway
        // cannot read, refused as such (not as a missing one: a lenient upstream could read it).
        Case::refused(
            "a tab between scheme and token",
            auth("/orders", &format!("Bearer\t{token}")),
            401,
            Some(INVALID_TOKEN),
        ),
        Case::refused(
            "the token in Proxy-Authorization",
            Request::get("/orders").header("Proxy-Authorization", &format!("Bearer {token}")),
            401,
            Some(BARE),
        ),
        Case::refused(
            "the token in the query string",
            Request::get(&format!("/orders?access_token={token}")),
            401,
            Some(BARE),
        ),
        Case::refused(
            "the token in X-Access-Token",
            Request::get("/orders").header("X-Access-Token", &token),
            401,
            Some(BARE),
        ),
        Case::refused(
            "a validly signed JWT the IdP never issued (JWTs are introspected too)",
            bearer("/orders", &Mint { oauth }.valid(json!({"sub": "admin"}))),
            401,
            Some(INVALID_TOKEN),
        ),
        // CORS: a preflight is answered by the gateway; anything else that looks like one is not
        // a way around the token.
        Case::refused(
            "a CORS preflight from an allowed origin is answered by the gateway",
            Request::options("/orders")
                .header("Origin", "http://localhost:3000")
                .header("Access-Control-Request-Method", "DELETE"),
            204,
            None,
        ),
        Case::refused(
            "a CORS preflight from another origin",
            Request::options("/orders")
                .header("Origin", "https://evil.example")
                .header("Access-Control-Request-Method", "GET"),
            403,
            None,
        ),
        Case::refused(
            "OPTIONS with an Origin but no Access-Control-Request-Method needs a token",
            Request::options("/orders").header("Origin", "http://localhost:3000"),
            401,
            Some(BARE),
        ),
        Case::refused(
            "GET with preflight headers needs a token",
            Request::get("/orders")
                .header("Origin", "http://localhost:3000")
                .header("Access-Control-Request-Method", "GET"),
            401,
            Some(BARE),
        ),
        // framing
        // Envoy joins two Host headers into one comma-separated value (RFC 9112 3.2 says 400);
        // whatever the host, a request without credentials stays out.
        Case::refused(
            "two Host headers without a token",
            Request::get("/orders")
                .header("Host", DEFAULT_HOST)
                .header("Host", "admin.internal"),
            401,
            Some(BARE),
        ),
        Case::refused(
            "Content-Length and Transfer-Encoding together (smuggling)",
            Request::post("/public/x", "0\r\n\r\nGET /orders HTTP/1.1\r\nHost: x\r\n\r\n")
                .header("Content-Length", "5")
                .header("Transfer-Encoding", "chunked"),
            400,
            None,
        ),
    ]
}

#[test]
fn headers_family() {
    let backends = Backends::start();
    let gw = Chain::shipped(&backends).start();
    let introspections = std::cell::Cell::new(0);
    let mut family = Family::new("headers", &gw);
    family.run(header_cases(&backends.oauth, &introspections));
    let token = backends.oauth.opaque_token(json!({"scope": "orders:read"}));
    family.finish(bearer("/orders", &token));
}
