//! The contract between a filter core and the adapter.

use std::rc::Rc;

use crate::config::ConfigError;
use crate::effects::{CallOutcome, Step};
use crate::headers::Headers;
use crate::metrics::MetricRegistry;
use crate::ports::Ctx;

/// A configured filter: built once per plugin config, shared by every request on a worker.
pub trait FilterRoot: Sized + 'static {
    /// The filter's name: log prefix, metric namespace, and the `.wasm` file stem.
    const NAME: &'static str;
    type Filter: HttpFilter + 'static;

    /// Parses and validates the JSON config, registering the filter's counters.
    fn configure(raw: &[u8], metrics: &mut MetricRegistry) -> Result<Self, ConfigError>;

    /// The per-request filter.
    fn new_filter(root: &Rc<Self>) -> Self::Filter;
}

/// One request's filter. Every callback returns effects; none touches the host.
pub trait HttpFilter {
    fn on_request_headers(&mut self, _headers: &Headers, _ctx: &Ctx) -> Step {
        Step::proceed()
    }

    fn on_response_headers(&mut self, _headers: &Headers, _ctx: &Ctx) -> Step {
        Step::proceed()
    }

    /// The answer to an [`HttpCall`](crate::HttpCall) this filter asked for while the request paused.
    fn on_call_response(&mut self, _outcome: CallOutcome, _ctx: &Ctx) -> Step {
        Step::proceed()
    }
}
