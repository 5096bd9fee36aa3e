//! The HTTP/1.1 server behind the in-process test servers
//! ([`EchoUpstream`](crate::EchoUpstream), [`OAuthServer`](crate::OAuthServer)).
//!
//! It runs on its own thread with its own current-thread tokio runtime, so
//! tests stay plain synchronous `#[test]` functions, and stops (joining the
//! thread) on drop. Connections are kept alive between requests, as Envoy
//! reuses upstream connections.
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use harness::server::BackgroundServer;
//! use http_body_util::Full;
//!
//! let server = BackgroundServer::spawn(([127, 0, 0, 1], 0).into(), "hello server", |_req| async {
//!     Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("hello"))))
//! });
//! println!("listening on {}", server.addr());
//! ```

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// What a handler answers with.
pub type HandlerResponse = hyper::Response<Full<Bytes>>;

/// Put in a [`HandlerResponse`]'s extensions, trailers sent after its body (HTTP/1.1 sends them
/// only to a client that asked with `TE: trailers`).
#[derive(Clone, Debug)]
pub struct Trailers(pub hyper::HeaderMap);

fn with_trailers(response: HandlerResponse) -> hyper::Response<UnsyncBoxBody<Bytes, std::convert::Infallible>> {
    let trailers = response.extensions().get::<Trailers>().cloned();
    response.map(|body| match trailers {
        Some(Trailers(trailers)) => body
            .with_trailers(std::future::ready(Some(Ok(trailers))))
            .boxed_unsync(),
        None => body.boxed_unsync(),
    })
}

/// A bound listening socket, not yet served: lets the caller learn the
/// address (e.g. to put it into the handler's state) before the handler
/// exists.
#[derive(Debug)]
pub struct BoundListener {
    listener: StdTcpListener,
    addr: SocketAddr,
    name: String,
}

impl BoundListener {
    /// Binds `addr` (port 0 for an ephemeral port). `name` (e.g. `"echo
    /// upstream"`) prefixes every error message and, with dashes for spaces
    /// and the port appended, names the server thread.
    ///
    /// # Panics
    /// If the socket cannot be bound.
    pub fn bind(addr: SocketAddr, name: &str) -> BoundListener {
        let listener = StdTcpListener::bind(addr).unwrap_or_else(|e| panic!("{name}: bind {addr}: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{name}: set listener non-blocking: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{name}: listener address: {e}"));
        BoundListener {
            listener,
            addr,
            name: name.to_owned(),
        }
    }

    /// The address the socket is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts serving HTTP/1.1 on a background thread, each request answered
    /// by `handler`. A handler error makes hyper close the connection
    /// without writing any response (how a test server plays dead).
    ///
    /// # Panics
    /// If the runtime or the thread cannot be created.
    pub fn serve<H, F, E>(self, handler: H) -> BackgroundServer
    where
        H: Fn(hyper::Request<Incoming>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<HandlerResponse, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let BoundListener { listener, addr, name } = self;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap_or_else(|e| panic!("{name}: build tokio runtime: {e}"));
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let thread_name = format!("{}-{}", name.replace(' ', "-"), addr.port());
        let thread = std::thread::Builder::new()
            .name(thread_name)
            .spawn({
                let name = name.clone();
                move || {
                    runtime.block_on(serve(listener, &name, Arc::new(handler), shutdown_rx));
                    // Dropping the runtime here cancels the connection tasks.
                }
            })
            .unwrap_or_else(|e| panic!("{name}: spawn thread: {e}"));
        BackgroundServer {
            addr,
            name,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }
}

/// A running HTTP/1.1 server on a background thread. Stops on drop.
pub struct BackgroundServer {
    addr: SocketAddr,
    name: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for BackgroundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundServer")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish()
    }
}

impl BackgroundServer {
    /// [`BoundListener::bind`] then [`BoundListener::serve`]: for a handler
    /// that does not need to know the address.
    ///
    /// # Panics
    /// If the socket cannot be bound or the runtime cannot be built.
    pub fn spawn<H, F, E>(addr: SocketAddr, name: &str, handler: H) -> BackgroundServer
    where
        H: Fn(hyper::Request<Incoming>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<HandlerResponse, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        BoundListener::bind(addr, name).serve(handler)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve<H, F, E>(listener: StdTcpListener, name: &str, handler: Arc<H>, mut shutdown: oneshot::Receiver<()>)
where
    H: Fn(hyper::Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<HandlerResponse, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{name}: cannot register listener: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        eprintln!("{name}: accept failed: {e}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = Arc::clone(&handler);
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let answer = handler(req);
                        async move { answer.await.map(with_trailers) }
                    });
                    // Errors here are client disconnects or handler errors
                    // (deliberately dropped connections); nothing to do.
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

/// A barrier a test opens: a server told to hold an answer at it (e.g.
/// [`Fault::Hold`](crate::oauth::Fault::Hold)) answers once the test calls
/// [`Gate::open`], and at once when it is open already. Unlike a delay, it
/// keeps a call in flight for exactly as long as the test needs, however
/// slow the machine.
#[derive(Clone)]
pub struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        Gate(Arc::new(tokio::sync::watch::Sender::new(false)))
    }

    /// Lets every held answer go, and every later one through at once.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    /// Waits until the gate is open.
    pub(crate) async fn passed(&self) {
        let mut open = self.0.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail.
        let _ = open.wait_for(|open| *open).await;
    }
}

impl Default for Gate {
    fn default() -> Gate {
        Gate::new()
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gate({})", if *self.0.borrow() { "open" } else { "closed" })
    }
}

/// Two gates are equal when they are the same gate.
impl PartialEq for Gate {
    fn eq(&self, other: &Gate) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Gate {}
