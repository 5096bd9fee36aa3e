//! The per-request context: reads headers, runs the core, carries out its step.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action as HostAction, BufferType, MapType};

use super::host::{bump, ctx, dispatch, dispatch_grpc, read_grpc_outcome, read_headers};
use super::waiters::{self, Wakeable};
use crate::effects::{Action, CallOutcome, GrpcOutcome, HeaderEdit, Step};
use crate::filter::{FilterRoot, HttpFilter};
use crate::ports::Ctx;
use crate::Deny;

/// Largest outbound-call response body read into the VM; a core decides what is too big.
pub const MAX_CALL_BODY: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Request,
    Response,
}

/// The context the SDK owns; the state lives behind an `Rc` so waiters can be woken.
pub struct HttpAdapter<R: FilterRoot> {
    shell: Rc<Shell<R>>,
}

struct Shell<R: FilterRoot> {
    context_id: u32,
    this: Weak<Shell<R>>,
    state: RefCell<State<R>>,
}

struct State<R: FilterRoot> {
    /// `None` only if the host created a stream on an unconfigured root: such requests get 503.
    filter: Option<R::Filter>,
    metric_ids: Rc<Vec<Option<u32>>>,
    /// Tokens of outbound calls still awaited.
    pending_calls: Vec<u32>,
    notify_if_abandoned: Vec<String>,
}

impl<R: FilterRoot> HttpAdapter<R> {
    pub fn new(context_id: u32, filter: Option<R::Filter>, metric_ids: Rc<Vec<Option<u32>>>) -> Self {
        let shell = Rc::new_cyclic(|this| Shell {
            context_id,
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
}

impl<R: FilterRoot> Shell<R> {
    /// Runs a callback of the core and carries out its step. Returns what the host should do now.
    fn run(&self, phase: Phase, callback: impl FnOnce(&mut R::Filter, &Ctx) -> Step) -> HostAction {
        let (action, notify) = {
            let Ok(mut state) = self.state.try_borrow_mut() else {
                log::error!("{}: re-entrant callback ignored", R::NAME);
                return HostAction::Continue;
            };
            state.run(phase, callback, self)
        };
        if !notify.is_empty() {
            for signal in &notify {
                waiters::notify(signal);
            }
            let _ = hostcalls::set_effective_context(self.context_id);
        }
        action
    }

    /// Runs a callback that happens while the request is paused, and resumes it if the core says so.
    fn run_paused(&self, callback: impl FnOnce(&mut R::Filter, &Ctx) -> Step) {
        let action = self.run(Phase::Request, callback);
        let idle = self.state.try_borrow().is_ok_and(|s| s.pending_calls.is_empty());
        if matches!(action, HostAction::Continue) && idle {
            let _ = hostcalls::resume_http_request();
        }
    }
}

impl<R: FilterRoot> State<R> {
    fn run(
        &mut self,
        phase: Phase,
        callback: impl FnOnce(&mut R::Filter, &Ctx) -> Step,
        shell: &Shell<R>,
    ) -> (HostAction, Vec<String>) {
        let ctx = ctx();
        let step = match self.filter.as_mut() {
            Some(filter) => callback(filter, &ctx),
            None => {
                log::error!("{}: request on an unconfigured plugin", R::NAME);
                Step::reply(Deny::Unavailable { retry_after_secs: None }.reply(&Default::default()))
            }
        };
        self.carry_out(step, phase, shell, &ctx)
    }

    fn carry_out(&mut self, step: Step, phase: Phase, shell: &Shell<R>, ctx: &Ctx) -> (HostAction, Vec<String>) {
        bump(&self.metric_ids, &step.counters);
        for write in &step.state_writes {
            if hostcalls::set_property(vec![write.key.as_str()], Some(&write.value)).is_err() {
                log::warn!("{}: could not publish filter state {}", R::NAME, write.key);
            }
        }
        let map = match phase {
            Phase::Request => MapType::HttpRequestHeaders,
            Phase::Response => MapType::HttpResponseHeaders,
        };
        for edit in &step.header_edits {
            apply_edit(map, edit);
        }
        if !step.notify_if_abandoned.is_empty() {
            self.notify_if_abandoned.clone_from(&step.notify_if_abandoned);
        }
        let mut undispatched = 0;
        for call in &step.calls {
            match dispatch(call) {
                Some(token) => self.pending_calls.push(token),
                None => undispatched += 1,
            }
        }
        let mut grpc_undispatched = 0;
        for call in &step.grpc_calls {
            match dispatch_grpc(call) {
                Some(token) => self.pending_calls.push(token),
                None => grpc_undispatched += 1,
            }
        }
        let mut notify = step.notify;
        let action = match step.action {
            Action::Continue => HostAction::Continue,
            Action::Pause if undispatched + grpc_undispatched > 0 => {
                log::warn!("{}: outbound call could not be dispatched", R::NAME);
                let (action, more) = match self.filter.as_mut() {
                    Some(filter) => {
                        let step = if undispatched > 0 {
                            filter.on_call_response(CallOutcome::Failed, ctx)
                        } else {
                            filter.on_grpc_response(GrpcOutcome::unavailable(), ctx)
                        };
                        self.carry_out(step, phase, shell, ctx)
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
                let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                if hostcalls::send_http_response(u32::from(reply.status), headers, Some(&reply.body)).is_err() {
                    log::error!("{}: could not send local reply {}", R::NAME, reply.status);
                }
                HostAction::Pause
            }
        };
        (action, notify)
    }
}

impl<R: FilterRoot> Wakeable for Shell<R> {
    fn wake(&self, signal: &str) {
        if hostcalls::set_effective_context(self.context_id).is_err() {
            return;
        }
        self.run_paused(|filter, ctx| filter.on_wake(signal, ctx));
    }
}

impl<R: FilterRoot> Drop for HttpAdapter<R> {
    fn drop(&mut self) {
        let Ok(mut state) = self.shell.state.try_borrow_mut() else {
            return;
        };
        let abandoned = if state.pending_calls.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut state.notify_if_abandoned)
        };
        // The filter goes first: its own drop gives up what it led (an in-flight fetch), so the
        // requests woken next see it given up rather than still in flight.
        let filter = state.filter.take();
        drop(state);
        drop(filter);
        for signal in &abandoned {
            waiters::notify(signal);
        }
    }
}

fn apply_edit(map: MapType, edit: &HeaderEdit) {
    let result = match edit {
        HeaderEdit::Remove(name) => hostcalls::remove_map_value(map, name.as_str()),
        HeaderEdit::Set(name, value) => hostcalls::remove_map_value(map, name.as_str())
            .and_then(|()| hostcalls::add_map_value_bytes(map, name.as_str(), value)),
        HeaderEdit::Add(name, value) => hostcalls::add_map_value_bytes(map, name.as_str(), value),
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
    let headers = read_headers(MapType::HttpCallResponseHeaders);
    let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size.min(MAX_CALL_BODY))
        .ok()
        .flatten()
        .unwrap_or_default();
    match headers.status() {
        Some(status) => CallOutcome::Response { status, headers, body },
        None => CallOutcome::Failed,
    }
}

impl<R: FilterRoot> Context for HttpAdapter<R> {
    fn on_http_call_response(&mut self, token_id: u32, num_headers: usize, body_size: usize, _trailers: usize) {
        if let Ok(mut state) = self.shell.state.try_borrow_mut() {
            state.pending_calls.retain(|t| *t != token_id);
        }
        let outcome = read_call_outcome(num_headers, body_size);
        self.shell
            .run_paused(|filter, ctx| filter.on_call_response(outcome, ctx));
    }

    fn on_grpc_call_response(&mut self, token_id: u32, status_code: u32, response_size: usize) {
        if let Ok(mut state) = self.shell.state.try_borrow_mut() {
            state.pending_calls.retain(|t| *t != token_id);
        }
        let outcome = read_grpc_outcome(status_code, response_size);
        self.shell
            .run_paused(|filter, ctx| filter.on_grpc_response(outcome, ctx));
    }
}

impl<R: FilterRoot> HttpContext for HttpAdapter<R> {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> HostAction {
        let headers = read_headers(MapType::HttpRequestHeaders);
        self.shell
            .run(Phase::Request, |filter, ctx| filter.on_request_headers(&headers, ctx))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> HostAction {
        let headers = read_headers(MapType::HttpResponseHeaders);
        self.shell
            .run(Phase::Response, |filter, ctx| filter.on_response_headers(&headers, ctx))
    }
}
