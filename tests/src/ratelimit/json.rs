//! The HTTP/1.1 JSON transport: the proto3-JSON mapping of
//! `RateLimitRequest` in, of `RateLimitResponse` out (see the module docs).

use std::convert::Infallible;

use bytes::Bytes;
use envoy_types::pb::envoy::r#type::v3::RateLimitUnit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit as ProtoUnit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::StatusCode;
use serde_json::{json, Map, Value};

use super::state::{call, lock, Shared};
use super::{Descriptor, RecordedRequest, Transport, JSON_PATH};
use crate::server::HandlerResponse;

/// Answers one HTTP request.
pub(super) async fn handle(req: hyper::Request<Incoming>, state: Shared) -> Result<HandlerResponse, Infallible> {
    if req.uri().path() != JSON_PATH {
        return Ok(text(StatusCode::NOT_FOUND, "not found"));
    }
    let parsed = match req.into_body().collect().await {
        Ok(body) => parse_request(&body.to_bytes()),
        Err(e) => Err(format!("reading the body: {e}")),
    };
    let recorded = match parsed {
        Ok(recorded) => recorded,
        Err(reason) => {
            lock(&state).calls += 1;
            return Ok(text(StatusCode::BAD_REQUEST, &format!("bad request: {reason}")));
        }
    };
    Ok(match call(&state, recorded).await {
        Ok(resp) => {
            let status = match Code::try_from(resp.overall_code) {
                Ok(Code::Ok) => StatusCode::OK,
                Ok(Code::OverLimit) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            response(status, "application/json", response_json(&resp).to_string())
        }
        Err(code) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("rate limit service fault: {code:?}"),
        ),
    })
}

fn response(status: StatusCode, content_type: &str, body: String) -> HandlerResponse {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

fn text(status: StatusCode, body: &str) -> HandlerResponse {
    response(status, "text/plain; charset=utf-8", format!("{body}\n"))
}

/// The proto3-JSON form of `resp`, fields at their default value left out
/// (as Go's `protojson.Marshal` writes it).
fn response_json(resp: &RateLimitResponse) -> Value {
    let mut out = Map::new();
    if let Some(code) = code_name(resp.overall_code) {
        out.insert("overallCode".into(), code.into());
    }
    if !resp.statuses.is_empty() {
        out.insert("statuses".into(), resp.statuses.iter().map(status_json).collect());
    }
    if !resp.response_headers_to_add.is_empty() {
        let headers = resp
            .response_headers_to_add
            .iter()
            .map(|h| json!({"key": h.key, "value": h.value}));
        out.insert("responseHeadersToAdd".into(), headers.collect());
    }
    Value::Object(out)
}

fn status_json(status: &DescriptorStatus) -> Value {
    let mut out = Map::new();
    if let Some(code) = code_name(status.code) {
        out.insert("code".into(), code.into());
    }
    if let Some(limit) = &status.current_limit {
        let mut l = Map::new();
        if !limit.name.is_empty() {
            l.insert("name".into(), limit.name.clone().into());
        }
        if limit.requests_per_unit != 0 {
            l.insert("requestsPerUnit".into(), limit.requests_per_unit.into());
        }
        if let Some(unit) = ProtoUnit::try_from(limit.unit)
            .ok()
            .filter(|u| *u != ProtoUnit::Unknown)
        {
            l.insert("unit".into(), unit.as_str_name().into());
        }
        out.insert("currentLimit".into(), Value::Object(l));
    }
    if status.limit_remaining != 0 {
        out.insert("limitRemaining".into(), status.limit_remaining.into());
    }
    if let Some(d) = &status.duration_until_reset {
        // The service only makes whole seconds.
        out.insert("durationUntilReset".into(), format!("{}s", d.seconds).into());
    }
    Value::Object(out)
}

/// The name of a non-default code (`None` for `UNKNOWN`, left out).
fn code_name(code: i32) -> Option<&'static str> {
    Code::try_from(code)
        .ok()
        .filter(|c| *c != Code::Unknown)
        .map(|c| c.as_str_name())
}

/// Parses the proto3-JSON form of a `RateLimitRequest`; `Err` says why it
/// is not one.
fn parse_request(body: &[u8]) -> Result<RecordedRequest, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let mut req = RecordedRequest {
        transport: Transport::Http,
        domain: String::new(),
        descriptors: Vec::new(),
        hits_addend: 0,
    };
    for (name, v) in fields(&value, "RateLimitRequest", &["domain", "descriptors", "hitsAddend"])? {
        match name {
            "domain" => req.domain = string(v, "domain")?,
            "descriptors" => req.descriptors = list(v, "descriptors", parse_descriptor)?,
            _ => req.hits_addend = uint(v, u32::MAX.into(), "hitsAddend")? as u32,
        }
    }
    Ok(req)
}

fn parse_descriptor(value: &Value) -> Result<Descriptor, String> {
    let mut descriptor = Descriptor {
        entries: Vec::new(),
        hits_addend: None,
    };
    let known = ["entries", "limit", "hitsAddend", "isNegativeHits"];
    for (name, v) in fields(value, "RateLimitDescriptor", &known)? {
        match name {
            "entries" => descriptor.entries = list(v, "entries", parse_entry)?,
            "limit" => check_override(v)?,
            "hitsAddend" => descriptor.hits_addend = Some(uint(v, u64::MAX, "hitsAddend")?),
            _ => {
                v.as_bool().ok_or_else(|| format!("isNegativeHits: not a bool: {v}"))?;
            }
        }
    }
    Ok(descriptor)
}

fn parse_entry(value: &Value) -> Result<(String, String), String> {
    let (mut key, mut val) = (String::new(), String::new());
    for (name, v) in fields(value, "Entry", &["key", "value"])? {
        match name {
            "key" => key = string(v, "key")?,
            _ => val = string(v, "value")?,
        }
    }
    Ok((key, val))
}

/// Checks a `RateLimitOverride` (accepted, not applied).
fn check_override(value: &Value) -> Result<(), String> {
    for (name, v) in fields(value, "RateLimitOverride", &["requestsPerUnit", "unit"])? {
        match name {
            "requestsPerUnit" => {
                uint(v, u32::MAX.into(), "requestsPerUnit")?;
            }
            _ => {
                let known = match v {
                    Value::String(s) => RateLimitUnit::from_str_name(s).is_some(),
                    Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()).is_some(),
                    _ => false,
                };
                if !known {
                    return Err(format!("unit: not a RateLimitUnit: {v}"));
                }
            }
        }
    }
    Ok(())
}

/// The non-null members of object `value` of message `message`, each under
/// its name from `known` (the JSON names; the proto names, snake_case, are
/// accepted too). Unknown and repeated fields are errors, as in `protojson`.
fn fields<'a>(
    value: &'a Value,
    message: &str,
    known: &[&'static str],
) -> Result<Vec<(&'static str, &'a Value)>, String> {
    let obj = value
        .as_object()
        .ok_or_else(|| format!("{message}: not a JSON object: {value}"))?;
    let mut out: Vec<(&'static str, &Value)> = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    for (name, v) in obj {
        let camel = lower_camel(name);
        let field = known
            .iter()
            .copied()
            .find(|k| *k == camel)
            .ok_or_else(|| format!("{message}: unknown field {name:?}"))?;
        if seen.contains(&field) {
            return Err(format!("{message}: field {field:?} given twice"));
        }
        seen.push(field);
        if !v.is_null() {
            out.push((field, v));
        }
    }
    Ok(out)
}

/// `hits_addend` -> `hitsAddend` (a camelCase name is unchanged).
fn lower_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn string(v: &Value, what: &str) -> Result<String, String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{what}: not a string: {v}"))
}

fn list<T>(v: &Value, what: &str, parse: fn(&Value) -> Result<T, String>) -> Result<Vec<T>, String> {
    v.as_array()
        .ok_or_else(|| format!("{what}: not a list: {v}"))?
        .iter()
        .map(parse)
        .collect()
}

/// An unsigned integer up to `max`: a JSON number or a decimal string, as
/// proto3 JSON writes 64-bit integers.
fn uint(v: &Value, max: u64, what: &str) -> Result<u64, String> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    n.filter(|n| *n <= max)
        .ok_or_else(|| format!("{what}: not an integer in 0..={max}: {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_name_styles_and_string_integers() {
        let body = br#"{"domain": "d", "hits_addend": "2", "descriptors": [
            {"entries": [{"key": "k", "value": "v"}, {"key": "only-key"}], "hitsAddend": "7"},
            {"entries": [], "hits_addend": 0, "limit": {"requests_per_unit": 5, "unit": "MINUTE"}, "isNegativeHits": false}
        ]}"#;
        let req = parse_request(body).expect("a valid request");
        assert_eq!(req.domain, "d");
        assert_eq!(req.hits_addend, 2);
        assert_eq!(
            req.descriptors,
            vec![
                Descriptor {
                    entries: vec![("k".into(), "v".into()), ("only-key".into(), String::new())],
                    hits_addend: Some(7),
                },
                Descriptor {
                    entries: Vec::new(),
                    hits_addend: Some(0),
                },
            ]
        );
    }

    #[test]
    fn rejects_what_protojson_rejects() {
        for body in [
            "",
            "[]",
            r#"{"domain": 1}"#,
            r#"{"domian": "d"}"#,
            r#"{"hitsAddend": 1, "hits_addend": 1}"#,
            r#"{"hitsAddend": -1}"#,
            r#"{"hitsAddend": 4294967296}"#,
            r#"{"descriptors": {}}"#,
            r#"{"descriptors": [{"entries": [{"key": "k", "extra": 1}]}]}"#,
            r#"{"descriptors": [{"limit": {"unit": "FORTNIGHT"}}]}"#,
        ] {
            assert!(parse_request(body.as_bytes()).is_err(), "accepted {body:?}");
        }
    }
}
