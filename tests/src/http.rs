//! A small raw HTTP/1.1 client over [`std::net::TcpStream`].
//!
//! Tests need byte-level control over what goes on the wire: duplicate
//! headers, mixed-case header names, header values that are not UTF-8. A
//! general-purpose client would normalise or reject those, so this one just
//! writes the bytes it is given and parses what comes back.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// How long [`send`] waits for the connect and for each read.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Host header value used when a request does not set its own.
pub const DEFAULT_HOST: &str = "gateway.test";

/// An HTTP/1.1 request, written to the wire exactly as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request method, e.g. `GET`.
    pub method: String,
    /// The request target, written verbatim (path plus optional query).
    pub path: String,
    /// Header lines in the order they are written; names keep their case.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The request body.
    pub body: Vec<u8>,
    /// Trailer lines; a request with any is sent with the chunked transfer coding.
    pub trailers: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Request {
    /// A request with the given method and target, no headers and no body.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            trailers: Vec::new(),
        }
    }

    /// A `GET` request.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// An `OPTIONS` request.
    pub fn options(path: &str) -> Self {
        Self::new("OPTIONS", path)
    }

    /// A `POST` request with a body.
    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        let mut req = Self::new("POST", path);
        req.body = body.into();
        req
    }

    /// Appends a header line; the name keeps the case it is given and an
    /// existing header of the same name is not replaced.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name.as_bytes(), value.as_bytes())
    }

    /// Appends a header line made of raw bytes (for non-UTF-8 values).
    pub fn header_bytes(mut self, name: &[u8], value: &[u8]) -> Self {
        self.headers.push((name.to_vec(), value.to_vec()));
        self
    }

    /// Appends a trailer line, sent after the body (the request goes chunked).
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers
            .push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        self
    }

    /// Whether the request already carries a header of this name (any case).
    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The exact bytes [`send`] writes for this request.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !self.has_header("host") {
            out.extend_from_slice(b"Host: ");
            out.extend_from_slice(DEFAULT_HOST.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        write_fields(&mut out, &self.headers);
        let body_method = matches!(self.method.to_ascii_uppercase().as_str(), "POST" | "PUT" | "PATCH");
        let chunked = !self.trailers.is_empty();
        if chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        } else if !self.has_header("content-length") && (!self.body.is_empty() || body_method) {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        if !self.has_header("connection") {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !chunked {
            out.extend_from_slice(&self.body);
            return out;
        }
        if !self.body.is_empty() {
            out.extend_from_slice(format!("{:x}\r\n", self.body.len()).as_bytes());
            out.extend_from_slice(&self.body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        write_fields(&mut out, &self.trailers);
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// `name: value` lines, as given.
fn write_fields(out: &mut Vec<u8>, fields: &[(Vec<u8>, Vec<u8>)]) {
    for (name, value) in fields {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header lines in arrival order; names lowercased, values raw bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The decoded body (chunked transfer coding removed).
    pub body: Vec<u8>,
    /// The trailer lines of a chunked body; names lowercased, values raw bytes.
    pub trailers: Vec<(String, Vec<u8>)>,
}

impl Response {
    /// The first value of a header (name matched case-insensitively), as
    /// lossy UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        header_values(&self.headers, name).next()
    }

    /// The `WWW-Authenticate` of a 401 or 403, which must be a Bearer challenge for `realm`.
    ///
    /// # Panics
    /// If there is none, or it is not.
    pub fn bearer_challenge(&self, realm: &str) -> String {
        let challenge = self
            .header("www-authenticate")
            .unwrap_or_else(|| panic!("{} without WWW-Authenticate", self.status));
        assert!(
            challenge.starts_with(&format!("Bearer realm=\"{realm}\"")),
            "challenge: {challenge}"
        );
        challenge
    }

    /// Every value of a header, in arrival order, as lossy UTF-8.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        header_values(&self.headers, name).collect()
    }

    /// Whether the response carries the header at all.
    pub fn has_header(&self, name: &str) -> bool {
        has_header(&self.headers, name)
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    /// If the body is not JSON; the message includes the status and body.
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!(
                "response body is not JSON ({e}); status {}, body: {}",
                self.status,
                self.text()
            ),
        }
    }

    /// The body as lossy UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The values of header `name` (matched case-insensitively) among
/// `headers` (lowercase names, raw values), in order, as lossy UTF-8.
pub(crate) fn header_values<'a>(headers: &'a [(String, Vec<u8>)], name: &'a str) -> impl Iterator<Item = String> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// Whether `headers` has a header `name` (matched case-insensitively).
pub(crate) fn has_header(headers: &[(String, Vec<u8>)], name: &str) -> bool {
    headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Sends one request on a fresh connection and reads the whole response.
///
/// Adds `Host: gateway.test` unless the request has a host header,
/// `Content-Length` when there is a body or the method is POST/PUT/PATCH,
/// and `Connection: close` (unless the request sets `Connection` itself).
/// Then reads (10 s read timeout) until EOF or until the response is complete
/// according to its framing, and parses it.
pub fn send(addr: SocketAddr, req: &Request) -> io::Result<Response> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    set_timeouts(&stream)?;
    exchange(stream, addr, req)
}

/// Like [`send`], from the local address `source` (e.g. `127.0.0.7`: any address of 127.0.0.0/8
/// works on Linux), so that the gateway sees a client address of the test's choosing.
pub fn send_from(source: IpAddr, addr: SocketAddr, req: &Request) -> io::Result<Response> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&addr.into(), IO_TIMEOUT)?;
    let stream = socket.into();
    set_timeouts(&stream)?;
    exchange(stream, addr, req)
}

pub(crate) fn set_timeouts(stream: &TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))
}

/// Writes `req` on `stream` and reads the response (see [`send`]).
pub(crate) fn exchange(mut stream: impl Read + Write, addr: SocketAddr, req: &Request) -> io::Result<Response> {
    stream.write_all(&req.to_bytes())?;
    stream.flush()?;
    let head_only = req.method.eq_ignore_ascii_case("HEAD");
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if is_complete(&raw, head_only) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A server that rejects a request may reset the connection right
            // after writing its answer; keep what arrived.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "reading response from {addr}: {e}; received so far: {:?}",
                        String::from_utf8_lossy(&raw)
                    ),
                ))
            }
        }
    }
    parse_response(&raw, head_only)
}

/// Whether `raw` already holds a whole response whose end is known from its
/// framing (so there is no need to wait for EOF).
fn is_complete(raw: &[u8], head_only: bool) -> bool {
    let Some((status, headers, rest)) = split_final_head(raw).ok().flatten() else {
        return false;
    };
    let resp = Response {
        status,
        headers,
        body: Vec::new(),
        trailers: Vec::new(),
    };
    if head_only || status == 204 || status == 304 {
        return true;
    }
    if resp
        .header_all("transfer-encoding")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        return chunked_len(rest).is_some();
    }
    match resp
        .header("content-length")
        .and_then(|l| l.trim().parse::<usize>().ok())
    {
        Some(len) => rest.len() >= len,
        None => false,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Response header lines: lowercase name, raw value.
type HeaderList = Vec<(String, Vec<u8>)>;

/// Status, headers, and the bytes after the head.
type Head<'a> = (u16, HeaderList, &'a [u8]);

/// Parses the status line and headers of the final response in `raw`,
/// skipping interim 1xx responses (other than 101). Returns `None` while the
/// head is incomplete; the third element is everything after the head.
fn split_final_head(mut raw: &[u8]) -> io::Result<Option<Head<'_>>> {
    loop {
        let Some(head_end) = find(raw, b"\r\n\r\n") else {
            return Ok(None);
        };
        let (status, headers) = parse_head(&raw[..head_end])?;
        let rest = &raw[head_end + 4..];
        if (100..200).contains(&status) && status != 101 {
            raw = rest;
            continue;
        }
        return Ok(Some((status, headers, rest)));
    }
}

fn parse_head(head: &[u8]) -> io::Result<(u16, HeaderList)> {
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let status_text = String::from_utf8_lossy(status_line);
    let mut parts = status_text.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("bad status line: {status_text:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status code in: {status_text:?}")))?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        headers.push(parse_field_line(line)?);
    }
    Ok((status, headers))
}

/// A `name: value` line: the name lowercased, the value trimmed.
fn parse_field_line(line: &[u8]) -> io::Result<(String, Vec<u8>)> {
    let colon = line.iter().position(|&b| b == b':').ok_or_else(|| {
        invalid(format!(
            "header line without colon: {:?}",
            String::from_utf8_lossy(line)
        ))
    })?;
    let name = String::from_utf8_lossy(trim(&line[..colon])).to_ascii_lowercase();
    Ok((name, trim(&line[colon + 1..]).to_vec()))
}

/// Parses a complete response (everything read from the connection).
///
/// `head_only` marks a response to HEAD, which has no body whatever its
/// headers say; 204 and 304 responses have no body either. Interim 1xx
/// responses before the final one are skipped.
pub fn parse_response(raw: &[u8], head_only: bool) -> io::Result<Response> {
    let (status, headers, rest) = split_final_head(raw)?.ok_or_else(|| {
        invalid(format!(
            "no complete response head in {} bytes: {:?}",
            raw.len(),
            String::from_utf8_lossy(raw)
        ))
    })?;
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
        trailers: Vec::new(),
    };
    if head_only || status == 204 || status == 304 {
        return Ok(resp);
    }
    let chunked = resp
        .header_all("transfer-encoding")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("chunked"));
    resp.body = if chunked {
        let (body, trailers) = decode_chunked_with_trailers(rest)?;
        resp.trailers = trailers;
        body
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| invalid(format!("bad content-length {len:?}")))?;
        if rest.len() < len {
            return Err(invalid(format!(
                "body truncated: content-length {len}, got {} bytes",
                rest.len()
            )));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(resp)
}

/// Walks a chunked body. Returns the decoded bytes and the encoded length
/// (through the end of the trailer section), or `None` if it is incomplete;
/// `Err` if it is malformed.
fn walk_chunked(data: &[u8]) -> io::Result<Option<(Vec<u8>, HeaderList, usize)>> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(line_len) = find(&data[pos..], b"\r\n") else {
            return Ok(None);
        };
        let size_line = String::from_utf8_lossy(&data[pos..pos + line_len]);
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| invalid(format!("chunked body: bad chunk size {size_hex:?}")))?;
        pos += line_len + 2;
        if size == 0 {
            // Trailer lines, then an empty line.
            let mut trailers = Vec::new();
            loop {
                let Some(line_len) = find(&data[pos..], b"\r\n") else {
                    return Ok(None);
                };
                let line = &data[pos..pos + line_len];
                pos += line_len + 2;
                if line_len == 0 {
                    return Ok(Some((body, trailers, pos)));
                }
                trailers.push(parse_field_line(line)?);
            }
        }
        if data.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[pos..pos + size]);
        if &data[pos + size..pos + size + 2] != b"\r\n" {
            return Err(invalid("chunked body: chunk not followed by CRLF"));
        }
        pos += size + 2;
    }
}

fn chunked_len(data: &[u8]) -> Option<usize> {
    walk_chunked(data).ok().flatten().map(|(_, _, len)| len)
}

/// Removes the chunked transfer coding; trailers are dropped. Errors if the
/// body is malformed or truncated.
pub fn decode_chunked(data: &[u8]) -> io::Result<Vec<u8>> {
    decode_chunked_with_trailers(data).map(|(body, _)| body)
}

/// Removes the chunked transfer coding, keeping the trailers.
fn decode_chunked_with_trailers(data: &[u8]) -> io::Result<(Vec<u8>, HeaderList)> {
    match walk_chunked(data)? {
        Some((body, trailers, _)) => Ok((body, trailers)),
        None => Err(invalid(format!("chunked body truncated after {} bytes", data.len()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes_default_headers() {
        let req = Request::post("/p", "abc").header("X-A", "1").header("x-a", "2");
        let text = String::from_utf8(req.to_bytes()).expect("ascii");
        assert_eq!(
            text,
            "POST /p HTTP/1.1\r\nHost: gateway.test\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        );
        let req = Request::get("/").header("HOST", "h");
        let text = String::from_utf8(req.to_bytes()).expect("ascii");
        assert_eq!(text, "GET / HTTP/1.1\r\nHOST: h\r\nConnection: close\r\n\r\n");
    }

    #[test]
    fn trailers_go_chunked_both_ways() {
        let req = Request::post("/p", "abc").trailer("X-T", "1");
        let text = String::from_utf8(req.to_bytes()).expect("ascii");
        assert_eq!(
            text,
            "POST /p HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
        );
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nGrpc-Status: 0\r\n\r\n";
        let resp = parse_response(raw, false).expect("parses");
        assert_eq!(resp.body, b"ok");
        assert_eq!(resp.trailers, vec![("grpc-status".to_owned(), b"0".to_vec())]);
    }

    #[test]
    fn completeness_follows_framing() {
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", false));
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab", false));
        assert!(is_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", false));
        assert!(is_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true));
        assert!(is_complete(b"HTTP/1.1 204 No Content\r\n\r\n", false));
        assert!(!is_complete(b"HTTP/1.1 100 Continue\r\n\r\n", false));
        assert!(!is_complete(b"HTTP/1.1 200 OK\r\n\r\nuntil eof", false));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n";
        assert!(!is_complete(chunked, false));
        let mut done = chunked.to_vec();
        done.extend_from_slice(b"\r\n");
        assert!(is_complete(&done, false));
    }

    #[test]
    fn parse_content_length_and_chunked() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Dup: a\r\nx-dup: b\r\n\r\nhello";
        let r = parse_response(raw, false).expect("parse");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello");
        assert_eq!(r.header_all("X-DUP"), vec!["a", "b"]);

        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n";
        let r = parse_response(raw, false).expect("parse");
        assert_eq!(r.text(), "Wikipedia");

        let raw = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
        let r = parse_response(raw, false).expect("parse");
        assert!(r.body.is_empty());

        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nto eof";
        assert_eq!(parse_response(raw, false).expect("parse").text(), "to eof");
        assert!(parse_response(raw, true).expect("parse").body.is_empty());
    }
}
