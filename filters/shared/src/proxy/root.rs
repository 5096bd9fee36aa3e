//! The root context: config, counters and background work, once per plugin per worker.

use std::marker::PhantomData;
use std::rc::Rc;

use super::abi::{self, BufferType};
use super::dispatch::RootContext;
use super::host::{bump, ctx, dispatch};
use super::http::{read_call_outcome, HttpAdapter};
use super::waiters;
use crate::effects::{CallOutcome, RootStep};
use crate::filter::{configure, Configure, DynRoot, FilterRoot};
use crate::metrics::MetricRegistry;
use crate::ports::Ctx;

/// The root context of filter `R`, as [`super::module`] names it. Only [`RootAdapter::new`]
/// depends on `R`: it gives a [`Root`], which is the same type for every filter, so a module
/// hosting several filters has one root context type and one HTTP context type, not one per
/// filter.
pub struct RootAdapter<R>(PhantomData<R>);

impl<R: FilterRoot> RootAdapter<R> {
    #[allow(
        clippy::new_ret_no_self,
        reason = "the one generic step: the context is the same type for every filter"
    )]
    pub fn new(context_id: u32) -> Root {
        Root::new(context_id, R::NAME, configure::<R>)
    }
}

pub struct Root {
    context_id: u32,
    /// [`FilterRoot::NAME`]: log prefix and metric namespace.
    name: &'static str,
    configure: Configure,
    root: Option<Rc<dyn DynRoot>>,
    /// Host metric id per registered counter, indexed like [`Counter`](crate::Counter) handles.
    metric_ids: Rc<Vec<Option<u32>>>,
    /// Tag of each outbound call in flight, by host token (a handful at most: background work).
    calls: Vec<(u32, u32)>,
}

impl Root {
    /// The root context of whatever `configure` configures: one filter, or a chain of them.
    pub fn new(context_id: u32, name: &'static str, configure: Configure) -> Root {
        Root {
            context_id,
            name,
            configure,
            root: None,
            metric_ids: Rc::new(Vec::new()),
            calls: Vec::new(),
        }
    }

    fn background(&mut self, work: impl FnOnce(&dyn DynRoot, &Ctx) -> RootStep) {
        let Some(root) = self.root.clone() else { return };
        let ctx = ctx();
        let step = work(&*root, &ctx);
        self.carry_out(&*root, step, &ctx);
    }

    fn carry_out(&mut self, root: &dyn DynRoot, step: RootStep, ctx: &Ctx) {
        bump(&self.metric_ids, &step.counters);
        for (tag, call) in &step.calls {
            match dispatch(call, self.context_id) {
                Some(token) => self.calls.push((token, *tag)),
                None => {
                    super::host::log_undispatched(self.name, &call.cluster);
                    let failed = root.on_call_response(*tag, CallOutcome::Failed, ctx);
                    self.carry_out(root, failed, ctx);
                }
            }
        }
        if !step.notify.is_empty() {
            for signal in &step.notify {
                waiters::notify(signal);
            }
            let _ = abi::set_effective_context(self.context_id);
        }
    }
}

impl RootContext for Root {
    fn on_http_call_response(&mut self, token_id: u32, num_headers: usize, body_size: usize) {
        let Some(i) = self.calls.iter().position(|(token, _)| *token == token_id) else {
            return;
        };
        let (_, tag) = self.calls.swap_remove(i);
        let outcome = read_call_outcome(num_headers, body_size);
        self.background(|root, ctx| root.on_call_response(tag, outcome, ctx));
    }

    fn on_configure(&mut self) -> bool {
        let raw = abi::buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut registry = MetricRegistry::new(self.name);
        match (self.configure)(&raw, &mut registry) {
            Ok(root) => {
                self.metric_ids = Rc::new(
                    registry
                        .full_names()
                        .iter()
                        .map(|name| abi::define_counter(name).ok())
                        .collect(),
                );
                if let Some(period) = root.tick_period() {
                    let _ = abi::set_tick_period_ms(u32::try_from(period.as_millis()).unwrap_or(u32::MAX));
                }
                self.root = Some(root);
                self.background(|root, ctx| root.on_start(ctx));
                log::info!("{}: configured", self.name);
                true
            }
            Err(error) => {
                log::error!("{}: invalid configuration: {error}", self.name);
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.background(|root, ctx| root.on_tick(ctx));
    }

    fn new_stream(&self, context_id: u32) -> HttpAdapter {
        let filter = self.root.clone().map(DynRoot::new_filter);
        HttpAdapter::new(context_id, self.name, filter, Rc::clone(&self.metric_ids))
    }
}
