//! The root context: config, counters and background work, once per plugin per worker.

use std::collections::HashMap;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MetricType};

use super::host::{bump, ctx, dispatch};
use super::http::{read_call_outcome, HttpAdapter};
use super::waiters;
use crate::effects::{CallOutcome, RootStep};
use crate::filter::FilterRoot;
use crate::metrics::MetricRegistry;
use crate::ports::Ctx;

pub struct RootAdapter<R> {
    context_id: u32,
    root: Option<Rc<R>>,
    /// Host metric id per registered counter, indexed like [`Counter`](crate::Counter) handles.
    metric_ids: Rc<Vec<Option<u32>>>,
    /// Tag of each outbound call in flight, by host token.
    calls: HashMap<u32, u32>,
}

impl<R: FilterRoot> RootAdapter<R> {
    pub fn new(context_id: u32) -> Self {
        Self {
            context_id,
            root: None,
            metric_ids: Rc::new(Vec::new()),
            calls: HashMap::new(),
        }
    }

    fn background(&mut self, work: impl FnOnce(&R, &Ctx) -> RootStep) {
        let Some(root) = self.root.clone() else { return };
        let ctx = ctx();
        let step = work(&root, &ctx);
        self.carry_out(&root, step, &ctx);
    }

    fn carry_out(&mut self, root: &R, step: RootStep, ctx: &Ctx) {
        bump(&self.metric_ids, &step.counters);
        for (tag, call) in &step.calls {
            match dispatch(call) {
                Some(token) => {
                    self.calls.insert(token, *tag);
                }
                None => {
                    log::warn!(
                        "{}: background call to cluster {} could not be dispatched",
                        R::NAME,
                        call.cluster
                    );
                    let failed = root.on_call_response(*tag, CallOutcome::Failed, ctx);
                    self.carry_out(root, failed, ctx);
                }
            }
        }
        if !step.notify.is_empty() {
            for signal in &step.notify {
                waiters::notify(signal);
            }
            let _ = hostcalls::set_effective_context(self.context_id);
        }
    }
}

impl<R: FilterRoot> Context for RootAdapter<R> {
    fn on_http_call_response(&mut self, token_id: u32, num_headers: usize, body_size: usize, _trailers: usize) {
        let Some(tag) = self.calls.remove(&token_id) else {
            return;
        };
        let outcome = read_call_outcome(num_headers, body_size);
        self.background(|root, ctx| root.on_call_response(tag, outcome, ctx));
    }
}

impl<R: FilterRoot> RootContext for RootAdapter<R> {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut registry = MetricRegistry::new(R::NAME);
        match R::configure(&raw, &mut registry) {
            Ok(root) => {
                self.metric_ids = Rc::new(
                    registry
                        .full_names()
                        .iter()
                        .map(|name| hostcalls::define_metric(MetricType::Counter, name).ok())
                        .collect(),
                );
                if let Some(period) = root.tick_period() {
                    let _ = hostcalls::set_tick_period(period);
                }
                self.root = Some(Rc::new(root));
                self.background(|root, ctx| root.on_start(ctx));
                log::info!("{}: configured", R::NAME);
                true
            }
            Err(error) => {
                log::error!("{}: invalid configuration: {error}", R::NAME);
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.background(|root, ctx| root.on_tick(ctx));
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let filter = self.root.as_ref().map(R::new_filter);
        Some(Box::new(HttpAdapter::<R>::new(
            context_id,
            filter,
            Rc::clone(&self.metric_ids),
        )))
    }
}
