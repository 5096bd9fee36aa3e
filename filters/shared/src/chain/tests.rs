use std::rc::Rc;
use std::time::Duration;

use serde::Deserialize;
use wasm_bindgen_test::wasm_bindgen_test;

use super::*;
use crate::effects::{HeaderEdit, HttpCall, LocalReply};
use crate::filter::{configure as configure_one, FilterRoot};
use crate::headers::HeaderName;
use crate::metrics::Counter;
use crate::testkit::FakeHost;

// Three members, each showing in the headers what it saw.

/// Sets `x-first` and publishes `first.state`.
struct First {
    seen: Counter,
}
/// Says whether it saw First's header and state, then waits for a call; resumed, sets `x-resumed`.
struct Second {
    seen: Counter,
    answered: Counter,
}
/// Copies `x-resumed` into `x-third`; refuses a request carrying `x-deny`.
struct Third {
    seen: Counter,
    /// Its config: whether it reads responses.
    responses: bool,
}

#[derive(Deserialize, Default, crate::config::FromConfig)]
#[serde(deny_unknown_fields)]
struct ThirdConfig {
    #[serde(default)]
    responses: bool,
    #[serde(default)]
    limit: u32,
}

fn set(name: &str, value: &str) -> HeaderEdit {
    HeaderEdit::Set(HeaderName::trusted(name), value.as_bytes().to_vec())
}

/// Appends `name` to the `x-order` response header it saw.
fn mark_response(headers: &Headers, name: &str) -> Step {
    let order = format!("{}{name};", headers.get_str("x-order").unwrap_or_default());
    Step::proceed().edit(set("x-order", &order))
}

struct Member<R>(Rc<R>);

impl FilterRoot for First {
    const NAME: &'static str = "first";
    type Filter = Member<First>;
    fn configure(_raw: &[u8], metrics: &mut MetricRegistry) -> Result<Self, ConfigError> {
        Ok(First {
            seen: metrics.counter("seen"),
        })
    }
    fn new_filter(root: &Rc<Self>) -> Member<First> {
        Member(Rc::clone(root))
    }
}

impl HttpFilter for Member<First> {
    fn on_request_headers(&mut self, _headers: &Headers, _ctx: &Ctx) -> Step {
        Step::proceed()
            .edit(set("x-first", "1"))
            .publish("first.state", "published")
            .count(self.0.seen)
    }
    fn on_response_headers(&mut self, headers: &Headers, _ctx: &Ctx) -> Step {
        mark_response(headers, "first")
    }
    fn on_request_trailers(&mut self, trailers: &Headers, _ctx: &Ctx) -> Step {
        mark_response(trailers, "first")
    }
    fn on_response_trailers(&mut self, trailers: &Headers, _ctx: &Ctx) -> Step {
        mark_response(trailers, "first")
    }
}

impl FilterRoot for Second {
    const NAME: &'static str = "second";
    type Filter = Member<Second>;
    fn configure(_raw: &[u8], metrics: &mut MetricRegistry) -> Result<Self, ConfigError> {
        Ok(Second {
            seen: metrics.counter("seen"),
            answered: metrics.counter("answered"),
        })
    }
    fn new_filter(root: &Rc<Self>) -> Member<Second> {
        Member(Rc::clone(root))
    }
    fn tick_period(&self) -> Option<Duration> {
        Some(Duration::from_secs(2))
    }
    fn on_start(&self, _ctx: &Ctx) -> RootStep {
        RootStep {
            calls: vec![(7, call())],
            ..RootStep::default()
        }
    }
    fn on_call_response(&self, tag: u32, _outcome: CallOutcome, _ctx: &Ctx) -> RootStep {
        RootStep {
            counters: if tag == 7 { vec![self.answered] } else { Vec::new() },
            ..RootStep::default()
        }
    }
}

fn call() -> HttpCall {
    HttpCall {
        cluster: "keys".to_owned(),
        headers: Vec::new(),
        body: None,
        timeout: Duration::from_secs(1),
    }
}

impl HttpFilter for Member<Second> {
    fn on_request_headers(&mut self, headers: &Headers, ctx: &Ctx) -> Step {
        let state = ctx.properties.filter_state("first.state");
        let saw = headers.contains("x-first") && state.as_deref() == Some(b"published".as_slice());
        Step::pause()
            .call(call())
            .edit(set("x-second", if saw { "saw-first" } else { "blind" }))
            .count(self.0.seen)
    }
    fn on_call_response(&mut self, _outcome: CallOutcome, _ctx: &Ctx) -> Step {
        Step::proceed().edit(set("x-resumed", "1"))
    }
    fn on_response_headers(&mut self, headers: &Headers, _ctx: &Ctx) -> Step {
        mark_response(headers, "second")
    }
    fn on_abandoned(&mut self, _ctx: &Ctx) {
        SECOND_ABANDONED.with(|n| n.set(n.get() + 1));
    }
}

thread_local! {
    /// How many requests went away while Second waited on its call.
    static SECOND_ABANDONED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl FilterRoot for Third {
    const NAME: &'static str = "third";
    type Filter = Member<Third>;
    fn configure(raw: &[u8], metrics: &mut MetricRegistry) -> Result<Self, ConfigError> {
        let config: ThirdConfig = crate::config::parse(raw)?;
        if config.limit > 10 {
            return Err(FieldPath::root().field("limit").error("at most 10"));
        }
        Ok(Third {
            seen: metrics.counter("seen"),
            responses: config.responses,
        })
    }
    fn new_filter(root: &Rc<Self>) -> Member<Third> {
        Member(Rc::clone(root))
    }
    fn tick_period(&self) -> Option<Duration> {
        Some(Duration::from_millis(500))
    }
}

impl HttpFilter for Member<Third> {
    fn on_request_headers(&mut self, headers: &Headers, _ctx: &Ctx) -> Step {
        if headers.contains("x-deny") {
            return Step::reply(LocalReply {
                status: 403,
                headers: Vec::new(),
                body: Vec::new(),
            });
        }
        let resumed = headers.get_str("x-resumed").unwrap_or("no").to_owned();
        Step::proceed().edit(set("x-third", &resumed)).count(self.0.seen)
    }
    fn on_response_headers(&mut self, headers: &Headers, _ctx: &Ctx) -> Step {
        mark_response(headers, "third")
    }
    fn on_request_trailers(&mut self, trailers: &Headers, _ctx: &Ctx) -> Step {
        mark_response(trailers, "third")
    }
    fn on_response_trailers(&mut self, trailers: &Headers, _ctx: &Ctx) -> Step {
        mark_response(trailers, "third")
    }
    fn reads_response_headers(&self) -> bool {
        self.0.responses
    }
}

fn lookup(name: &str) -> Option<Configure> {
    match name {
        "first" => Some(configure_one::<First>),
        "second" => Some(configure_one::<Second>),
        "third" => Some(configure_one::<Third>),
        _ => None,
    }
}

const HOSTED: [&str; 3] = ["first", "second", "third"];

fn chain(config: serde_json::Value) -> Result<(Rc<Chain>, MetricRegistry), ConfigError> {
    let mut metrics = MetricRegistry::new(NAME);
    let chain = configure(config.to_string().as_bytes(), &mut metrics, &lookup, &HOSTED)?;
    Ok((Rc::new(chain), metrics))
}

fn all_three(third: serde_json::Value) -> (Rc<Chain>, MetricRegistry) {
    chain(serde_json::json!({"filters": [
        {"filter": "first"},
        {"filter": "second", "config": {}},
        {"filter": "third", "config": third},
    ]}))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn error(config: serde_json::Value) -> String {
    match chain(config) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

fn value_of(step: &Step, name: &str) -> Option<String> {
    let mut headers = Headers::new();
    headers.apply(&step.header_edits);
    headers.get_str(name).map(str::to_owned)
}

#[wasm_bindgen_test(unsupported = test)]
fn each_member_sees_the_earlier_members_headers_and_state_and_a_pause_holds_the_rest() {
    let host = FakeHost::default();
    let (chain, metrics) = all_three(serde_json::json!({}));
    let mut filter = Rc::clone(&chain).new_filter();

    let paused = filter.on_request_headers(&Headers::new(), &host.ctx());
    assert_eq!(paused.action, Action::Pause);
    assert_eq!(paused.calls.len(), 1);
    assert_eq!(value_of(&paused, "x-second").as_deref(), Some("saw-first"));
    assert_eq!(value_of(&paused, "x-third"), None, "third ran before second resumed");
    assert_eq!(paused.state_writes.len(), 1);

    let resumed = filter.on_call_response(CallOutcome::Failed, &host.ctx());
    assert_eq!(resumed.action, Action::Continue);
    assert_eq!(value_of(&resumed, "x-resumed").as_deref(), Some("1"));
    assert_eq!(
        value_of(&resumed, "x-third").as_deref(),
        Some("1"),
        "third saw second's edit"
    );

    let counted: Vec<String> = metrics
        .full_names()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| paused.counters.iter().chain(&resumed.counters).any(|c| c.index() == *i))
        .map(|(_, name)| name)
        .collect();
    assert_eq!(
        counted,
        ["apisec.first.seen", "apisec.second.seen", "apisec.third.seen"]
    );
}

/// A request that goes away while a member waits tells that member, and only while it waits.
#[wasm_bindgen_test(unsupported = test)]
fn a_request_that_goes_away_tells_the_member_it_paused_at() {
    let host = FakeHost::default();
    let (chain, _) = all_three(serde_json::json!({}));
    let abandoned = || SECOND_ABANDONED.with(std::cell::Cell::get);
    let before = abandoned();
    let mut filter = Rc::clone(&chain).new_filter();
    assert_eq!(
        filter.on_request_headers(&Headers::new(), &host.ctx()).action,
        Action::Pause
    );
    filter.on_abandoned(&host.ctx());
    assert_eq!(abandoned(), before + 1);

    let mut finished = Rc::clone(&chain).new_filter();
    finished.on_request_headers(&Headers::new(), &host.ctx());
    finished.on_call_response(CallOutcome::Failed, &host.ctx());
    finished.on_abandoned(&host.ctx());
    assert_eq!(abandoned(), before + 1, "no member waits any more");
}

#[wasm_bindgen_test(unsupported = test)]
fn a_local_reply_ends_the_request_path() {
    let host = FakeHost::default();
    let (chain, _) = all_three(serde_json::json!({}));
    let mut filter = Rc::clone(&chain).new_filter();
    let headers = Headers::from_pairs([("x-deny", "1")]);
    filter.on_request_headers(&headers, &host.ctx());
    let replied = filter.on_call_response(CallOutcome::Failed, &host.ctx());
    assert!(matches!(&replied.action, Action::Reply(reply) if reply.status == 403));
    assert_eq!(value_of(&replied, "x-third"), None);
}

/// A request through `chain` that every member let go on.
fn passed(chain: &Rc<Chain>, host: &FakeHost) -> Box<dyn HttpFilter> {
    let mut filter = Rc::clone(chain).new_filter();
    assert_eq!(
        filter.on_request_headers(&Headers::new(), &host.ctx()).action,
        Action::Pause
    );
    let resumed = filter.on_call_response(CallOutcome::Failed, &host.ctx());
    assert_eq!(resumed.action, Action::Continue);
    filter
}

#[wasm_bindgen_test(unsupported = test)]
fn responses_go_through_the_members_in_reverse_skipping_those_that_do_not_read_them() {
    let host = FakeHost::default();
    let response = Headers::from_pairs([(":status", "200")]);
    let (reading, _) = all_three(serde_json::json!({"responses": true}));
    let mut filter = passed(&reading, &host);
    assert!(filter.reads_response_headers());
    let step = filter.on_response_headers(&response, &host.ctx());
    assert_eq!(value_of(&step, "x-order").as_deref(), Some("third;second;first;"));

    let (not_reading, _) = all_three(serde_json::json!({"responses": false}));
    let mut filter = passed(&not_reading, &host);
    let step = filter.on_response_headers(&response, &host.ctx());
    assert_eq!(value_of(&step, "x-order").as_deref(), Some("second;first;"));
}

#[wasm_bindgen_test(unsupported = test)]
fn trailers_go_through_every_member_that_saw_the_request_in_the_order_of_their_message() {
    let host = FakeHost::default();
    let trailers = Headers::from_pairs([("grpc-status", "0")]);
    // Third does not read response headers, but trailers reach every member.
    let (chain, _) = all_three(serde_json::json!({"responses": false}));
    let mut filter = passed(&chain, &host);
    let step = filter.on_request_trailers(&trailers, &host.ctx());
    assert_eq!(step.action, Action::Continue);
    assert_eq!(value_of(&step, "x-order").as_deref(), Some("first;third;"));
    let step = filter.on_response_trailers(&trailers, &host.ctx());
    assert_eq!(value_of(&step, "x-order").as_deref(), Some("third;first;"));
}

#[wasm_bindgen_test(unsupported = test)]
fn background_work_is_routed_back_to_the_member_that_asked() {
    let host = FakeHost::default();
    let (chain, metrics) = all_three(serde_json::json!({}));
    assert_eq!(chain.tick_period(), Some(Duration::from_millis(500)));
    let started = chain.on_start(&host.ctx());
    let [(tag, _)] = started.calls.as_slice() else {
        panic!("{:?}", started.calls)
    };
    assert_eq!(*tag, (1 << TAG_BITS) | 7);
    let answered = chain.on_call_response(*tag, CallOutcome::Failed, &host.ctx());
    let names: Vec<&str> = answered.counters.iter().filter_map(|c| metrics.name(*c)).collect();
    assert_eq!(names, ["answered"]);
    let nobody = chain.on_call_response((9 << TAG_BITS) | 7, CallOutcome::Failed, &host.ctx());
    assert!(nobody.counters.is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_bad_chain_config_is_refused_with_the_field_path() {
    use serde_json::json;
    assert_eq!(
        error(json!({"filters": [{"filter": "first"}, {"filter": "third", "config": {"limit": 11}}]})),
        "filters[1].config.limit: at most 10"
    );
    assert!(error(json!({"filters": [{"filter": "third", "config": {"nope": 1}}]}))
        .starts_with("filters[0].config.nope: unknown field `nope`"));
    assert_eq!(
        error(json!({"filters": [{"filter": "fourth"}]})),
        "filters[0].filter: \"fourth\" is not a filter of this module, which hosts first, second, third"
    );
    assert_eq!(
        error(json!({"filters": [{"filter": "chain"}]})),
        "filters[0].filter: \"chain\" is not a filter of this module, which hosts first, second, third"
    );
    assert_eq!(
        error(json!({"filters": [{"filter": "first"}, {"filter": "first"}]})),
        "filters[1].filter: first is already in the chain"
    );
    assert_eq!(error(json!({"filters": []})), "filters: name at least one filter");
    // `null` is handed on as the plugin would get it, and refused so, not read as `{}`.
    assert_eq!(
        error(json!({"filters": [{"filter": "third", "config": null}]})),
        "filters[0].config: the config must be a JSON object"
    );
    // A member's config is read as JSON first: a field given twice there is not merged away
    // before the member reads it.
    let mut metrics = MetricRegistry::new(NAME);
    let twice = br#"{"filters": [{"filter": "third", "config": {"limit": 11, "limit": 1}}]}"#;
    assert_eq!(
        configure(twice, &mut metrics, &lookup, &HOSTED)
            .err()
            .map(|e| e.to_string()),
        Some("filters[0].config: duplicate key \"limit\"".to_owned())
    );
    assert!(error(json!({"members": []})).starts_with("members: unknown field"));
}

/// Envoy runs a wasm plugin's response callbacks only if it saw the request headers
/// (`Context::encodeHeaders`: `if (!http_request_started_) return Continue;`): on the local reply
/// of a member, the members behind it, which never saw the request, must not run.
#[wasm_bindgen_test(unsupported = test)]
fn the_members_behind_one_that_answers_do_not_run_on_its_reply() {
    let host = FakeHost::default();
    let (chain, _) = chain(serde_json::json!({"filters": [
        {"filter": "third", "config": {"responses": true}},
        {"filter": "first"},
    ]}))
    .unwrap_or_else(|e| panic!("{e}"));
    let mut filter = Rc::clone(&chain).new_filter();
    let refused = filter.on_request_headers(&Headers::from_pairs([("x-deny", "1")]), &host.ctx());
    assert!(matches!(&refused.action, Action::Reply(reply) if reply.status == 403));
    // The reply comes back through the plugin.
    let reply = Headers::from_pairs([(":status", "403")]);
    let step = filter.on_response_headers(&reply, &host.ctx());
    assert_eq!(
        value_of(&step, "x-order").as_deref(),
        Some("third;"),
        "first, behind the member that answered, ran on the reply"
    );
}

/// The same for the reply Envoy makes itself while a member holds the request (the request's
/// timeout, a body over the buffer limit): the members behind the paused one never saw the
/// request, and as plugins of their own would not run on that reply.
#[wasm_bindgen_test(unsupported = test)]
fn the_members_behind_a_paused_one_do_not_run_on_envoys_reply() {
    let host = FakeHost::default();
    let (chain, _) = all_three(serde_json::json!({"responses": true}));
    let mut filter = Rc::clone(&chain).new_filter();
    let paused = filter.on_request_headers(&Headers::new(), &host.ctx());
    assert_eq!(paused.action, Action::Pause);
    let timeout = Headers::from_pairs([(":status", "408")]);
    let step = filter.on_response_headers(&timeout, &host.ctx());
    assert_eq!(
        value_of(&step, "x-order").as_deref(),
        Some("second;first;"),
        "third, behind the paused member, ran on the reply"
    );
}
