//! The echo upstream: an HTTP/1.1 server that records the requests it gets (the latest
//! [`HISTORY`] of them, so that a long-running demo or soak stays bounded) and answers with a JSON
//! description of each.
//!
//! It is a [`BackgroundServer`]: it runs on its own thread with its own tokio
//! runtime, so tests stay plain synchronous `#[test]` functions.
//! Connections are kept alive between requests, as Envoy reuses upstream
//! connections.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, TRAILER, TRANSFER_ENCODING};
use serde_json::json;

use crate::http::{has_header, header_values};
use crate::server::{BackgroundServer, HandlerResponse, Trailers};

/// One request as the echo upstream received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The request method.
    pub method: String,
    /// The request target: path plus query, if any.
    pub path: String,
    /// Headers with lowercase names and raw values. Names appear in the order
    /// they first arrived; repeated headers are all kept, in arrival order,
    /// next to the first one of their name (the server's header map groups
    /// them).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The request body.
    pub body: Vec<u8>,
    /// The request's trailers, lowercase names and raw values.
    pub trailers: Vec<(String, Vec<u8>)>,
}

impl RecordedRequest {
    /// Every value of a header (name matched case-insensitively), as lossy
    /// UTF-8.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        header_values(&self.headers, name).collect()
    }

    /// The first value of a header, as lossy UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        header_values(&self.headers, name).next()
    }

    /// Whether the request carried the header at all.
    pub fn has_header(&self, name: &str) -> bool {
        has_header(&self.headers, name)
    }

    /// Every value of a trailer (name matched case-insensitively), as lossy UTF-8.
    pub fn trailer_all(&self, name: &str) -> Vec<String> {
        header_values(&self.trailers, name).collect()
    }

    /// The JSON document the echo upstream answers this request with.
    pub fn to_json(&self) -> serde_json::Value {
        let headers: Vec<serde_json::Value> = self
            .headers
            .iter()
            .map(|(n, v)| json!([n, String::from_utf8_lossy(v)]))
            .collect();
        json!({
            "method": self.method,
            "path": self.path,
            "headers": headers,
            "body": String::from_utf8_lossy(&self.body),
        })
    }
}

/// How many of the latest requests the echo upstream keeps; it counts all of them.
pub const HISTORY: usize = 16_384;

#[derive(Default)]
struct State {
    requests: VecDeque<RecordedRequest>,
    received: usize,
    response_headers: Vec<(HeaderName, HeaderValue)>,
    response_trailers: Vec<(HeaderName, HeaderValue)>,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave the state inconsistent
    // (every update is a single push or assignment), so poisoning is ignored.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running echo upstream on `127.0.0.1:<ephemeral port>`. Stops on drop.
pub struct EchoUpstream {
    state: Shared,
    server: BackgroundServer,
}

impl std::fmt::Debug for EchoUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoUpstream").field("addr", &self.addr()).finish()
    }
}

impl EchoUpstream {
    /// Binds `127.0.0.1:0` and starts serving on a background thread.
    ///
    /// # Panics
    /// If the socket cannot be bound or the runtime cannot be built.
    pub fn start() -> EchoUpstream {
        Self::bind(([127, 0, 0, 1], 0).into())
    }

    /// Binds `addr` (a fixed port, for the demo) and starts serving on a background thread.
    ///
    /// # Panics
    /// If the socket cannot be bound or the runtime cannot be built.
    pub fn bind(addr: SocketAddr) -> EchoUpstream {
        let state: Shared = Arc::default();
        let handler_state = Arc::clone(&state);
        let server = BackgroundServer::spawn(addr, "echo upstream", move |req| {
            handle(req, Arc::clone(&handler_state))
        });
        EchoUpstream { state, server }
    }

    /// The address the upstream listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Headers added to every response sent from now on (after
    /// `content-type`); repeated names are sent as repeated header lines.
    ///
    /// # Panics
    /// If a name or value is not a valid HTTP header name or value.
    pub fn set_response_headers(&self, headers: Vec<(String, String)>) {
        lock(&self.state).response_headers = parse_fields(headers);
    }

    /// Trailers sent after every response body from now on, to requests that accept them
    /// (`TE: trailers`).
    ///
    /// # Panics
    /// If a name or value is not a valid HTTP field name or value.
    pub fn set_response_trailers(&self, trailers: Vec<(String, String)>) {
        lock(&self.state).response_trailers = parse_fields(trailers);
    }

    /// The requests received so far (the latest [`HISTORY`]), in the order they arrived.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.iter().cloned().collect()
    }

    /// The most recent request.
    ///
    /// # Panics
    /// If no request has arrived yet.
    pub fn last_request(&self) -> RecordedRequest {
        lock(&self.state)
            .requests
            .back()
            .cloned()
            .expect("echo upstream: no request has reached the upstream")
    }

    /// How many requests have been received so far.
    pub fn request_count(&self) -> usize {
        lock(&self.state).received
    }
}

fn parse_fields(fields: Vec<(String, String)>) -> Vec<(HeaderName, HeaderValue)> {
    fields
        .into_iter()
        .map(|(n, v)| {
            let name = HeaderName::from_bytes(n.as_bytes())
                .unwrap_or_else(|e| panic!("echo upstream: bad field name {n:?}: {e}"));
            let value =
                HeaderValue::from_str(&v).unwrap_or_else(|e| panic!("echo upstream: bad field value {v:?}: {e}"));
            (name, value)
        })
        .collect()
}

async fn handle(req: hyper::Request<Incoming>, state: Shared) -> Result<HandlerResponse, Infallible> {
    let (parts, body) = req.into_parts();
    let (body, trailers) = match body.collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().map(fields).unwrap_or_default();
            (collected.to_bytes().to_vec(), trailers)
        }
        Err(e) => (
            format!("<echo upstream: error reading body: {e}>").into_bytes(),
            Vec::new(),
        ),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.to_string());
    let recorded = RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path,
        headers: fields(&parts.headers),
        body,
        trailers,
    };
    let payload = recorded.to_json().to_string();
    let (extra, trailers) = {
        let mut st = lock(&state);
        if st.requests.len() == HISTORY {
            st.requests.pop_front();
        }
        st.requests.push_back(recorded);
        st.received += 1;
        (st.response_headers.clone(), st.response_trailers.clone())
    };
    let mut resp = hyper::Response::new(Full::new(Bytes::from(payload)));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in extra {
        headers.append(name, value);
    }
    if !trailers.is_empty() {
        // Trailers need the chunked coding, which a body of known length would not get, and
        // hyper sends only those the `Trailer` header announces.
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        let names: Vec<&str> = trailers.iter().map(|(name, _)| name.as_str()).collect();
        if let Ok(announced) = HeaderValue::from_str(&names.join(", ")) {
            headers.insert(TRAILER, announced);
        }
        resp.extensions_mut().insert(Trailers(trailers.into_iter().collect()));
    }
    Ok(resp)
}

fn fields(map: &hyper::HeaderMap) -> Vec<(String, Vec<u8>)> {
    map.iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}
