//! The per-request context: reads headers, runs the core, carries out its step.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use super::abi::{self, BufferType, MapType};
use super::dispatch::HostAction;
use super::host::{bump, ctx, dispatch, dispatch_grpc, log_undispatched, read_grpc_outcome, read_headers};
use super::waiters::{self, Wakeable};
use crate::effects::{self, Action, CallOutcome, GrpcOutcome, HeaderEdit, LocalReply, Step};
use crate::filter::HttpFilter;
use crate::headers::Headers;
use crate::ports::Ctx;
use crate::Deny;

/// Largest outbound-call response body read into the VM; a core decides what is too big.
pub const MAX_CALL_BODY: usize = 1 << 20;

/// The header map a step's edits go to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    RequestHeaders,
    ResponseHeaders,
    RequestTrailers,
    ResponseTrailers,
}

impl Section {
    fn map(self) -> MapType {
        match self {
            Section::RequestHeaders => MapType::RequestHeaders,
            Section::ResponseHeaders => MapType::ResponseHeaders,
            Section::RequestTrailers => MapType::RequestTrailers,
            Section::ResponseTrailers => MapType::ResponseTrailers,
        }
    }
}

/// A callback of the core, with what it gets. (Data rather than a closure: one copy of the code
/// that runs callbacks, not one per callback.)
enum Event<'a> {
    RequestHeaders(Headers),
    ResponseHeaders(Headers),
    RequestTrailers(Headers),
    ResponseTrailers(Headers),
    CallResponse(CallOutcome),
    GrpcResponse(GrpcOutcome),
    Wake(&'a str),
}

impl Event<'_> {
    /// Which header map the step's edits go to.
    fn section(&self) -> Section {
        match self {
            Event::ResponseHeaders(_) => Section::ResponseHeaders,
            Event::RequestTrailers(_) => Section::RequestTrailers,
            Event::ResponseTrailers(_) => Section::ResponseTrailers,
            _ => Section::RequestHeaders,
        }
    }

    fn deliver(self, filter: &mut dyn HttpFilter, ctx: &Ctx) -> Step {
        match self {
            Event::RequestHeaders(headers) => filter.take_request_headers(headers, ctx),
            Event::ResponseHeaders(headers) => filter.take_response_headers(headers, ctx),
            Event::RequestTrailers(trailers) => filter.on_request_trailers(&trailers, ctx),
            Event::ResponseTrailers(trailers) => filter.on_response_trailers(&trailers, ctx),
            Event::CallResponse(outcome) => filter.on_call_response(outcome, ctx),
            Event::GrpcResponse(outcome) => filter.on_grpc_response(outcome, ctx),
            Event::Wake(signal) => filter.on_wake(signal, ctx),
        }
    }
}

/// A stream's context, as the dispatcher holds it; the state lives behind an `Rc` so waiters
/// can be woken. The same type for every filter (the filter is a trait object), like
/// [`super::root::Root`].
pub struct HttpAdapter {
    shell: Rc<Shell>,
}

struct Shell {
    context_id: u32,
    /// [`FilterRoot::NAME`](crate::FilterRoot::NAME), for logs.
    name: &'static str,
    this: Weak<Shell>,
    state: RefCell<State>,
}

struct State {
    /// `None` only if the host created a stream on an unconfigured root: such requests get 503.
    filter: Option<Box<dyn HttpFilter>>,
    metric_ids: Rc<Vec<Option<u32>>>,
    /// Tokens of outbound calls still awaited.
    pending_calls: Vec<u32>,
    /// Signals to notify if the stream goes away while the filter waits.
    notify_if_abandoned: Vec<String>,
}

impl HttpAdapter {
    pub fn new(
        context_id: u32,
        name: &'static str,
        filter: Option<Box<dyn HttpFilter>>,
        metric_ids: Rc<Vec<Option<u32>>>,
    ) -> Self {
        let shell = Rc::new_cyclic(|this| Shell {
            context_id,
            name,
            this: this.clone(),
            state: RefCell::new(State {
                filter,
                metric_ids,
                pending_calls: Vec::new(),
                notify_if_abandoned: Vec::new(),
            }),
        });
        Self { shell }
    }

    /// A stream of no configured filter: its request gets 503, never a pass.
    pub fn unconfigured(context_id: u32) -> Self {
        Self::new(context_id, "module", None, Rc::new(Vec::new()))
    }
}

impl Shell {
    /// Runs a callback of the core and carries out its step. Returns what the host should do now.
    fn run(&self, event: Event<'_>) -> HostAction {
        let (action, notify) = {
            let Ok(mut state) = self.state.try_borrow_mut() else {
                // The host defers what could call back into a running stream (local replies), so
                // this is never expected; if it happens, the request is refused, never passed.
                log::error!("{}: re-entrant callback refused", self.name);
                send_reply(
                    self.name,
                    &Deny::Unavailable { retry_after_secs: None }.reply(&Default::default()),
                );
                return HostAction::Pause;
            };
            state.run(event, self)
        };
        if !notify.is_empty() {
            for signal in &notify {
                waiters::notify(signal);
            }
            let _ = abi::set_effective_context(self.context_id);
        }
        action
    }

    /// Runs a callback that happens while the request is paused, and resumes it if the core says so.
    fn run_paused(&self, event: Event<'_>) {
        let action = self.run(event);
        let idle = self.state.try_borrow().is_ok_and(|s| s.pending_calls.is_empty());
        if matches!(action, HostAction::Continue) && idle {
            let _ = abi::resume_http_request();
        }
    }
}

impl State {
    fn run(&mut self, event: Event<'_>, shell: &Shell) -> (HostAction, Vec<String>) {
        let ctx = ctx();
        let section = event.section();
        let step = match self.filter.as_mut() {
            Some(filter) => event.deliver(&mut **filter, &ctx),
            None => {
                log::error!("{}: request on an unconfigured plugin", shell.name);
                Step::reply(Deny::Unavailable { retry_after_secs: None }.reply(&Default::default()))
            }
        };
        self.carry_out(step, section, shell, &ctx)
    }

    fn carry_out(&mut self, mut step: Step, section: Section, shell: &Shell, ctx: &Ctx) -> (HostAction, Vec<String>) {
        bump(&self.metric_ids, &step.counters);
        for write in &step.state_writes {
            // A one-segment property path is the segment itself.
            if abi::set_property(write.key.as_bytes(), &write.value).is_err() {
                log::warn!("{}: could not publish filter state {}", shell.name, write.key);
            }
        }
        effects::compact(&mut step.header_edits);
        for edit in &step.header_edits {
            apply_edit(section.map(), edit);
        }
        // Kept while the filter waits; once it lets the request go on or answers it, nobody
        // waits on it any more.
        if matches!(step.action, Action::Continue | Action::Reply(_)) {
            self.notify_if_abandoned.clear();
        } else if !step.notify_if_abandoned.is_empty() {
            self.notify_if_abandoned.clone_from(&step.notify_if_abandoned);
        }
        let mut undispatched = 0;
        for call in &step.calls {
            match dispatch(call, shell.context_id) {
                Some(token) => self.pending_calls.push(token),
                None => {
                    undispatched += 1;
                    log_undispatched(shell.name, &call.cluster);
                }
            }
        }
        let mut grpc_undispatched = 0;
        for call in &step.grpc_calls {
            match dispatch_grpc(call, shell.context_id) {
                Some(token) => self.pending_calls.push(token),
                None => {
                    grpc_undispatched += 1;
                    log_undispatched(shell.name, &call.cluster);
                }
            }
        }
        let mut notify = step.notify;
        let action = match step.action {
            Action::Continue => HostAction::Continue,
            Action::Pause if undispatched + grpc_undispatched > 0 => {
                let (action, more) = match self.filter.as_mut() {
                    Some(filter) => {
                        let step = if undispatched > 0 {
                            filter.on_call_response(CallOutcome::Failed, ctx)
                        } else {
                            filter.on_grpc_response(GrpcOutcome::unavailable(), ctx)
                        };
                        self.carry_out(step, section, shell, ctx)
                    }
                    None => (HostAction::Continue, Vec::new()),
                };
                notify.extend(more);
                action
            }
            Action::Pause => HostAction::Pause,
            Action::Wait(signal) => {
                let this: Weak<dyn Wakeable> = shell.this.clone();
                waiters::register(&signal, this);
                HostAction::Pause
            }
            Action::Reply(reply) => {
                send_reply(shell.name, &reply);
                HostAction::Pause
            }
        };
        (action, notify)
    }
}

impl Wakeable for Shell {
    fn wake(&self, signal: &str) {
        if abi::set_effective_context(self.context_id).is_err() {
            return;
        }
        self.run_paused(Event::Wake(signal));
    }
}

impl Drop for HttpAdapter {
    fn drop(&mut self) {
        let Ok(mut state) = self.shell.state.try_borrow_mut() else {
            return;
        };
        // Still waiting (on a call, or on a signal) when the stream went away.
        let abandoned = std::mem::take(&mut state.notify_if_abandoned);
        // The filter goes first: its own drop gives up what it led (an in-flight fetch), so the
        // requests woken next see it given up rather than still in flight.
        let mut filter = state.filter.take();
        if let Some(filter) = filter.as_mut().filter(|_| !state.pending_calls.is_empty()) {
            filter.on_abandoned(&ctx());
        }
        drop(state);
        drop(filter);
        for signal in &abandoned {
            waiters::notify(signal);
        }
    }
}

fn send_reply(name: &str, reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    if abi::send_local_response(u32::from(reply.status), &reply.body, &crate::wire::map(&headers)).is_err() {
        log::error!("{name}: could not send local reply {}", reply.status);
    }
}

fn apply_edit(map: MapType, edit: &HeaderEdit) {
    let result = match edit {
        HeaderEdit::Remove(name) => abi::remove_header(map, name.as_str()),
        // One host call: Envoy's replace drops every entry of the name and adds this one.
        HeaderEdit::Set(name, value) => abi::replace_header(map, name.as_str(), value),
        HeaderEdit::Add(name, value) => abi::add_header(map, name.as_str(), value),
    };
    if result.is_err() {
        log::warn!("header edit on {edit:?} failed");
    }
}

/// Reads the answer to an outbound call the host just delivered.
pub fn read_call_outcome(num_headers: usize, body_size: usize) -> CallOutcome {
    // No headers means the host had no response: timeout, reset or connection failure.
    if num_headers == 0 {
        return CallOutcome::Failed;
    }
    let headers = read_headers(MapType::CallResponseHeaders);
    let body = abi::buffer(BufferType::HttpCallResponseBody, 0, body_size.min(MAX_CALL_BODY))
        .ok()
        .flatten()
        .unwrap_or_default();
    match headers.status() {
        Some(status) => CallOutcome::Response { status, headers, body },
        None => CallOutcome::Failed,
    }
}

/// The callbacks the dispatcher routes to a stream.
impl HttpAdapter {
    pub fn on_http_call_response(&self, token_id: u32, num_headers: usize, body_size: usize) {
        if let Ok(mut state) = self.shell.state.try_borrow_mut() {
            state.pending_calls.retain(|t| *t != token_id);
        }
        let outcome = read_call_outcome(num_headers, body_size);
        self.shell.run_paused(Event::CallResponse(outcome));
    }

    pub fn on_grpc_call_response(&self, token_id: u32, status_code: u32, response_size: usize) {
        if let Ok(mut state) = self.shell.state.try_borrow_mut() {
            state.pending_calls.retain(|t| *t != token_id);
        }
        let outcome = read_grpc_outcome(status_code, response_size);
        self.shell.run_paused(Event::GrpcResponse(outcome));
    }

    pub fn on_request_headers(&self) -> HostAction {
        let headers = read_headers(MapType::RequestHeaders);
        #[cfg(feature = "crash-test")]
        if headers.get("x-apisec-crash-test").is_some() {
            std::process::abort();
        }
        self.shell.run(Event::RequestHeaders(headers))
    }

    pub fn on_response_headers(&self) -> HostAction {
        let wanted = self.shell.state.try_borrow().is_ok_and(|state| {
            state
                .filter
                .as_ref()
                .is_some_and(|filter| filter.reads_response_headers())
        });
        if !wanted {
            return HostAction::Continue;
        }
        let headers = read_headers(MapType::ResponseHeaders);
        self.shell.run(Event::ResponseHeaders(headers))
    }

    // Called only for a message that has trailers.
    pub fn on_request_trailers(&self) -> HostAction {
        let trailers = read_headers(MapType::RequestTrailers);
        self.shell.run(Event::RequestTrailers(trailers))
    }

    pub fn on_response_trailers(&self) -> HostAction {
        let trailers = read_headers(MapType::ResponseTrailers);
        self.shell.run(Event::ResponseTrailers(trailers))
    }
}
