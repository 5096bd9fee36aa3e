//! The rate-limit service as configured: how to call it, and which of its headers pass.

use std::time::Duration;

use shared::{ConfigError, FieldPath, GrpcCall, HeaderName, HttpCall, Step};

use crate::config::{FailureMode, HeaderStyle, ServiceConfig, TransportConfig};
use crate::quota;
use crate::rls::{self, Answer, Ask};

pub struct Service {
    transport: TransportConfig,
    cluster: String,
    authority: String,
    domain: String,
    timeout: Duration,
    pub failure_mode: FailureMode,
    allowed_response_headers: Vec<HeaderName>,
}

impl Service {
    /// `style`: the rate-limit headers this filter writes itself, which the service's may not
    /// duplicate.
    pub fn compile(config: &ServiceConfig, at: &FieldPath, style: HeaderStyle) -> Result<Self, ConfigError> {
        // The cluster travels in a serialized GrpcService; short ASCII keeps it valid UTF-8.
        let short_ascii = |s: &str| !s.is_empty() && s.len() < 128 && s.bytes().all(|b| b.is_ascii_graphic());
        if !short_ascii(&config.cluster) {
            return Err(at.field("cluster").error("must be 1 to 127 printable ASCII characters"));
        }
        if let Some(authority) = &config.authority {
            shared::config::call_authority(authority, &at.field("authority"))?;
        }
        if config.domain.is_empty() {
            return Err(at.field("domain").error("must not be empty"));
        }
        let timeout = shared::config::call_timeout(config.timeout_ms, &at.field("timeout_ms"))?;
        if let TransportConfig::Http { path } = &config.transport {
            shared::config::call_path(path, &at.field("transport").field("path"))?;
        }
        // The 429 carries `cache-control` from the one deny table, and `retry-after`.
        let own = quota::header_names(style)
            .iter()
            .chain(&["retry-after", "content-type", "cache-control"]);
        for (i, name) in config.allowed_response_headers.iter().enumerate() {
            let name_at = at.field("allowed_response_headers").index(i);
            name.check_settable(&name_at)?;
            if let Some(own) = own.clone().find(|own| name.as_str() == **own) {
                return Err(name_at.error(format!("{own:?} is set by this filter: a client would get it twice")));
            }
        }
        Ok(Self {
            transport: config.transport.clone(),
            cluster: config.cluster.clone(),
            authority: config.authority.clone().unwrap_or_else(|| config.cluster.clone()),
            domain: config.domain.clone(),
            timeout,
            failure_mode: config.failure_mode,
            allowed_response_headers: config.allowed_response_headers.clone(),
        })
    }

    pub fn call(&self, asks: &[Ask]) -> Step {
        match &self.transport {
            TransportConfig::Grpc {} => Step::pause().grpc_call(GrpcCall {
                cluster: self.cluster.clone(),
                authority: self.authority.clone(),
                service: rls::SERVICE.to_owned(),
                method: rls::METHOD.to_owned(),
                message: rls::encode_grpc(&self.domain, asks),
                timeout: self.timeout,
            }),
            TransportConfig::Http { path } => {
                let header = |name: &str, value: &str| (HeaderName::trusted(name), value.as_bytes().to_vec());
                Step::pause().call(HttpCall {
                    cluster: self.cluster.clone(),
                    headers: vec![
                        header(":method", "POST"),
                        header(":path", path),
                        header(":authority", &self.authority),
                        header("content-type", "application/json"),
                        header("accept", "application/json"),
                    ],
                    body: Some(rls::encode_json(&self.domain, asks)),
                    timeout: self.timeout,
                })
            }
        }
    }

    /// The service's extra response headers this gateway lets through.
    pub fn allowed_headers(&self, answer: &Answer) -> Vec<(HeaderName, String)> {
        answer
            .response_headers
            .iter()
            .filter_map(|(name, value)| {
                let name = HeaderName::new(name).ok()?;
                let value = String::from_utf8(value.clone()).ok()?;
                let printable = value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
                (printable && self.allowed_response_headers.contains(&name)).then_some((name, value))
            })
            .collect()
    }
}
