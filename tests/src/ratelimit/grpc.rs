//! The gRPC transport: tonic's generated `RateLimitService` server on its
//! own thread and current-thread runtime.

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::thread::JoinHandle;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService as RateLimitServiceRpc, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use super::state::{call, Shared};
use super::{Descriptor, RecordedRequest, Transport};

/// The gRPC server. Dropping it stops it: the listening socket and every
/// connection are closed, in-flight calls are abandoned.
pub(super) struct GrpcServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl GrpcServer {
    /// Binds `addr` (port 0 for an ephemeral port) and starts serving.
    ///
    /// # Panics
    /// If the socket cannot be bound or the runtime or thread cannot be
    /// created.
    pub(super) fn start(addr: SocketAddr, state: Shared) -> GrpcServer {
        let listener = StdTcpListener::bind(addr).unwrap_or_else(|e| panic!("rate limit grpc: bind {addr}: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("rate limit grpc: set listener non-blocking: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("rate limit grpc: listener address: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap_or_else(|e| panic!("rate limit grpc: build tokio runtime: {e}"));
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("rate-limit-grpc-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => return eprintln!("rate limit grpc: cannot register listener: {e}"),
                    };
                    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                    let service = RateLimitServiceServer::new(Rls { state });
                    tokio::select! {
                        _ = shutdown_rx => {}
                        served = Server::builder().serve_with_incoming(service, incoming) => {
                            if let Err(e) = served {
                                eprintln!("rate limit grpc: server failed: {e}");
                            }
                        }
                    }
                });
                // Dropping the runtime here cancels the connection tasks,
                // closing their sockets.
            })
            .unwrap_or_else(|e| panic!("rate limit grpc: spawn thread: {e}"));
        GrpcServer {
            addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// The address it listens on.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The RPC implementation.
struct Rls {
    state: Shared,
}

#[tonic::async_trait]
impl RateLimitServiceRpc for Rls {
    async fn should_rate_limit(
        &self,
        request: tonic::Request<RateLimitRequest>,
    ) -> Result<tonic::Response<RateLimitResponse>, tonic::Status> {
        let req = request.into_inner();
        let recorded = RecordedRequest {
            transport: Transport::Grpc,
            domain: req.domain,
            descriptors: req
                .descriptors
                .into_iter()
                .map(|d| Descriptor {
                    entries: d.entries.into_iter().map(|e| (e.key, e.value)).collect(),
                    hits_addend: d.hits_addend.map(|h| h.value),
                })
                .collect(),
            hits_addend: req.hits_addend,
        };
        match call(&self.state, recorded).await {
            Ok(resp) => Ok(tonic::Response::new(resp)),
            Err(code) => Err(tonic::Status::new(code, "rate limit service fault")),
        }
    }
}
