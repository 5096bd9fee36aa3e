//! The per-request context: reads headers, runs the core, carries out its step.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action as HostAction, BufferType, MapType};

use super::host::{now_ms, read_headers, Host};
use crate::effects::{Action, CallOutcome, HeaderEdit, HttpCall, Step};
use crate::filter::{FilterRoot, HttpFilter};
use crate::ports::Ctx;
use crate::Deny;

/// Largest outbound-call response body read into the VM; a core decides what is too big.
const MAX_CALL_BODY: usize = 1 << 20;

#[derive(Clone, Copy)]
enum Phase {
    Request,
    Response,
}

impl Phase {
    fn map(self) -> MapType {
        match self {
            Phase::Request => MapType::HttpRequestHeaders,
            Phase::Response => MapType::HttpResponseHeaders,
        }
    }
}

pub struct HttpAdapter<R: FilterRoot> {
    /// `None` only if the host created a stream on an unconfigured root: such requests get 503.
    filter: Option<R::Filter>,
    metric_ids: Rc<Vec<Option<u32>>>,
    /// Tokens of outbound calls still awaited; the request resumes when the last one answers.
    pending_calls: Vec<u32>,
}

impl<R: FilterRoot> HttpAdapter<R> {
    pub fn new(filter: Option<R::Filter>, metric_ids: Rc<Vec<Option<u32>>>) -> Self {
        Self {
            filter,
            metric_ids,
            pending_calls: Vec::new(),
        }
    }

    fn run(&mut self, phase: Phase, callback: impl FnOnce(&mut R::Filter, &Ctx) -> Step) -> HostAction {
        let Some(filter) = self.filter.as_mut() else {
            log::error!("{}: request on an unconfigured plugin", R::NAME);
            let step = Step::reply(Deny::Unavailable { retry_after_secs: None }.reply(&Default::default()));
            return self.carry_out(step, phase);
        };
        let host = Host;
        let ctx = Ctx {
            now_ms: now_ms(),
            store: &host,
            properties: &host,
            crypto: &host,
        };
        let step = callback(filter, &ctx);
        self.carry_out(step, phase)
    }

    fn carry_out(&mut self, step: Step, phase: Phase) -> HostAction {
        for counter in &step.counters {
            if let Some(Some(id)) = self.metric_ids.get(counter.index()) {
                let _ = hostcalls::increment_metric(*id, 1);
            }
        }
        for write in &step.state_writes {
            if hostcalls::set_property(vec![write.key.as_str()], Some(&write.value)).is_err() {
                log::warn!("{}: could not publish filter state {}", R::NAME, write.key);
            }
        }
        for edit in &step.header_edits {
            apply_edit(phase.map(), edit);
        }
        let mut failed_calls = 0;
        for call in &step.calls {
            match dispatch(call) {
                Some(token) => self.pending_calls.push(token),
                None => failed_calls += 1,
            }
        }
        match step.action {
            Action::Continue => HostAction::Continue,
            Action::Pause if failed_calls > 0 => {
                log::warn!("{}: outbound call could not be dispatched", R::NAME);
                self.after_call(CallOutcome::Failed)
            }
            Action::Pause => HostAction::Pause,
            Action::Reply(reply) => {
                let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                if hostcalls::send_http_response(u32::from(reply.status), headers, Some(&reply.body)).is_err() {
                    log::error!("{}: could not send local reply {}", R::NAME, reply.status);
                }
                HostAction::Pause
            }
        }
    }

    /// Hands a call's outcome to the core and, if it lets the request go on, resumes it.
    fn after_call(&mut self, outcome: CallOutcome) -> HostAction {
        let action = self.run(Phase::Request, |filter, ctx| filter.on_call_response(outcome, ctx));
        if matches!(action, HostAction::Continue) && self.pending_calls.is_empty() {
            let _ = hostcalls::resume_http_request();
        }
        action
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

fn dispatch(call: &HttpCall) -> Option<u32> {
    let mut headers = Vec::with_capacity(call.headers.len());
    for (name, value) in &call.headers {
        headers.push((name.as_str(), std::str::from_utf8(value).ok()?));
    }
    hostcalls::dispatch_http_call(&call.cluster, headers, call.body.as_deref(), Vec::new(), call.timeout).ok()
}

impl<R: FilterRoot> Context for HttpAdapter<R> {
    fn on_http_call_response(&mut self, token_id: u32, num_headers: usize, body_size: usize, _trailers: usize) {
        self.pending_calls.retain(|t| *t != token_id);
        // No headers means the host had no response: timeout, reset or connection failure.
        let outcome = if num_headers == 0 {
            CallOutcome::Failed
        } else {
            let headers = read_headers(MapType::HttpCallResponseHeaders);
            let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size.min(MAX_CALL_BODY))
                .ok()
                .flatten()
                .unwrap_or_default();
            match headers.status() {
                Some(status) => CallOutcome::Response { status, headers, body },
                None => CallOutcome::Failed,
            }
        };
        self.after_call(outcome);
    }
}

impl<R: FilterRoot> HttpContext for HttpAdapter<R> {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> HostAction {
        let headers = read_headers(MapType::HttpRequestHeaders);
        self.run(Phase::Request, |filter, ctx| filter.on_request_headers(&headers, ctx))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> HostAction {
        let headers = read_headers(MapType::HttpResponseHeaders);
        self.run(Phase::Response, |filter, ctx| filter.on_response_headers(&headers, ctx))
    }
}
