//! The contract between a filter core and the adapter.

use std::rc::Rc;
use std::time::Duration;

use crate::config::ConfigError;
use crate::effects::{CallOutcome, GrpcOutcome, RootStep, Step};
use crate::headers::Headers;
use crate::metrics::MetricRegistry;
use crate::ports::Ctx;

/// A configured filter: built once per plugin config, shared by every request on a worker.
pub trait FilterRoot: Sized + 'static {
    /// The filter's name: log prefix, metric namespace, the `.wasm` file stem, and the `root_id`
    /// that picks this filter in a module hosting several (`apisec_bundle.wasm`).
    const NAME: &'static str;
    type Filter: HttpFilter + 'static;

    /// Parses and validates the JSON config, registering the filter's counters.
    fn configure(raw: &[u8], metrics: &mut MetricRegistry) -> Result<Self, ConfigError>;

    /// The per-request filter.
    fn new_filter(root: &Rc<Self>) -> Self::Filter;

    /// How often [`FilterRoot::on_tick`] runs; `None`: no background work.
    fn tick_period(&self) -> Option<Duration> {
        None
    }

    /// Runs once per worker right after a successful configure, before the first request: for
    /// state in shared data that must exist before requests race to create it.
    fn on_start(&self, _ctx: &Ctx) -> RootStep {
        RootStep::default()
    }

    /// Background work (key refreshes and the like). Roots mutate through interior mutability:
    /// the requests in flight share the root.
    fn on_tick(&self, _ctx: &Ctx) -> RootStep {
        RootStep::default()
    }

    /// The answer to a call from [`RootStep::calls`], with the tag it was sent with.
    fn on_call_response(&self, _tag: u32, _outcome: CallOutcome, _ctx: &Ctx) -> RootStep {
        RootStep::default()
    }
}

/// One request's filter. Every callback returns effects; none touches the host.
pub trait HttpFilter {
    fn on_request_headers(&mut self, _headers: &Headers, _ctx: &Ctx) -> Step {
        Step::proceed()
    }

    fn on_response_headers(&mut self, _headers: &Headers, _ctx: &Ctx) -> Step {
        Step::proceed()
    }

    /// [`HttpFilter::on_request_headers`], given the adapter's copy of the headers to keep: a
    /// filter that edits a copy of its own as it goes (a [`chain`](crate::chain)) spares one.
    fn take_request_headers(&mut self, headers: Headers, ctx: &Ctx) -> Step {
        self.on_request_headers(&headers, ctx)
    }

    /// [`HttpFilter::on_response_headers`], given the adapter's copy of the headers to keep.
    fn take_response_headers(&mut self, headers: Headers, ctx: &Ctx) -> Step {
        self.on_response_headers(&headers, ctx)
    }

    /// Whether [`HttpFilter::on_response_headers`] has anything to do for this request, asked when
    /// the response arrives. Saying no spares the response a copy of its headers.
    fn reads_response_headers(&self) -> bool {
        true
    }

    /// The request's trailers, when it has any: they arrive after the headers went on (and after
    /// any pause in them ended).
    fn on_request_trailers(&mut self, _trailers: &Headers, _ctx: &Ctx) -> Step {
        Step::proceed()
    }

    /// The response's trailers, when it has any.
    fn on_response_trailers(&mut self, _trailers: &Headers, _ctx: &Ctx) -> Step {
        Step::proceed()
    }

    /// The answer to an [`HttpCall`](crate::HttpCall) this filter asked for while the request paused.
    fn on_call_response(&mut self, _outcome: CallOutcome, _ctx: &Ctx) -> Step {
        Step::proceed()
    }

    /// The answer to a [`GrpcCall`](crate::GrpcCall) this filter asked for while the request paused.
    fn on_grpc_response(&mut self, _outcome: GrpcOutcome, _ctx: &Ctx) -> Step {
        Step::proceed()
    }

    /// A signal this request waits on ([`Action::Wait`](crate::Action::Wait)) was notified.
    fn on_wake(&mut self, _signal: &str, _ctx: &Ctx) -> Step {
        Step::proceed()
    }

    /// The request went away (the client left, a timeout) while a call it made was still
    /// awaited: no answer will come. Undo what the request holds for that answer; the host
    /// forbids any effect on the request now.
    fn on_abandoned(&mut self, _ctx: &Ctx) {}
}

/// Parses and validates a config into a configured filter, as [`FilterRoot::configure`] does.
pub type Configure = fn(&[u8], &mut MetricRegistry) -> Result<Rc<dyn DynRoot>, ConfigError>;

/// [`FilterRoot::configure`] for `R`, as a [`Configure`].
pub fn configure<R: FilterRoot>(raw: &[u8], metrics: &mut MetricRegistry) -> Result<Rc<dyn DynRoot>, ConfigError> {
    Ok(Rc::new(R::configure(raw, metrics)?))
}

/// A configured filter ([`FilterRoot`]) behind a trait object: one adapter for every filter, and
/// what a [`chain`](crate::chain) holds.
pub trait DynRoot {
    fn new_filter(self: Rc<Self>) -> Box<dyn HttpFilter>;
    fn tick_period(&self) -> Option<Duration>;
    fn on_start(&self, ctx: &Ctx) -> RootStep;
    fn on_tick(&self, ctx: &Ctx) -> RootStep;
    fn on_call_response(&self, tag: u32, outcome: CallOutcome, ctx: &Ctx) -> RootStep;
}

impl<R: FilterRoot> DynRoot for R {
    fn new_filter(self: Rc<Self>) -> Box<dyn HttpFilter> {
        Box::new(R::new_filter(&self))
    }

    fn tick_period(&self) -> Option<Duration> {
        FilterRoot::tick_period(self)
    }

    fn on_start(&self, ctx: &Ctx) -> RootStep {
        FilterRoot::on_start(self, ctx)
    }

    fn on_tick(&self, ctx: &Ctx) -> RootStep {
        FilterRoot::on_tick(self, ctx)
    }

    fn on_call_response(&self, tag: u32, outcome: CallOutcome, ctx: &Ctx) -> RootStep {
        FilterRoot::on_call_response(self, tag, outcome, ctx)
    }
}
