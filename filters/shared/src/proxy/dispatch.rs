//! The contexts the host created, and the callbacks routed to them.
//!
//! The host names a context in every callback: a plugin's root context (one per plugin per VM) or
//! a stream's. Outbound calls are the exception: the host makes every call on the plugin's root
//! context (proxy-wasm-cpp-host's `http_call` and `grpc_call`), and delivers the answer there,
//! by token. So each call's owner is noted when it goes out ([`await_answer`]), and the answer
//! goes to that context, made the host's effective context first, so that what the owner does
//! then (resume its request, answer it) acts on its own stream.
//!
//! The table is never borrowed while a context runs: a callback takes its context out (an `Rc`)
//! and lets go of the table first, so whatever the context does meanwhile (wake other streams,
//! which run their own callbacks) cannot find the table locked. A context deleted while it runs
//! lives until its callback returns.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use super::abi;
use super::http::HttpAdapter;

/// What the host should do with the stream after a callback (the ABI's values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum HostAction {
    Continue = 0,
    Pause = 1,
}

/// A plugin's root context: its config, counters and background work.
pub trait RootContext {
    /// Reads and applies the plugin's config; `false` refuses the plugin.
    fn on_configure(&mut self) -> bool;

    fn on_tick(&mut self) {}

    fn on_http_call_response(&mut self, _token: u32, _num_headers: usize, _body_size: usize) {}

    /// The context of a new stream of this plugin.
    fn new_stream(&self, context_id: u32) -> HttpAdapter;
}

/// Makes the root context of a plugin: see [`super::module`].
pub type NewRoot = fn(u32) -> Box<dyn RootContext>;

#[derive(Clone)]
enum Context {
    Root(Rc<RefCell<Box<dyn RootContext>>>),
    Stream(Rc<HttpAdapter>),
}

/// Context ids and call tokens are the host's counters, never a client's input: a
/// multiplicative hash spreads them, without the seeded hasher's randomness and code.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u32(u32::from(*byte));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The two kinds of outbound call: the host counts their tokens apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Http = 1,
    Grpc = 2,
}

impl Call {
    /// The key of a call in [`Dispatcher::owners`]: its kind above its token.
    fn key(self, token: u32) -> u64 {
        (self as u64) << 32 | u64::from(token)
    }
}

struct Dispatcher {
    new_root: Option<NewRoot>,
    contexts: HashMap<u32, Context, BuildHasherDefault<IdHasher>>,
    /// The context that made each call still unanswered. An answer whose owner is gone by then
    /// is dropped, and so is its entry.
    owners: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
}

thread_local! {
    static DISPATCHER: RefCell<Dispatcher> = const {
        RefCell::new(Dispatcher {
            new_root: None,
            contexts: HashMap::with_hasher(BuildHasherDefault::new()),
            owners: HashMap::with_hasher(BuildHasherDefault::new()),
        })
    };
}

/// Runs `f` on the table, never while a context runs (see the module doc).
fn with<R>(f: impl FnOnce(&mut Dispatcher) -> R) -> Option<R> {
    DISPATCHER.with(|d| d.try_borrow_mut().ok().map(|mut d| f(&mut d)))
}

fn context(context_id: u32) -> Option<Context> {
    with(|d| d.contexts.get(&context_id).cloned()).flatten()
}

/// Sets what makes each plugin's root context; run once, at the module's start.
pub fn set_root_factory(new_root: NewRoot) {
    with(|d| d.new_root = Some(new_root));
}

pub fn on_context_create(context_id: u32, root_context_id: u32) {
    let created = if root_context_id == 0 {
        let Some(new_root) = with(|d| d.new_root).flatten() else {
            log::error!("module: no filter registered; context {context_id} not created");
            return;
        };
        Context::Root(Rc::new(RefCell::new(new_root(context_id))))
    } else {
        let stream = match context(root_context_id) {
            Some(Context::Root(root)) => root.try_borrow().ok().map(|root| root.new_stream(context_id)),
            _ => None,
        };
        Context::Stream(Rc::new(stream.unwrap_or_else(|| orphan(context_id))))
    };
    with(|d| d.contexts.insert(context_id, created));
}

/// A stream whose plugin this module does not know: its request gets 503, never a pass.
fn orphan(context_id: u32) -> HttpAdapter {
    log::error!("module: stream {context_id} of an unknown plugin");
    HttpAdapter::unconfigured(context_id)
}

fn stream(context_id: u32) -> Rc<HttpAdapter> {
    match context(context_id) {
        Some(Context::Stream(stream)) => stream,
        _ => Rc::new(orphan(context_id)),
    }
}

fn root(context_id: u32) -> Option<Rc<RefCell<Box<dyn RootContext>>>> {
    match context(context_id) {
        Some(Context::Root(root)) => Some(root),
        _ => None,
    }
}

pub fn on_configure(context_id: u32) -> bool {
    let Some(root) = root(context_id) else {
        log::error!("module: configure for unknown root context {context_id}");
        return false;
    };
    let Ok(mut root) = root.try_borrow_mut() else {
        return false;
    };
    root.on_configure()
}

pub fn on_tick(context_id: u32) {
    if let Some(root) = root(context_id) {
        if let Ok(mut root) = root.try_borrow_mut() {
            root.on_tick();
        }
    }
}

pub fn on_request_headers(context_id: u32) -> HostAction {
    stream(context_id).on_request_headers()
}

pub fn on_request_trailers(context_id: u32) -> HostAction {
    stream(context_id).on_request_trailers()
}

pub fn on_response_headers(context_id: u32) -> HostAction {
    stream(context_id).on_response_headers()
}

pub fn on_response_trailers(context_id: u32) -> HostAction {
    stream(context_id).on_response_trailers()
}

/// Notes that context `owner` awaits the answer to call `token`.
pub fn await_answer(call: Call, token: u32, owner: u32) {
    with(|d| d.owners.insert(call.key(token), owner));
}

/// The context awaiting the answer to call `token`, made the effective one; `None` if it is gone.
fn answer_owner(call: Call, token: u32) -> Option<Context> {
    let owner = with(|d| d.owners.remove(&call.key(token))).flatten()?;
    let context = context(owner)?;
    abi::set_effective_context(owner).ok()?;
    Some(context)
}

pub fn on_http_call_response(token: u32, num_headers: usize, body_size: usize) {
    match answer_owner(Call::Http, token) {
        Some(Context::Stream(stream)) => stream.on_http_call_response(token, num_headers, body_size),
        Some(Context::Root(root)) => {
            if let Ok(mut root) = root.try_borrow_mut() {
                root.on_http_call_response(token, num_headers, body_size);
            }
        }
        None => {}
    }
}

/// A unary gRPC call's answer: its message (`status` 0), or its failure.
pub fn on_grpc_answer(token: u32, status: u32, response_size: usize) {
    if let Some(Context::Stream(stream)) = answer_owner(Call::Grpc, token) {
        stream.on_grpc_call_response(token, status, response_size);
    }
}

pub fn on_delete(context_id: u32) {
    let removed = with(|d| d.contexts.remove(&context_id));
    // Dropped here, with the table free: a stream's drop may wake others.
    drop(removed);
}
