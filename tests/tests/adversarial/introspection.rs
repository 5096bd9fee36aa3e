//! The adversarial suite: what the IdP answers phantom-token, through an IdP front that relays to the test OAuth server or answers what a case needs.

use super::*;

/// How the front answers the next introspection requests.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// Relay to the test OAuth server (which answers with whatever fault it has).
    Relay,
    /// These exact bytes, then close the connection.
    Raw(Vec<u8>),
    /// Read the request, then reset the connection (TCP RST).
    Reset,
}

/// `HTTP/1.1 <status>` with a content type and a body, framed by `Content-Length`.
fn http_answer(status: u16, content_type: &str, body: &[u8]) -> Answer {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    Answer::Raw(out)
}

/// A loopback HTTP/1.1 server in front of the OAuth server's introspection endpoint. Stops on
/// drop.
struct IdpFront {
    addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IdpFront {
    fn start(oauth: SocketAddr) -> IdpFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the IdP front");
        let addr = listener.local_addr().expect("the IdP front's address");
        let answer = Arc::new(Mutex::new(Answer::Relay));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (answer, stop) = (Arc::clone(&answer), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let answer = answer.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    std::thread::spawn(move || serve(stream, oauth, answer));
                }
            })
        };
        IdpFront {
            addr,
            answer,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) = answer;
    }
}

impl Drop for IdpFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream, oauth: SocketAddr, answer: Answer) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    match answer {
        Answer::Relay => {
            // The OAuth server closing without an answer (Fault::Down) is passed on the same way.
            if let Ok(response) = http::send(oauth, &request) {
                let _ = stream.write_all(&response_bytes(&response));
            }
        }
        Answer::Raw(bytes) => {
            let _ = stream.write_all(&bytes);
        }
        Answer::Reset => {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Reads one HTTP/1.1 request (Content-Length or chunked body) as a [`Request`] to relay.
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut buf).ok().filter(|n| *n > 0)?;
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let (method, path) = (start.next()?.to_owned(), start.next()?.to_owned());
    let mut request = Request::new(&method, &path);
    let (mut length, mut chunked) = (0usize, false);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let (name, value) = (name.trim(), value.trim());
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok()?,
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" | "keep-alive" => {}
            _ => request = request.header(name, value),
        }
    }
    let mut body = raw.split_off(head_end + 4);
    loop {
        let done = if chunked {
            body.ends_with(b"0\r\n\r\n")
        } else {
            body.len() >= length
        };
        if done {
            break;
        }
        let n = stream.read(&mut buf).ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&buf[..n]);
    }
    request.body = if chunked {
        http::decode_chunked(&body).ok()?
    } else {
        body
    };
    Some(request)
}

fn response_bytes(response: &Response) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} X\r\n", response.status).into_bytes();
    for (name, value) in &response.headers {
        if ["content-length", "transfer-encoding", "connection"].contains(&name.as_str()) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\nConnection: close\r\n\r\n", response.body.len()).as_bytes());
    out.extend_from_slice(&response.body);
    out
}

/// The introspection answer formats the family runs against.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    /// `application/jwt`, as `envoy/gateway.yaml` ships it.
    Jwt,
    /// RFC 7662 JSON with the JWT in `jwt`.
    Json,
}

/// A gateway whose phantom-token asks the IdP through `front`, in `format`.
fn introspection_gateway(backends: &Backends, front: &IdpFront, format: Format) -> Gateway {
    let mut chain = Chain::shipped(backends);
    chain.extra_clusters.push(static_cluster("idp", front.addr));
    chain.merge(
        "phantom_token",
        json!({"introspection": {"cluster": "idp", "timeout_ms": INTROSPECTION_TIMEOUT_MS}}),
    );
    if format == Format::Json {
        chain.merge(
            "phantom_token",
            json!({"introspection": {"response": {"type": "json", "field": "jwt"}}}),
        );
    }
    chain.start()
}

/// phantom-token's introspection timeout in this family (the shipped 2000 ms, shortened so
/// that the slow-IdP case is quick).
const INTROSPECTION_TIMEOUT_MS: u64 = 1000;

fn introspection_cases<'a>(oauth: &'a OAuthServer, front: &'a IdpFront, format: Format) -> Vec<Case<'a>> {
    let m = Mint { oauth };
    let now = now_secs();
    // Each case presents a fresh opaque token: answers are cached by token.
    let opaque = || oauth.opaque_token(json!({"scope": "orders:read"}));
    let idp = move |answer: Answer, fault: Fault| {
        move || {
            front.set(answer.clone());
            oauth.set_fault_at(INTROSPECT_PATH, fault.clone());
        }
    };
    let case = |name: &str, answer: Answer, fault: Fault, status: u16, challenge: Option<&str>| {
        Case::new(name, bearer("/orders", &opaque()), status, challenge, status == 200).setup(idp(answer, fault))
    };
    let answered = |name: &str, answer: Answer, status: u16, challenge: Option<&str>| {
        case(name, answer, Fault::None, status, challenge)
    };
    let faulty = |name: &str, fault: Fault, status: u16| case(name, Answer::Relay, fault, status, None);
    let jwt_body = |token: String| match format {
        Format::Jwt => http_answer(200, "application/jwt", token.as_bytes()),
        Format::Json => http_answer(
            200,
            "application/json",
            json!({"active": true, "scope": "orders:read", "jwt": token})
                .to_string()
                .as_bytes(),
        ),
    };
    let json_body = |body: Value| http_answer(200, "application/json", body.to_string().as_bytes());

    let mut cases = vec![
        {
            let token = opaque();
            let jwt = oauth.phantom_jwt(&token).expect("a phantom JWT");
            Case::allowed("control: an active token", bearer("/orders", &token))
                .setup(idp(Answer::Relay, Fault::None))
                .upstream_header("authorization", &[&format!("Bearer {jwt}")])
                .upstream_header("x-user-id", &["alice"])
        },
        Case::refused(
            "an unknown token (inactive)",
            bearer("/orders", "made-up-opaque-token-0123456789"),
            401,
            Some(INVALID_TOKEN),
        )
        .setup(idp(Answer::Relay, Fault::None)),
        faulty("IdP answers HTML", Fault::Html, 502),
        answered(
            "IdP answers an empty 200",
            http_answer(200, "application/jwt", b""),
            502,
            None,
        ),
        answered(
            "IdP answers 200 with no Content-Type and no body",
            Answer::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()),
            502,
            None,
        ),
        answered(
            "IdP answers garbage bytes",
            http_answer(200, "application/jwt", b"\xff\xfe\x00garbage"),
            502,
            None,
        ),
        faulty(
            "IdP answers a JWT whose signature is not its key's",
            Fault::WrongSignature,
            502,
        ),
        answered(
            "IdP answers a JWT signed by an unknown key",
            jwt_body(m.token(m.spec("RS256", "rsa-3", json!({})))),
            502,
            None,
        ),
        answered(
            "IdP answers an alg none JWT",
            jwt_body(m.token(m.spec("none", "rsa-1", json!({})).signing_key(SigningKey::None))),
            502,
            None,
        ),
        answered(
            "IdP answers a JWT of another issuer",
            jwt_body(m.valid(json!({"iss": "https://evil.example"}))),
            502,
            None,
        ),
        answered(
            "IdP answers an expired JWT",
            jwt_body(m.valid(json!({"iat": now - 900, "exp": now - 600}))),
            502,
            None,
        ),
        answered(
            "IdP vouches for a token issued for another API",
            jwt_body(m.valid(json!({"aud": "other-api"}))),
            401,
            Some(INVALID_TOKEN),
        ),
        answered(
            "IdP answers a token-introspection+jwt as the access token",
            jwt_body(
                m.token(
                    m.spec("RS256", "rsa-1", json!({}))
                        .header("typ", json!("token-introspection+jwt")),
                ),
            ),
            502,
            None,
        ),
        faulty("IdP answers a huge body", Fault::HugeBody, 502),
        faulty("IdP answers 401", Fault::Status(401), 502),
        faulty("IdP answers 403", Fault::Status(403), 502),
        faulty("IdP answers 404", Fault::Status(404), 502),
        faulty("IdP answers 500", Fault::Status(500), 502),
        answered(
            "IdP answers a redirect",
            Answer::Raw(b"HTTP/1.1 302 Found\r\nLocation: http://evil.example/\r\nContent-Length: 0\r\n\r\n".to_vec()),
            502,
            None,
        ),
        faulty("IdP answers 503", Fault::Status(503), 503),
        faulty(
            "IdP answers 503 with Retry-After",
            Fault::Unavailable {
                retry_after: Some("7".into()),
            },
            503,
        )
        .check(|response, _| match response.header("retry-after").as_deref() {
            Some("7") => Ok(()),
            other => Err(format!("Retry-After {other:?}, expected 7")),
        }),
        faulty(
            "IdP answers slower than the timeout",
            Fault::Slow(Duration::from_millis(INTROSPECTION_TIMEOUT_MS + 500)),
            503,
        ),
        faulty("IdP closes the connection without an answer", Fault::Down, 503),
        case("IdP resets the connection", Answer::Reset, Fault::None, 503, None),
        answered(
            "IdP answer truncated (Content-Length larger than the body)",
            Answer::Raw(
                [
                    &b"HTTP/1.1 200 OK\r\nContent-Type: application/jwt\r\nContent-Length: 500\r\n"[..],
                    b"\r\neyJhbGciOi",
                ]
                .concat(),
            ),
            503,
            None,
        ),
    ];
    match format {
        Format::Jwt => cases.extend([answered(
            "IdP answers a valid JWT followed by garbage",
            http_answer(
                200,
                "application/jwt",
                format!("{} trailing", m.valid(json!({}))).as_bytes(),
            ),
            502,
            None,
        )]),
        Format::Json => {
            let jwt = m.valid(json!({}));
            cases.extend([
                answered(
                    "active \"true\" as a string",
                    json_body(json!({"active": "true", "jwt": jwt})),
                    502,
                    None,
                ),
                answered("active 1", json_body(json!({"active": 1, "jwt": jwt})), 502, None),
                answered("active null", json_body(json!({"active": null, "jwt": jwt})), 502, None),
                answered("active missing", json_body(json!({"jwt": jwt})), 502, None),
                answered(
                    "active false with a JWT",
                    json_body(json!({"active": false, "jwt": jwt})),
                    401,
                    Some(INVALID_TOKEN),
                ),
                answered(
                    "active true without a JWT",
                    json_body(json!({"active": true})),
                    502,
                    None,
                ),
                answered(
                    "active true with a number for the JWT",
                    json_body(json!({"active": true, "jwt": 42})),
                    502,
                    None,
                ),
                // RFC 8259 leaves duplicate names to the parser: an answer that says both is not
                // an answer (jwt-auth refuses duplicate members in tokens for the same reason).
                answered(
                    "duplicate active (false, then true)",
                    http_answer(
                        200,
                        "application/json",
                        format!(r#"{{"active":false,"active":true,"jwt":"{jwt}"}}"#).as_bytes(),
                    ),
                    502,
                    None,
                ),
                answered(
                    "a JSON array",
                    json_body(json!([{"active": true, "jwt": jwt}])),
                    502,
                    None,
                ),
                answered(
                    "JSON nested 10000 deep",
                    http_answer(
                        200,
                        "application/json",
                        format!(r#"{{"active":true,"x":{}}}"#, nested(10_000)).as_bytes(),
                    ),
                    502,
                    None,
                ),
            ]);
        }
    }
    cases
}

/// The introspection family in one answer format: the OAuth server's own faults (relayed by the
/// front) and the answers only a hand-written reply can give.
fn introspection_family(name: &'static str, format: Format) {
    let backends = Backends::start();
    let front = IdpFront::start(backends.oauth.addr());
    let gw = introspection_gateway(&backends, &front, format);
    let mut family = Family::new(name, &gw);
    family.run(introspection_cases(&backends.oauth, &front, format));
    front.set(Answer::Relay);
    backends.oauth.set_fault(Fault::None);
    let token = backends.oauth.opaque_token(json!({"scope": "orders:read"}));
    family.finish(bearer("/orders", &token));
}

#[test]
fn introspection_family_jwt_answers() {
    introspection_family("introspection/jwt", Format::Jwt);
}

#[test]
fn introspection_family_json_answers() {
    introspection_family("introspection/json", Format::Json);
}
