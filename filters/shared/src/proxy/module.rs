//! The module's entry point and the filters it hosts.
//!
//! Every filter crate adds its root to this module's list with
//! [`export_filter!`](crate::export_filter), from a static constructor; `_initialize` (in
//! [`super::abi`]) runs the constructors, then [`start`] installs the root-context factory. A module built from one filter
//! crate (`<filter>.wasm`) hosts one filter and serves it whatever the plugin's `root_id`. A
//! module linking several (`apisec_bundle.wasm`) picks each plugin's filter by its `root_id`,
//! which the host gives every root context as property `plugin_root_id`: several plugins of one
//! `vm_id` then share one VM per worker, each with its own root context, config and counters.
//! With [`export_chain!`](crate::export_chain) it also hosts root_id `chain`: its filters as
//! members of one plugin (see [`crate::chain`]).
//! A `root_id` that names none of them is refused at configure time, like a bad config.

use std::cell::RefCell;
use std::rc::Rc;

use super::dispatch::{self, NewRoot, RootContext};
use super::http::HttpAdapter;
use super::root::{Root, RootAdapter};
use crate::chain;
use crate::config::ConfigError;
use crate::filter::{configure, Configure, DynRoot, FilterRoot};
use crate::metrics::MetricRegistry;

/// The property holding the plugin's `root_id` (Envoy's `config.root_id`), readable from the
/// plugin's root context from its creation on.
const ROOT_ID_PROPERTY: &str = "plugin_root_id";

/// A filter linked into this module.
#[derive(Clone, Copy)]
struct Hosted {
    /// [`FilterRoot::NAME`]: the `root_id` that selects it.
    name: &'static str,
    new_root: NewRoot,
    configure: Configure,
}

thread_local! {
    static HOSTED: RefCell<Vec<Hosted>> = const { RefCell::new(Vec::new()) };
}

/// Adds `R` to the filters this module hosts. Run by the static constructor that
/// [`export_filter!`](crate::export_filter) emits, before the host creates any context.
#[doc(hidden)]
pub extern "C" fn register<R: FilterRoot>() {
    host(Hosted {
        name: R::NAME,
        new_root: new_root::<R>,
        configure: configure::<R>,
    });
}

/// Adds root_id `chain`: run by the static constructor of [`export_chain!`](crate::export_chain).
#[doc(hidden)]
pub extern "C" fn register_chain() {
    host(Hosted {
        name: chain::NAME,
        new_root: new_chain_root,
        configure: configure_chain,
    });
}

fn host(filter: Hosted) {
    HOSTED.with(|hosted| {
        if let Ok(mut hosted) = hosted.try_borrow_mut() {
            if hosted.iter().all(|h| h.name != filter.name) {
                hosted.push(filter);
            }
        }
    });
}

fn new_root<R: FilterRoot>(context_id: u32) -> Box<dyn RootContext> {
    Box::new(RootAdapter::<R>::new(context_id))
}

fn new_chain_root(context_id: u32) -> Box<dyn RootContext> {
    Box::new(Root::new(context_id, chain::NAME, configure_chain))
}

fn hosted() -> Vec<Hosted> {
    HOSTED.with(|hosted| hosted.try_borrow().map(|h| h.clone()).unwrap_or_default())
}

/// Runs from `_initialize`, after the static constructors.
pub fn start() {
    super::logger::install();
    match hosted().as_slice() {
        // One filter: its root for every plugin, as a single-filter module has always been.
        [only] => dispatch::set_root_factory(only.new_root),
        _ => dispatch::set_root_factory(by_root_id),
    }
}

/// The root context of the filter (or [`chain`]) the plugin's `root_id` names, or an
/// [`UnknownRootId`].
fn by_root_id(context_id: u32) -> Box<dyn RootContext> {
    let root_id = plugin_root_id();
    match hosted().iter().find(|h| Some(h.name.as_bytes()) == root_id.as_deref()) {
        Some(filter) => (filter.new_root)(context_id),
        None => Box::new(UnknownRootId { root_id }),
    }
}

fn configure_chain(raw: &[u8], metrics: &mut MetricRegistry) -> Result<Rc<dyn DynRoot>, ConfigError> {
    let hosted = hosted();
    let names: Vec<&str> = hosted.iter().map(|h| h.name).filter(|&n| n != chain::NAME).collect();
    let lookup = |name: &str| hosted.iter().find(|h| h.name == name).map(|h| h.configure);
    Ok(Rc::new(chain::configure(raw, metrics, &lookup, &names)?))
}

fn plugin_root_id() -> Option<Vec<u8>> {
    super::host::property(&[ROOT_ID_PROPERTY])
}

/// The root context of a plugin whose `root_id` names no filter this module hosts: its configure
/// always fails, naming the ones it does host, so the host refuses the plugin. (A plain root
/// context, not a filter's adapter: that would add a whole adapter to every module.)
struct UnknownRootId {
    root_id: Option<Vec<u8>>,
}

impl RootContext for UnknownRootId {
    fn on_configure(&mut self) -> bool {
        let hosted = hosted();
        // Sorted by insertion: `sort_unstable` links some 4 KB of sorting code into every module,
        // for a list of at most a handful of names.
        let mut known: Vec<&str> = Vec::new();
        for name in hosted.iter().map(|h| h.name) {
            known.insert(known.partition_point(|k| *k < name), name);
        }
        let hosts = if known.is_empty() {
            "no filter".to_owned()
        } else {
            known.join(", ")
        };
        let message = match &self.root_id {
            Some(id) => format!(
                "{:?} names no filter of this module, which hosts {hosts}",
                String::from_utf8_lossy(id)
            ),
            None => {
                format!("the host did not give the plugin's root_id ({ROOT_ID_PROPERTY}); this module hosts {hosts}")
            }
        };
        log::error!(
            "module: invalid configuration: {}",
            ConfigError::new("root_id", message)
        );
        false
    }

    /// Never asked for: the host does not start streams on a plugin it refused.
    fn new_stream(&self, context_id: u32) -> HttpAdapter {
        HttpAdapter::unconfigured(context_id)
    }
}
