//! The rate-limit service protocol, `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`:
//! the request and the parts of the response a gateway acts on, in protobuf (gRPC) and in the
//! proto3 JSON mapping (the HTTP form envoyproxy/ratelimit serves at `/json`).

use serde_json::Value;

use shared::protobuf::{Malformed, Reader, Writer};

use crate::descriptor::Descriptor;

pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
pub const METHOD: &str = "ShouldRateLimit";

/// One descriptor to ask about, with the hits it counts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    pub descriptor: Descriptor,
    pub hits: u32,
}

/// Where the hits addend goes: one request-level value when every descriptor counts the same (what
/// every service understands; 1 is the default and left out), else one per descriptor.
fn hits_addends(asks: &[Ask]) -> (u32, bool) {
    let first = asks.first().map_or(1, |a| a.hits);
    if asks.iter().all(|a| a.hits == first) {
        (if first == 1 { 0 } else { first }, false)
    } else {
        (0, true)
    }
}

/// `RateLimitRequest` as protobuf.
pub fn encode_grpc(domain: &str, asks: &[Ask]) -> Vec<u8> {
    let (request_hits, per_descriptor) = hits_addends(asks);
    let mut request = Writer::new();
    request.string(1, domain);
    for ask in asks {
        request.message(2, |descriptor| {
            for (key, value) in &ask.descriptor {
                descriptor.message(1, |entry| {
                    entry.string(1, key).string(2, value);
                });
            }
            if per_descriptor {
                // google.protobuf.UInt64Value
                descriptor.message(3, |wrapper| {
                    wrapper.uint(1, u64::from(ask.hits));
                });
            }
        });
    }
    if request_hits != 0 {
        request.uint(3, u64::from(request_hits));
    }
    request.into_bytes()
}

/// `RateLimitRequest` in the proto3 JSON mapping, members in the order serde_json writes them.
pub fn encode_json(domain: &str, asks: &[Ask]) -> Vec<u8> {
    use shared::json::write_string;
    let (request_hits, per_descriptor) = hits_addends(asks);
    let mut out = String::from("{\"descriptors\":[");
    for (i, ask) in asks.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"entries\":[");
        for (j, (key, value)) in ask.descriptor.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"key\":");
            write_string(&mut out, key);
            out.push_str(",\"value\":");
            write_string(&mut out, value);
            out.push('}');
        }
        out.push(']');
        if per_descriptor {
            // A UInt64Value is a JSON string in the proto3 mapping.
            out.push_str(",\"hitsAddend\":\"");
            out.push_str(&ask.hits.to_string());
            out.push('"');
        }
        out.push('}');
    }
    out.push_str("],\"domain\":");
    write_string(&mut out, domain);
    if request_hits != 0 {
        out.push_str(",\"hitsAddend\":");
        out.push_str(&request_hits.to_string());
    }
    out.push('}');
    out.into_bytes()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Unknown,
    Ok,
    OverLimit,
}

impl Code {
    fn from_number(n: u64) -> Self {
        match n {
            1 => Code::Ok,
            2 => Code::OverLimit,
            _ => Code::Unknown,
        }
    }

    fn from_json(value: &Value) -> Self {
        match value {
            Value::String(name) => match name.as_str() {
                "OK" => Code::Ok,
                "OVER_LIMIT" => Code::OverLimit,
                _ => Code::Unknown,
            },
            Value::Number(n) => n.as_u64().map_or(Code::Unknown, Code::from_number),
            _ => Code::Unknown,
        }
    }
}

/// The limit the service applied to a descriptor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrentLimit {
    pub name: String,
    pub requests_per_unit: u32,
    /// Seconds in the limit's unit; `None` for a unit this filter does not know.
    pub window_secs: Option<u64>,
}

/// The service's answer for one descriptor, in request order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorStatus {
    pub code: Code,
    pub current_limit: Option<CurrentLimit>,
    pub limit_remaining: u32,
    /// Whole seconds, rounded up.
    pub reset_secs: Option<u64>,
}

/// The longest window a limit has (a year): no reset is further off.
const LONGEST_WINDOW_SECS: u64 = 365 * 86_400;

impl DescriptorStatus {
    /// `reset_secs`, at most the limit's window (a year if the service gave none it knows): a
    /// later reset is the service's error, and a client told to wait that long would never retry.
    pub fn bounded_reset_secs(&self) -> Option<u64> {
        let window = self.current_limit.as_ref().and_then(|limit| limit.window_secs);
        self.reset_secs
            .map(|secs| secs.min(window.unwrap_or(LONGEST_WINDOW_SECS)))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub overall: Code,
    pub statuses: Vec<DescriptorStatus>,
    /// `response_headers_to_add`, as sent: the filter allow-lists them.
    pub response_headers: Vec<(String, Vec<u8>)>,
}

fn window_secs(unit: u64) -> Option<u64> {
    match unit {
        1 => Some(1),
        2 => Some(60),
        3 => Some(3600),
        4 => Some(86_400),
        5 => Some(30 * 86_400),
        6 => Some(365 * 86_400),
        7 => Some(7 * 86_400),
        _ => None,
    }
}

fn unit_number(name: &str) -> u64 {
    ["UNKNOWN", "SECOND", "MINUTE", "HOUR", "DAY", "MONTH", "YEAR", "WEEK"]
        .iter()
        .position(|u| *u == name)
        .map_or(0, |i| i as u64)
}

/// `RateLimitResponse` from protobuf.
pub fn decode_grpc(message: &[u8]) -> Result<Answer, Malformed> {
    let mut answer = Answer {
        overall: Code::Unknown,
        statuses: Vec::new(),
        response_headers: Vec::new(),
    };
    let mut fields = Reader::new(message);
    while let Some((field, value)) = fields.next_field()? {
        match field {
            1 => answer.overall = Code::from_number(value.as_varint().ok_or(Malformed)?),
            2 => answer.statuses.push(decode_status(value.as_bytes().ok_or(Malformed)?)?),
            3 => answer
                .response_headers
                .push(decode_header(value.as_bytes().ok_or(Malformed)?)?),
            _ => {}
        }
    }
    Ok(answer)
}

fn decode_status(message: &[u8]) -> Result<DescriptorStatus, Malformed> {
    let mut status = DescriptorStatus {
        code: Code::Unknown,
        current_limit: None,
        limit_remaining: 0,
        reset_secs: None,
    };
    let mut reset: Option<Duration> = None;
    let mut fields = Reader::new(message);
    while let Some((field, value)) = fields.next_field()? {
        // A message field sent more than once is merged into what came before, as protobuf
        // parsers read it; a scalar's last value wins.
        match field {
            1 => status.code = Code::from_number(value.as_varint().ok_or(Malformed)?),
            2 => {
                let limit = status.current_limit.get_or_insert_with(CurrentLimit::default);
                decode_limit(value.as_bytes().ok_or(Malformed)?, limit)?;
            }
            3 => status.limit_remaining = u32::try_from(value.as_varint().ok_or(Malformed)?).unwrap_or(u32::MAX),
            4 => decode_duration(value.as_bytes().ok_or(Malformed)?, reset.get_or_insert_default())?,
            _ => {}
        }
    }
    status.reset_secs = reset.map(Duration::whole_secs_rounded_up);
    Ok(status)
}

fn decode_limit(message: &[u8], limit: &mut CurrentLimit) -> Result<(), Malformed> {
    let mut fields = Reader::new(message);
    while let Some((field, value)) = fields.next_field()? {
        match field {
            1 => limit.requests_per_unit = u32::try_from(value.as_varint().ok_or(Malformed)?).unwrap_or(u32::MAX),
            2 => limit.window_secs = window_secs(value.as_varint().ok_or(Malformed)?),
            3 => limit.name = String::from_utf8_lossy(value.as_bytes().ok_or(Malformed)?).into_owned(),
            _ => {}
        }
    }
    Ok(())
}

/// `google.protobuf.Duration`, as far as a reset needs it.
#[derive(Default)]
struct Duration {
    seconds: u64,
    nanos: u64,
}

impl Duration {
    fn whole_secs_rounded_up(self) -> u64 {
        self.seconds.saturating_add(u64::from(self.nanos > 0))
    }
}

fn decode_duration(message: &[u8], duration: &mut Duration) -> Result<(), Malformed> {
    let mut fields = Reader::new(message);
    while let Some((field, value)) = fields.next_field()? {
        let number = || value.as_varint().ok_or(Malformed);
        match field {
            // Negative values (two's complement varints) make no sense here: clamp to zero.
            1 => duration.seconds = Some(number()?).filter(|s| i64::try_from(*s).is_ok()).unwrap_or(0),
            2 => duration.nanos = Some(number()?).filter(|n| *n < 1_000_000_000).unwrap_or(0),
            _ => {}
        }
    }
    Ok(())
}

fn decode_header(message: &[u8]) -> Result<(String, Vec<u8>), Malformed> {
    let (mut key, mut value, mut raw) = (String::new(), Vec::new(), None);
    let mut fields = Reader::new(message);
    while let Some((field, v)) = fields.next_field()? {
        match field {
            1 => key = String::from_utf8_lossy(v.as_bytes().ok_or(Malformed)?).into_owned(),
            2 => value = v.as_bytes().ok_or(Malformed)?.to_vec(),
            3 => raw = Some(v.as_bytes().ok_or(Malformed)?.to_vec()),
            _ => {}
        }
    }
    Ok((key, raw.unwrap_or(value)))
}

/// `RateLimitResponse` from the JSON the HTTP form answers with. The proto3 mapping accepts both
/// the lowerCamel and the original field names; as to protojson, a member given twice, or under
/// both names, makes the answer malformed rather than one of its values win.
pub fn decode_json(body: &[u8]) -> Result<Answer, Malformed> {
    let root = shared::json::parse(body)
        .map_err(|_| Malformed)?
        .into_strict_value()
        .map_err(|_| Malformed)?;
    let root = root.as_object().ok_or(Malformed)?;
    let overall = member(root, "overallCode", "overall_code")?.map_or(Code::Unknown, Code::from_json);
    let mut statuses = Vec::new();
    for item in json_list(member(root, "statuses", "statuses")?)? {
        let item = item.as_object().ok_or(Malformed)?;
        let current_limit = match member(item, "currentLimit", "current_limit")? {
            Some(Value::Object(limit)) => Some(CurrentLimit {
                name: json_string(member(limit, "name", "name")?)?.to_owned(),
                requests_per_unit: u32::try_from(json_uint(member(limit, "requestsPerUnit", "requests_per_unit")?)?)
                    .unwrap_or(u32::MAX),
                window_secs: match member(limit, "unit", "unit")? {
                    Some(Value::String(unit)) => window_secs(unit_number(unit)),
                    other => window_secs(json_uint(other)?),
                },
            }),
            None | Some(Value::Null) => None,
            Some(_) => return Err(Malformed),
        };
        let reset_secs = match member(item, "durationUntilReset", "duration_until_reset")? {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(json_duration_secs(text).ok_or(Malformed)?),
            Some(_) => return Err(Malformed),
        };
        statuses.push(DescriptorStatus {
            code: member(item, "code", "code")?.map_or(Code::Unknown, Code::from_json),
            current_limit,
            limit_remaining: u32::try_from(json_uint(member(item, "limitRemaining", "limit_remaining")?)?)
                .unwrap_or(u32::MAX),
            reset_secs,
        });
    }
    let mut response_headers = Vec::new();
    for item in json_list(member(root, "responseHeadersToAdd", "response_headers_to_add")?)? {
        let item = item.as_object().ok_or(Malformed)?;
        let key = json_string(member(item, "key", "key")?)?;
        // `raw_value` (bytes, so base64 in JSON) takes the place of `value`, as in the gRPC form.
        let value = match member(item, "rawValue", "raw_value")? {
            Some(raw) => json_bytes(raw).ok_or(Malformed)?,
            None => json_string(member(item, "value", "value")?)?.as_bytes().to_vec(),
        };
        response_headers.push((key.to_owned(), value));
    }
    Ok(Answer {
        overall,
        statuses,
        response_headers,
    })
}

/// A repeated field in proto3 JSON: an array, or `null` (or absent) for none.
fn json_list(value: Option<&Value>) -> Result<&[Value], Malformed> {
    match value {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(Malformed),
    }
}

/// An unsigned integer field in proto3 JSON: a number or a decimal string, `null` (or absent) for
/// zero. Negative, fractional or other values are what protojson refuses.
fn json_uint(value: Option<&Value>) -> Result<u64, Malformed> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_u64().ok_or(Malformed),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| Malformed)
        }
        Some(_) => Err(Malformed),
    }
}

/// A string field in proto3 JSON, `null` (or absent) for empty.
fn json_string(value: Option<&Value>) -> Result<&str, Malformed> {
    match value {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Malformed),
    }
}

/// A member of a proto3 JSON object, by its lowerCamel or its original name.
fn member<'v>(
    object: &'v serde_json::Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Result<Option<&'v Value>, Malformed> {
    match (object.get(camel), object.get(snake)) {
        (Some(_), Some(_)) if camel != snake => Err(Malformed),
        (Some(value), _) | (None, Some(value)) => Ok(Some(value)),
        (None, None) => Ok(None),
    }
}

/// A proto3 JSON `bytes` value: base64, standard or URL-safe, padded or not.
fn json_bytes(value: &Value) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::{alphabet, Engine};
    let config = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let text = value.as_str()?;
    let alphabet = if text.contains(['-', '_']) {
        &alphabet::URL_SAFE
    } else {
        &alphabet::STANDARD
    };
    GeneralPurpose::new(alphabet, config).decode(text).ok()
}

/// A proto3 JSON Duration (`"1.5s"`) as whole seconds, rounded up.
fn json_duration_secs(text: &str) -> Option<u64> {
    let number = text.strip_suffix('s')?;
    let (negative, number) = match number.strip_prefix('-') {
        Some(number) => (true, number),
        None => (false, number),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    if negative {
        // As in the protobuf form: a reset in the past is now.
        return Some(0);
    }
    let has_fraction = fraction.bytes().any(|b| b != b'0');
    Some(whole.saturating_add(u64::from(has_fraction)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn ask(entries: &[(&str, &str)], hits: u32) -> Ask {
        Ask {
            descriptor: entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            hits,
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn grpc_request_bytes_are_the_protobuf_encoding() {
        let bytes = encode_grpc("gw", &[ask(&[("k", "v")], 1)]);
        // domain=1 "gw"; descriptors=2 { entries=1 { key=1 "k", value=2 "v" } }; no hits_addend.
        assert_eq!(
            bytes,
            [0x0a, 2, b'g', b'w', 0x12, 8, 0x0a, 6, 0x0a, 1, b'k', 0x12, 1, b'v']
        );
        let same_cost = encode_grpc("gw", &[ask(&[("k", "v")], 5), ask(&[("a", "b")], 5)]);
        assert_eq!(same_cost.get(same_cost.len() - 2..), Some(&[0x18, 5][..]));
        let mixed = encode_grpc("gw", &[ask(&[("k", "v")], 5), ask(&[("a", "b")], 1)]);
        // The first descriptor carries hits_addend=3 { value=1 5 }.
        assert_eq!(
            mixed.get(4..16),
            Some(&[0x12, 12, 0x0a, 6, 0x0a, 1, b'k', 0x12, 1, b'v', 0x1a, 2][..])
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn json_request_is_the_proto3_mapping() {
        let body: Value = serde_json::from_slice(&encode_json("gw", &[ask(&[("k", "v")], 2)])).unwrap();
        assert_eq!(
            body,
            json!({"domain": "gw", "descriptors": [{"entries": [{"key": "k", "value": "v"}]}], "hitsAddend": 2})
        );
        let body: Value =
            serde_json::from_slice(&encode_json("gw", &[ask(&[("k", "v")], 2), ask(&[("k", "w")], 1)])).unwrap();
        assert_eq!(body["descriptors"][0]["hitsAddend"], "2");
        assert_eq!(body.get("hitsAddend"), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn json_request_is_byte_for_byte_what_serde_json_writes() {
        let asks = [
            ask(&[("user", "a\"l\\i\nce"), ("path", "/é/東京")], 3),
            ask(&[("k", "")], 1),
        ];
        let expected = json!({
            "domain": "g\"w",
            "descriptors": [
                {"entries": [{"key": "user", "value": "a\"l\\i\nce"}, {"key": "path", "value": "/é/東京"}], "hitsAddend": "3"},
                {"entries": [{"key": "k", "value": ""}], "hitsAddend": "1"},
            ],
        });
        assert_eq!(
            String::from_utf8(encode_json("g\"w", &asks)).unwrap(),
            expected.to_string()
        );
        let expected = json!({"domain": "gw", "descriptors": [{"entries": []}], "hitsAddend": 4});
        assert_eq!(
            String::from_utf8(encode_json("gw", &[ask(&[], 4)])).unwrap(),
            expected.to_string()
        );
    }

    fn status_bytes(code: u64, limit: Option<(u64, u64, &str)>, remaining: u64, reset: Option<(u64, u64)>) -> Vec<u8> {
        let mut w = Writer::new();
        w.uint(1, code);
        if let Some((requests, unit, name)) = limit {
            w.message(2, |l| {
                l.string(3, name).uint(1, requests).uint(2, unit);
            });
        }
        w.uint(3, remaining);
        if let Some((seconds, nanos)) = reset {
            w.message(4, |d| {
                d.uint(1, seconds).uint(2, nanos);
            });
        }
        w.into_bytes()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_reset_is_at_most_the_window_or_a_year() {
        let status = |unit: Option<u64>, reset: u64| DescriptorStatus {
            code: Code::OverLimit,
            current_limit: unit.map(|unit| CurrentLimit {
                name: String::new(),
                requests_per_unit: 1,
                window_secs: window_secs(unit),
            }),
            limit_remaining: 0,
            reset_secs: Some(reset),
        };
        assert_eq!(status(Some(3), 1_000_000).bounded_reset_secs(), Some(3600));
        assert_eq!(status(Some(3), 42).bounded_reset_secs(), Some(42));
        assert_eq!(status(None, u64::MAX).bounded_reset_secs(), Some(365 * 86_400));
        assert_eq!(
            status(Some(99), u64::MAX).bounded_reset_secs(),
            Some(365 * 86_400),
            "an unknown unit"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn grpc_answers_decode() {
        let mut w = Writer::new();
        w.uint(1, 2)
            .bytes(2, &status_bytes(1, Some((10, 2, "per_minute")), 4, Some((30, 0))))
            .bytes(2, &status_bytes(2, Some((1, 1, "")), 0, Some((0, 500_000_000))))
            .bytes(2, &status_bytes(1, None, 0, None))
            .message(3, |h| {
                h.string(1, "x-service").string(2, "yes");
            })
            .message(3, |h| {
                h.string(1, "x-raw").bytes(3, b"\xff");
            })
            .string(99, "a field from the future");
        let answer = decode_grpc(&w.into_bytes()).unwrap();
        assert_eq!(answer.overall, Code::OverLimit);
        assert_eq!(
            answer.statuses,
            vec![
                DescriptorStatus {
                    code: Code::Ok,
                    current_limit: Some(CurrentLimit {
                        name: "per_minute".into(),
                        requests_per_unit: 10,
                        window_secs: Some(60)
                    }),
                    limit_remaining: 4,
                    reset_secs: Some(30),
                },
                DescriptorStatus {
                    code: Code::OverLimit,
                    current_limit: Some(CurrentLimit {
                        name: String::new(),
                        requests_per_unit: 1,
                        window_secs: Some(1)
                    }),
                    limit_remaining: 0,
                    reset_secs: Some(1),
                },
                DescriptorStatus {
                    code: Code::Ok,
                    current_limit: None,
                    limit_remaining: 0,
                    reset_secs: None
                },
            ]
        );
        assert_eq!(
            answer.response_headers,
            vec![
                ("x-service".into(), b"yes".to_vec()),
                ("x-raw".into(), b"\xff".to_vec())
            ]
        );
        assert_eq!(
            decode_grpc(&[]).unwrap().overall,
            Code::Unknown,
            "an empty message is UNKNOWN"
        );
        assert_eq!(decode_grpc(&[0x12, 9, 1]), Err(Malformed));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn json_answers_decode() {
        let body = json!({
            "overallCode": "OVER_LIMIT",
            "statuses": [
                {"code": "OVER_LIMIT", "currentLimit": {"requestsPerUnit": 3, "unit": "HOUR", "name": "n"},
                 "limitRemaining": 0, "durationUntilReset": "12.25s"},
                {"code": "OK"}
            ],
            "responseHeadersToAdd": [{"key": "x-a", "value": "1"}]
        });
        let answer = decode_json(body.to_string().as_bytes()).unwrap();
        assert_eq!(answer.overall, Code::OverLimit);
        assert_eq!(answer.statuses.len(), 2);
        assert_eq!(
            answer.statuses[0].current_limit,
            Some(CurrentLimit {
                name: "n".into(),
                requests_per_unit: 3,
                window_secs: Some(3600)
            })
        );
        assert_eq!(answer.statuses[0].reset_secs, Some(13));
        assert_eq!(answer.statuses[1].code, Code::Ok);
        assert_eq!(answer.response_headers, vec![("x-a".into(), b"1".to_vec())]);
        let snake = decode_json(br#"{"overall_code": 1, "statuses": [{"code": 1, "limit_remaining": 7}]}"#).unwrap();
        assert_eq!(snake.overall, Code::Ok);
        assert_eq!(snake.statuses[0].limit_remaining, 7);
        assert_eq!(decode_json(b"<html>"), Err(Malformed));
        assert_eq!(decode_json(b"[]"), Err(Malformed));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn json_durations() {
        assert_eq!(json_duration_secs("30s"), Some(30));
        assert_eq!(json_duration_secs("0.000001s"), Some(1));
        assert_eq!(json_duration_secs("5.000s"), Some(5));
        assert_eq!(json_duration_secs("-1.5s"), Some(0), "a reset in the past is now");
        for unreadable in ["30", "s", "-s", ".5s", "+5s", "1.5.5s", "1e2s", " 5s"] {
            assert_eq!(json_duration_secs(unreadable), None, "{unreadable}");
        }
    }

    fn answer_with_status(status: Writer) -> Vec<u8> {
        let mut answer = Writer::new();
        answer.uint(1, 2).bytes(2, &status.into_bytes());
        answer.into_bytes()
    }

    /// A field with another wire type than its own makes the answer malformed, inside a
    /// `duration_until_reset` too.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_duration_field_with_another_wire_type_is_malformed() {
        let mut fixed64 = Writer::new();
        fixed64.uint(1, 2).bytes(4, &[0x09, 30, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decode_grpc(&answer_with_status(fixed64)), Err(Malformed));
        let mut bytes = Writer::new();
        bytes.uint(1, 2).message(4, |d| {
            d.string(1, "30");
        });
        assert_eq!(decode_grpc(&answer_with_status(bytes)), Err(Malformed));
    }

    /// A message field sent twice is merged, as protobuf parsers read it, not replaced.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_message_field_sent_twice_is_merged() {
        let mut status = Writer::new();
        status
            .uint(1, 2)
            .message(2, |l| {
                l.uint(1, 10).string(3, "per_minute");
            })
            .message(2, |l| {
                l.uint(2, 2);
            })
            .message(4, |d| {
                d.uint(1, 29);
            })
            .message(4, |d| {
                d.uint(2, 500_000_000);
            });
        let answer = decode_grpc(&answer_with_status(status)).unwrap();
        let expected = CurrentLimit {
            name: "per_minute".into(),
            requests_per_unit: 10,
            window_secs: Some(60),
        };
        assert_eq!(answer.statuses[0].current_limit, Some(expected));
        assert_eq!(answer.statuses[0].reset_secs, Some(30));
    }

    /// A member of the wrong type is what protojson refuses: the answer is malformed, never read
    /// with the member as zero or absent. `null` is a member's default.
    #[wasm_bindgen_test(unsupported = test)]
    fn json_members_of_the_wrong_type_make_the_answer_malformed() {
        let refused = [
            r#"{"overallCode": "OVER_LIMIT", "statuses": [{"code": "OVER_LIMIT", "durationUntilReset": 30}]}"#,
            r#"{"overallCode": "OVER_LIMIT", "statuses": [{"code": "OVER_LIMIT", "durationUntilReset": "soon"}]}"#,
            r#"{"overallCode": "OVER_LIMIT", "statuses": [{"code": "OVER_LIMIT", "limitRemaining": -1}]}"#,
            r#"{"overallCode": "OVER_LIMIT", "statuses": [{"code": "OVER_LIMIT", "limitRemaining": 1.5}]}"#,
            r#"{"overallCode": "OVER_LIMIT", "statuses": [{"code": "OVER_LIMIT", "limitRemaining": "lots"}]}"#,
            r#"{"overallCode": "OVER_LIMIT", "statuses": [{"code": "OVER_LIMIT", "currentLimit": 5}]}"#,
            r#"{"overallCode": "OVER_LIMIT", "statuses": [{"currentLimit": {"name": 5}}]}"#,
            r#"{"overallCode": "OK", "statuses": {"code": "OVER_LIMIT"}}"#,
            r#"{"overallCode": "OK", "responseHeadersToAdd": {"key": "x"}}"#,
            r#"{"overallCode": "OK", "responseHeadersToAdd": [{"key": "x", "value": 1}]}"#,
        ];
        for body in refused {
            assert_eq!(decode_json(body.as_bytes()), Err(Malformed), "{body}");
        }
        let defaults = r#"{"overallCode": "OK", "statuses": [{"code": "OK", "currentLimit": null,
            "limitRemaining": "7", "durationUntilReset": null}], "responseHeadersToAdd": null}"#;
        let answer = decode_json(defaults.as_bytes()).unwrap();
        assert_eq!(answer.statuses[0].limit_remaining, 7);
        assert_eq!(
            (answer.statuses[0].current_limit.clone(), answer.statuses[0].reset_secs),
            (None, None)
        );
    }
}
