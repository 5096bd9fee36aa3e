//! scope-gate: coarse-grained authorization. Ordered rules say which OAuth scopes a route,
//! method and content type need; the scopes come from the verified claims that jwt-auth (or
//! phantom-token) published in filter state, never from anything the client sent.

mod config;

use std::rc::Rc;

use shared::route::{first_match, RequestLine, RouteMatch};
use shared::{ConfigError, Counter, Ctx, Deny, FieldPath, Headers, HttpFilter, MetricRegistry, Realm, Step};

pub use config::Config;
use config::{RequiresConfig, Unmatched};

shared::export_filter!(ScopeGate);

#[derive(Debug)]
enum Requires {
    AnyOf(Vec<String>),
    AllOf(Vec<String>),
    Public,
}

struct Rule {
    route: RouteMatch,
    content_types: Vec<String>,
    requires: Requires,
    denied: Counter,
}

struct Counters {
    allowed: Counter,
    public_allowed: Counter,
    unauthenticated: Counter,
    preflight_allowed: Counter,
    unmatched_denied: Counter,
    content_type_refused: Counter,
    path_refused: Counter,
    method_override_refused: Counter,
}

/// The configured filter.
pub struct ScopeGate {
    realm: Realm,
    scope_claims: Vec<String>,
    rules: Vec<Rule>,
    unmatched: Unmatched,
    case_insensitive: bool,
    bypass_cors_preflight: bool,
    /// Refuse requests with a method-override header: some rule reads methods, and the config
    /// does not say the headers are harmless.
    refuse_method_override: bool,
    counters: Counters,
    /// Counter names, which double as the outcomes published in filter state.
    outcomes: MetricRegistry,
}

/// Filter-state key with the outcome: the name of the counter the decision bumped (`allowed`,
/// `public_allowed`, `unauthenticated`, `preflight_allowed`, `denied_<rule id>`, `unmatched_denied`,
/// …).
pub const OUTCOME_STATE: &str = "apisec.scope_gate.outcome";

impl shared::FilterRoot for ScopeGate {
    const NAME: &'static str = "scope_gate";
    type Filter = Gate;

    fn configure(raw: &[u8], metrics: &mut MetricRegistry) -> Result<Self, ConfigError> {
        let config: Config = shared::config::parse(raw)?;
        let root = FieldPath::root();
        if config.scope_claims.is_empty() {
            return Err(root.field("scope_claims").error("name at least one claim"));
        }
        let mut rules = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        for (i, rule) in config.rules.iter().enumerate() {
            let at = root.field("rules").index(i);
            let id = rule.id.clone().unwrap_or_else(|| format!("rule_{i}"));
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(at.field("id").error("use lowercase letters, digits and '_'"));
            }
            if ids.contains(&id) {
                return Err(at.field("id").error(format!("{id:?} is used by an earlier rule")));
            }
            let requires = match &rule.requires {
                RequiresConfig::Public {} => Requires::Public,
                RequiresConfig::AnyOf { scopes } => Requires::AnyOf(scope_list(scopes, &at.field("requires"))?),
                RequiresConfig::AllOf { scopes } => Requires::AllOf(scope_list(scopes, &at.field("requires"))?),
            };
            let content_types = rule
                .content_types
                .iter()
                .enumerate()
                .map(|(j, ct)| {
                    let at = at.field("content_types").index(j);
                    match media_type(ct) {
                        // A request's `Content-Type` is one type, never a range: `*/*` would match
                        // no request, and the route would answer 415 to all.
                        Some(media) if media.split('/').any(|part| part == "*") => Err(at.error(format!(
                            "{ct:?} is a media range: list the media types the route accepts"
                        ))),
                        Some(media) => Ok(media),
                        None => Err(at.error(format!("{ct:?} is not a media type"))),
                    }
                })
                .collect::<Result<_, _>>()?;
            rules.push(Rule {
                route: if config.case_insensitive_paths {
                    RouteMatch::compile_case_insensitive(&rule.route, &at.field("match"))?
                } else {
                    RouteMatch::compile(&rule.route, &at.field("match"))?
                },
                content_types,
                requires,
                denied: metrics.counter(&format!("denied_{id}")),
            });
            ids.push(id);
        }
        let counters = Counters {
            allowed: metrics.counter("allowed"),
            public_allowed: metrics.counter("public_allowed"),
            unauthenticated: metrics.counter("unauthenticated"),
            preflight_allowed: metrics.counter("preflight_allowed"),
            unmatched_denied: metrics.counter("unmatched_denied"),
            content_type_refused: metrics.counter("content_type_refused"),
            path_refused: metrics.counter("path_refused"),
            method_override_refused: metrics.counter("method_override_refused"),
        };
        let refuse_method_override = config
            .method_override_headers
            .refuses(rules.iter().map(|rule| &rule.route));
        Ok(Self {
            realm: config.realm,
            scope_claims: config.scope_claims,
            rules,
            unmatched: config.unmatched,
            case_insensitive: config.case_insensitive_paths,
            bypass_cors_preflight: config.bypass_cors_preflight,
            refuse_method_override,
            counters,
            outcomes: metrics.clone(),
        })
    }

    fn new_filter(root: &Rc<Self>) -> Gate {
        Gate { root: Rc::clone(root) }
    }
}

fn scope_list(scopes: &[String], at: &FieldPath) -> Result<Vec<String>, ConfigError> {
    if scopes.is_empty() {
        return Err(at
            .field("scopes")
            .error("name at least one scope (or use \"type\": \"public\")"));
    }
    for (i, scope) in scopes.iter().enumerate() {
        // RFC 6749 scope-token: visible ASCII except '"' and '\'.
        if scope.is_empty()
            || scope
                .bytes()
                .any(|b| !(0x21..=0x7e).contains(&b) || b == b'"' || b == b'\\')
        {
            return Err(at
                .field("scopes")
                .index(i)
                .error(format!("{scope:?} is not a scope token")));
        }
    }
    Ok(scopes.to_vec())
}

/// The media type of a `Content-Type` value, lowercase, without parameters.
fn media_type(value: &str) -> Option<String> {
    let media = value.split(';').next()?.trim().to_ascii_lowercase();
    let (kind, sub) = media.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    (token(kind) && token(sub)).then_some(media)
}

/// The scope claims of a verified token, as read: each a space-separated string (RFC 8693
/// `scope`) or an array of strings (`scp`); any other value grants nothing.
struct Scopes(serde_json::Map<String, serde_json::Value>);

impl Scopes {
    fn contains(&self, scope: &str) -> bool {
        self.0.values().any(|claim| match claim {
            serde_json::Value::String(list) => list.split(' ').any(|s| s == scope),
            serde_json::Value::Array(items) => items.iter().any(|item| item.as_str() == Some(scope)),
            _ => false,
        })
    }
}

/// One request's authorization.
pub struct Gate {
    root: Rc<ScopeGate>,
}

impl HttpFilter for Gate {
    fn reads_response_headers(&self) -> bool {
        false
    }

    fn on_request_headers(&mut self, headers: &Headers, ctx: &Ctx) -> Step {
        let step = self.decide(headers, ctx);
        let outcome = step.counters.first().and_then(|c| self.root.outcomes.name(*c));
        let outcome = outcome.unwrap_or("allowed").to_owned();
        step.publish(OUTCOME_STATE, outcome)
    }
}

impl Gate {
    fn decide(&self, headers: &Headers, ctx: &Ctx) -> Step {
        let gate = &self.root;
        let Some(line) = RequestLine::of(headers) else {
            return self.deny(
                Deny::MalformedRequest("malformed request line"),
                gate.counters.path_refused,
            );
        };
        if let Some(reason) = shared::route::path_refusal(line.path) {
            log::debug!("scope_gate: path refused: {reason}");
            return self.deny(
                Deny::MalformedRequest("the request path is not in normal form"),
                gate.counters.path_refused,
            );
        }
        if headers.has_path_override() {
            log::debug!("scope_gate: path-override header refused");
            return self.deny(
                Deny::MalformedRequest("path-override headers are not accepted"),
                gate.counters.path_refused,
            );
        }
        // `POST` with `X-HTTP-Method-Override: DELETE` is a DELETE to Rails, Express's
        // `method-override` and many Java stacks: the rules would judge one method and the
        // upstream run another. Refused only where a rule reads methods, as paths are only where
        // a rule reads paths.
        if gate.refuse_method_override && headers.has_method_override() {
            log::debug!("scope_gate: method-override header refused");
            return self.deny(
                Deny::MalformedRequest("method-override headers are not accepted"),
                gate.counters.method_override_refused,
            );
        }
        let line = if gate.case_insensitive {
            line.case_folded()
        } else {
            line
        };
        let Ok(rule) = first_match(&gate.rules, |rule| &rule.route, &line) else {
            log::debug!("scope_gate: path refused: its decoded form matches another rule");
            return self.deny(
                Deny::MalformedRequest("the request path is another route once its escapes are decoded"),
                gate.counters.path_refused,
            );
        };
        let Some(rule) = rule else {
            return match gate.unmatched {
                Unmatched::Allow => Step::proceed().count(gate.counters.public_allowed),
                Unmatched::Deny => self.deny(
                    Deny::Forbidden("no rule allows this request"),
                    gate.counters.unmatched_denied,
                ),
            };
        };
        let (needed, all) = match &rule.requires {
            Requires::Public => return self.check_content_type(rule, headers, gate.counters.public_allowed),
            Requires::AnyOf(needed) => (needed, false),
            Requires::AllOf(needed) => (needed, true),
        };
        let Some(scopes) = self.verified_scopes(ctx) else {
            // A browser's preflight carries no credentials (Fetch), so the authenticating filter
            // in front lets it through by default; refusing it here would fail every cross-origin
            // call the upstream's own CORS handling allows.
            if gate.bypass_cors_preflight && headers.is_plain_cors_preflight() {
                return Step::proceed().count(gate.counters.preflight_allowed);
            }
            return self.deny(Deny::MissingToken, gate.counters.unauthenticated);
        };
        let satisfied = if all {
            needed.iter().all(|s| scopes.contains(s))
        } else {
            needed.iter().any(|s| scopes.contains(s))
        };
        if !satisfied {
            // RFC 6750 section 3: `scope` is what the token needs. For `any_of` that is one of
            // them (the first): all of them would send a client to ask for more than it needs.
            let scope = if all {
                needed.join(" ")
            } else {
                needed.first().cloned().unwrap_or_default()
            };
            return self.deny(Deny::InsufficientScope { scope }, rule.denied);
        }
        self.check_content_type(rule, headers, gate.counters.allowed)
    }

    /// The scopes of the verified claims in filter state; `None` when no filter verified a token.
    fn verified_scopes(&self, ctx: &Ctx) -> Option<Scopes> {
        let raw = ctx.properties.filter_state(shared::handoff::CLAIMS)?;
        let Some(claims) = shared::handoff::read_claims(&raw, &self.root.scope_claims) else {
            log::warn!("scope_gate: the verified claims in filter state are not a JSON object");
            return None;
        };
        Some(Scopes(claims))
    }

    fn check_content_type(&self, rule: &Rule, headers: &Headers, allowed: Counter) -> Step {
        if rule.content_types.is_empty() {
            return Step::proceed().count(allowed);
        }
        // Sent more than once, `Content-Type` is one of them to the upstream, which one is its
        // choice: each must be a type the rule accepts.
        let mut given = headers.get_all("content-type").peekable();
        let accepted = given.peek().is_some()
            && given.all(|value| {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(media_type)
                    .is_some_and(|media| rule.content_types.contains(&media))
            });
        if accepted {
            Step::proceed().count(allowed)
        } else {
            self.deny(
                Deny::UnsupportedMediaType("this content type is not accepted here"),
                self.root.counters.content_type_refused,
            )
        }
    }

    fn deny(&self, deny: Deny, counter: Counter) -> Step {
        Step::reply(deny.reply(&self.root.realm)).count(counter)
    }
}

#[cfg(test)]
mod tests;
