//! The root context: config and counters, once per plugin per worker.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MetricType};

use super::http::HttpAdapter;
use crate::filter::FilterRoot;
use crate::metrics::MetricRegistry;

pub struct RootAdapter<R> {
    root: Option<Rc<R>>,
    /// Host metric id per registered counter, indexed like [`Counter`](crate::Counter) handles.
    metric_ids: Rc<Vec<Option<u32>>>,
}

impl<R: FilterRoot> RootAdapter<R> {
    pub fn new() -> Self {
        Self {
            root: None,
            metric_ids: Rc::new(Vec::new()),
        }
    }
}

impl<R: FilterRoot> Context for RootAdapter<R> {}

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
                self.root = Some(Rc::new(root));
                log::info!("{}: configured", R::NAME);
                true
            }
            Err(error) => {
                log::error!("{}: invalid configuration: {error}", R::NAME);
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let filter = self.root.as_ref().map(R::new_filter);
        Some(Box::new(HttpAdapter::<R>::new(filter, Rc::clone(&self.metric_ids))))
    }
}
