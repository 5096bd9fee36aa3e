//! The adversarial suite: path and scope tricks against scope-gate.

use super::*;

/// `%XX` decoded (repeatedly, so double encoding too), overlong UTF-8 for `.` and `/` read as
/// them, lowercased, backslashes read as slashes: the most generous reading an upstream might
/// give a path.
fn generous_reading(path: &str) -> String {
    let mut text = path.to_ascii_lowercase().replace("%c0%ae", ".").replace("%c0%af", "/");
    for _ in 0..3 {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'%', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        text = String::from_utf8_lossy(&out).into_owned();
    }
    text.to_ascii_lowercase().replace('\\', "/")
}

/// Whether an upstream reading `path` generously could serve `/admin` from it.
fn reaches_admin(path: &str) -> bool {
    let path = generous_reading(path);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment.split(';').next().unwrap_or_default() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    segments.first() == Some(&"admin")
}

/// Path tricks against `/admin`, by a token without the `admin` scope, and what the gateway
/// does with each: refused (status), or passed on to a path that is not `/admin`.
const ADMIN_TRICKS: &[(&str, u16)] = &[
    ("/admin", 403),
    ("/admin/users", 403),
    ("/public/../admin", 403),
    ("/public/./../admin", 403),
    ("/public/%2e%2e/admin", 403),
    ("/public/%2E%2E/admin", 403),
    ("/public/.%2e/admin", 403),
    ("/%61dmin", 403),
    ("/ad%6Din/users", 403),
    ("/ADMIN", 403),
    ("/Admin/users", 403),
    ("//admin", 403),
    ("///admin//users", 403),
    ("/./admin", 403),
    ("/admin/.", 403),
    ("/admin?/public/", 403),
    ("/admin?x=/public/../orders", 403),
    // Envoy redirects escaped slashes to the unescaped path, which the client must ask again.
    ("/admin%2f", 307),
    ("/public%2f..%2fadmin", 307),
    ("/public/..%2fadmin", 307),
    ("/public/..%5cadmin", 307),
    ("/public/%2e%2e%2fadmin", 307),
    ("/%2fadmin", 307),
    ("/public/..\\admin", 403),
    ("/admin;/public/", 400),
    // Envoy's normalisation reads `..;` as `..`: this is /admin by the time the filters run.
    ("/public/..;/admin", 403),
    ("/admin%00/public", 400),
    // `..;` is `..` to Tomcat, and an upstream that decodes first sees it in `..%3B`.
    ("/public/..%3B/admin", 400),
    ("/public/..%3b/admin", 400),
    ("/admin%0d%0a/public", 400),
    ("/admin%252f", 400),
    ("/admin#/public/", 400),
    // Overlong UTF-8 for '.': dot segments to a decoder that accepts it (CWE-176).
    ("/public/%c0%ae%c0%ae/admin", 400),
    ("/admin\u{0}", 400),
];

fn scope_cases(oauth: &OAuthServer) -> Vec<Case<'_>> {
    let m = Mint { oauth };
    let reader = m.valid(json!({}));
    let admin = m.valid(json!({"scope": "admin orders:read"}));
    let as_reader = |path: &str| bearer(path, &reader);
    let not_admin = |_: &Response, seen: &[RecordedRequest]| match seen.iter().find(|r| reaches_admin(&r.path)) {
        Some(r) => Err(format!("the upstream was asked for {:?}, an /admin path", r.path)),
        None => Ok(()),
    };
    let admin_denied = insufficient_scope("admin");
    let mut cases = vec![
        Case::allowed("control: an admin token on /admin", bearer("/admin/users", &admin)),
        Case::allowed("control: a reader on /orders", as_reader("/orders/1")),
        Case::allowed("control: public without a token", Request::get("/public/status")),
    ];
    for (path, status) in ADMIN_TRICKS {
        let challenge = (*status == 403).then_some(admin_denied.as_str());
        cases.push(Case::refused(format!("reader on {path:?}"), as_reader(path), *status, challenge).check(not_admin));
    }
    cases.extend([
        // Dot segments and slashes that legitimately land elsewhere are passed on, normalised.
        Case::allowed("/admin/../public/x lands on /public/x", as_reader("/admin/../public/x"))
            .check(not_admin)
            .check(|_, seen| match seen.first().map(|r| r.path.as_str()) {
                Some("/public/x") => Ok(()),
                other => Err(format!("upstream path {other:?}, expected /public/x")),
            }),
        Case::allowed(
            "/public//../admin lands on /public/admin",
            as_reader("/public//../admin"),
        )
        .check(not_admin),
        Case::refused(
            "no token on /public/../admin",
            Request::get("/public/../admin"),
            401,
            Some(BARE),
        ),
        Case::refused(
            "no token on /public/%c0%ae%c0%ae/admin (overlong UTF-8 dots)",
            Request::get("/public/%c0%ae%c0%ae/admin"),
            400,
            None,
        )
        .check(not_admin),
        Case::refused(
            "no token on /PUBLIC/status",
            Request::get("/PUBLIC/status"),
            401,
            Some(BARE),
        ),
        Case::refused(
            "absolute-form request target to /admin",
            bearer("http://gateway.test/admin", &reader),
            403,
            Some(&admin_denied),
        )
        .check(not_admin),
        Case::refused(
            "absolute-form request target naming another host",
            bearer("http://admin.internal/public/../admin", &reader),
            403,
            Some(&admin_denied),
        )
        .check(not_admin),
        Case::refused(
            "no token on /public%2f..%2forders",
            Request::get("/public%2f..%2forders"),
            307,
            None,
        ),
        // methods
        Case::refused(
            "HEAD /admin",
            Request::new("HEAD", "/admin").header("Authorization", &format!("Bearer {reader}")),
            403,
            Some(&admin_denied),
        ),
        Case::refused(
            "POST /orders without orders:write",
            Request::post("/orders", "{}")
                .header("Content-Type", "application/json")
                .header("Authorization", &format!("Bearer {reader}")),
            403,
            Some(&insufficient_scope("orders:write")),
        ),
        // Methods are case-sensitive (RFC 9110 9.1); Envoy's codec refuses a lowercase one.
        Case::refused(
            "lowercase post /orders without orders:write",
            Request::new("post", "/orders")
                .header("Content-Type", "application/json")
                .header("Authorization", &format!("Bearer {reader}")),
            400,
            None,
        ),
        // scope claims
        Case::refused(
            "scope orders:readx",
            bearer("/orders", &m.valid(json!({"scope": "orders:readx"}))),
            403,
            Some(&insufficient_scope("orders:read")),
        ),
        Case::refused(
            "scope ORDERS:READ",
            bearer("/orders", &m.valid(json!({"scope": "ORDERS:READ"}))),
            403,
            Some(&insufficient_scope("orders:read")),
        ),
        Case::refused(
            "scope admin as a prefix (adminx)",
            bearer("/admin", &m.valid(json!({"scope": "adminx"}))),
            403,
            Some(&admin_denied),
        ),
        Case::refused(
            "scope admin in an unread claim",
            bearer("/admin", &m.valid(json!({"scopes": "admin"}))),
            403,
            Some(&admin_denied),
        ),
        Case::refused(
            "scope admin tab-separated",
            bearer("/admin", &m.valid(json!({"scope": "orders:read\tadmin"}))),
            403,
            Some(&admin_denied),
        ),
        Case::refused(
            "scope array element with a space",
            bearer("/admin", &m.valid(json!({"scope": ["orders:read admin"]}))),
            403,
            Some(&admin_denied),
        ),
        Case::refused(
            "scope as an object",
            bearer("/admin", &m.valid(json!({"scope": {"admin": true}}))),
            403,
            Some(&admin_denied),
        ),
        Case::allowed(
            "scp array with admin",
            bearer("/admin", &m.valid(json!({"scope": null, "scp": ["admin"]}))),
        ),
    ]);
    cases
}

#[test]
fn scope_family() {
    let backends = Backends::start();
    let mut chain = Chain::jwt(&backends);
    // The shipped rules, plus an /admin rule, and a catch-all for reads so that a path that
    // slips past the /admin rule would be visible at the upstream instead of denied as unmatched.
    // Paths match case-insensitively, as they must for upstreams that treat /Admin as /admin.
    let rules = chain.configs["scope_gate"]["rules"].clone();
    let mut rules: Vec<Value> = rules.as_array().cloned().expect("rules");
    rules.insert(
        1,
        json!({"id": "admin", "match": {"prefix": "/admin"}, "requires": {"type": "any_of", "scopes": ["admin"]}}),
    );
    rules.push(
        json!({"id": "reads", "match": {"prefix": "/", "methods": ["GET", "HEAD"]},
                      "requires": {"type": "any_of", "scopes": ["orders:read"]}}),
    );
    chain.merge("scope_gate", json!({"rules": rules, "case_insensitive_paths": true}));
    let gw = chain.start();
    let mut family = Family::new("scope", &gw);
    family.run(scope_cases(&backends.oauth));
    let reader = Mint { oauth: &backends.oauth }.valid(json!({}));
    family.finish(bearer("/orders", &reader));
}
