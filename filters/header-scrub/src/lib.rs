//! header-scrub: strips headers clients must not inject and responses must not leak, adds
//! security headers, and answers CORS.
//!
//! Request phase: every header selected by `request.remove*` or `request.reserved` is removed
//! (all duplicates, any case); a CORS preflight is answered here. Response phase: leaky headers
//! are removed, security headers added without clobbering the upstream's values (unless told),
//! and CORS headers set for allowed origins. Trailers, both ways, lose what the same rules select.
//!
//! The request-phase decision is published in filter state under [`OUTCOME_STATE`] (see
//! [`Outcome`]), so an access log can show it with
//! `%FILTER_STATE(wasm.apisec.header_scrub.outcome:PLAIN)%`.

mod config;
mod cors;
mod matcher;
mod security;

use std::rc::Rc;

use shared::{
    ConfigError, Counter, Ctx, Deny, HeaderEdit, HeaderName, Headers, HttpFilter, MetricRegistry, Realm, Step,
};

use config::Compiled;
pub use config::Config;
use cors::{Cors, Verdict};

shared::export_filter!(HeaderScrub);

/// The configured filter.
pub struct HeaderScrub(Compiled);

/// Filter-state key with the request-phase decision, one of the [`Outcome`] names.
pub const OUTCOME_STATE: &str = "apisec.header_scrub.outcome";

/// What this filter did with a request, as published in filter state for access logs. The names
/// are stable: operators match on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded; the client sent no header the request rules remove.
    Passed,
    /// Forwarded after removing at least one client-sent header (reserved or a `request.remove*` rule).
    Scrubbed,
    /// A CORS preflight, answered here with 204 and the CORS headers; never forwarded.
    PreflightAllowed,
    /// A CORS preflight from an origin, method or header list the config does not allow, answered
    /// here with 403; never forwarded.
    PreflightDenied,
}

impl Outcome {
    /// The published value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Scrubbed => "scrubbed",
            Outcome::PreflightAllowed => "preflight_allowed",
            Outcome::PreflightDenied => "preflight_denied",
        }
    }
}

/// The counters this filter keeps (`apisec.header_scrub.<name>`).
pub struct Counters {
    request_headers_removed: Counter,
    response_headers_removed: Counter,
    security_headers_added: Counter,
    cors_preflight_allowed: Counter,
    cors_preflight_refused: Counter,
    cors_origin_refused: Counter,
}

impl Counters {
    fn register(metrics: &mut MetricRegistry) -> Self {
        Self {
            request_headers_removed: metrics.counter("request_headers_removed"),
            response_headers_removed: metrics.counter("response_headers_removed"),
            security_headers_added: metrics.counter("security_headers_added"),
            cors_preflight_allowed: metrics.counter("cors_preflight_allowed"),
            cors_preflight_refused: metrics.counter("cors_preflight_refused"),
            cors_origin_refused: metrics.counter("cors_origin_refused"),
        }
    }
}

impl shared::FilterRoot for HeaderScrub {
    const NAME: &'static str = "header_scrub";
    type Filter = Scrub;

    fn configure(raw: &[u8], metrics: &mut MetricRegistry) -> Result<Self, ConfigError> {
        Compiled::new(raw, metrics).map(HeaderScrub)
    }

    fn new_filter(root: &Rc<Self>) -> Scrub {
        Scrub {
            root: Rc::clone(root),
            cors: Verdict::NotCors,
            answered_locally: false,
        }
    }
}

/// One request's scrubbing.
pub struct Scrub {
    root: Rc<HeaderScrub>,
    cors: Verdict,
    /// The preflight answer already carries every header this filter would add.
    answered_locally: bool,
}

impl HttpFilter for Scrub {
    fn on_request_headers(&mut self, headers: &Headers, _ctx: &Ctx) -> Step {
        let (step, outcome) = self.scrub_request(headers);
        step.publish(OUTCOME_STATE, outcome.as_str())
    }

    fn on_response_headers(&mut self, headers: &Headers, _ctx: &Ctx) -> Step {
        if self.answered_locally {
            return Step::proceed();
        }
        let config = &self.root.0;
        let mut removed = headers.names();
        removed.retain(|name| {
            // With CORS configured this filter is the one authority on CORS headers.
            let stale_cors = config.cors.is_some() && name.starts_with("access-control-");
            config.leaks(name) || stale_cors
        });
        let mut step = remove(&removed, config.counters.response_headers_removed);
        for (name, value) in &config.security.headers {
            // A value the upstream set counts only if it is still there.
            // An empty value is no policy (browsers ignore it): it does not displace ours.
            let upstream_set = !removed.contains(&name.as_str())
                && headers
                    .get_all(name.as_str())
                    .any(|value| !value.trim_ascii().is_empty());
            if config.security.overwrite || !upstream_set {
                step = step
                    .edit(HeaderEdit::Set(name.clone(), value.clone().into_bytes()))
                    .count(config.counters.security_headers_added);
            }
        }
        let Some(cors) = &config.cors else {
            return step;
        };
        match &self.cors {
            Verdict::Allowed { origin } => {
                for (name, value) in cors.response_headers(origin) {
                    step = step.edit(HeaderEdit::Set(name, value.into_bytes()));
                }
            }
            Verdict::Refused => step = step.count(config.counters.cors_origin_refused),
            // The same `*` without `Origin`, so a cached answer serves CORS requests too (Fetch
            // standard, "CORS protocol and HTTP caches").
            Verdict::NotCors if !cors.reflects_origin() => {
                for (name, value) in cors.response_headers("*") {
                    step = step.edit(HeaderEdit::Set(name, value.into_bytes()));
                }
            }
            Verdict::NotCors => {}
        }
        // A response that names the origin it allows depends on `Origin`, and so do the answers
        // to every other origin and to none: without `Vary`, a cache could hand one of those to
        // an allowed origin (Fetch standard, "CORS protocol and HTTP caches").
        if cors.reflects_origin() || matches!(self.cors, Verdict::Allowed { .. }) {
            step = step.edit(HeaderEdit::Add(HeaderName::trusted("vary"), b"Origin".to_vec()));
        }
        step
    }

    /// Trailers are scrubbed by the same rules as headers: an upstream or a client that merges
    /// them into the headers (RFC 9110 6.5.1 forbids it, some do) would otherwise take a spoofed
    /// or leaky field from them.
    fn on_request_trailers(&mut self, trailers: &Headers, _ctx: &Ctx) -> Step {
        let step = self.root.0.scrub_request(trailers);
        if step.header_edits.is_empty() {
            return step;
        }
        step.publish(OUTCOME_STATE, Outcome::Scrubbed.as_str())
    }

    fn on_response_trailers(&mut self, trailers: &Headers, _ctx: &Ctx) -> Step {
        let config = &self.root.0;
        let mut leaky = trailers.names();
        leaky.retain(|name| config.leaks(name));
        remove(&leaky, config.counters.response_headers_removed)
    }
}

impl Compiled {
    /// Removes every field the request rules select.
    fn scrub_request(&self, section: &Headers) -> Step {
        let mut reserved = section.names();
        reserved
            .retain(|name| self.request_rules.matches(name) && !self.request_keep.contains(&matcher::normalise(name)));
        remove(&reserved, self.counters.request_headers_removed)
    }

    /// Selected by the response rules and not kept.
    fn leaks(&self, name: &str) -> bool {
        self.response_rules.matches(name) && !self.keep.contains(&matcher::normalise(name))
    }
}

/// Removes every field of these names, counting each.
fn remove(names: &[&str], counter: Counter) -> Step {
    names.iter().fold(Step::proceed(), |step, name| {
        step.edit(HeaderEdit::Remove(HeaderName::trusted(name))).count(counter)
    })
}

impl Scrub {
    fn scrub_request(&mut self, headers: &Headers) -> (Step, Outcome) {
        let config = &self.root.0;
        if let Some(cors) = &config.cors {
            self.cors = cors.verdict(headers);
            if headers.is_cors_preflight() {
                self.answered_locally = true;
                return self.preflight(cors, headers);
            }
        }
        let step = config.scrub_request(headers);
        let outcome = match step.header_edits.is_empty() {
            true => Outcome::Passed,
            false => Outcome::Scrubbed,
        };
        (step, outcome)
    }

    fn preflight(&self, cors: &Cors, headers: &Headers) -> (Step, Outcome) {
        let config = &self.root.0;
        let (mut reply, counter, outcome) = match &self.cors {
            Verdict::Allowed { origin } if cors.preflight_allowed(headers) => {
                let mut reply = shared::LocalReply {
                    status: 204,
                    headers: cors.preflight_headers(origin),
                    body: Vec::new(),
                };
                reply.headers.push((HeaderName::trusted("vary"), "Origin".to_owned()));
                (reply, config.counters.cors_preflight_allowed, Outcome::PreflightAllowed)
            }
            _ => {
                let mut reply = Deny::Forbidden("CORS preflight refused").reply(&Realm::default());
                // The same preflight from an allowed origin gets 204: the refusal depends on
                // `Origin` as much as the answer to an actual request does.
                if cors.reflects_origin() {
                    reply.headers.push((HeaderName::trusted("vary"), "Origin".to_owned()));
                }
                (reply, config.counters.cors_preflight_refused, Outcome::PreflightDenied)
            }
        };
        for (name, value) in &config.security.headers {
            match reply.headers.iter_mut().find(|(n, _)| n == name) {
                Some(existing) if config.security.overwrite => existing.1.clone_from(value),
                Some(_) => {}
                None => reply.headers.push((name.clone(), value.clone())),
            }
        }
        (Step::reply(reply).count(counter), outcome)
    }
}

#[cfg(test)]
mod tests;
