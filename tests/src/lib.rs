//! End-to-end test harness: runs the proxy-wasm filters inside a real Envoy,
//! in front of an in-process echo upstream, and talks to it over raw
//! HTTP/1.1.
//!
//! A typical test:
//!
//! ```no_run
//! use harness::{Gateway, GatewayConfig, Request};
//!
//! let gw = Gateway::start_with(|c| c.filter("header_scrub", serde_json::json!({})));
//! let resp = gw.send(Request::get("/hello").header("X-Test", "1"));
//! assert_eq!(resp.status, 200);
//! assert_eq!(resp.json()["path"], "/hello");
//! ```
//!
//! Missing prerequisites (the Envoy binary, a compiled filter) make tests
//! fail with instructions, never skip.

pub mod config;
pub mod demo;
pub mod echo;
pub mod envoy;
pub mod examples;
pub mod http;
pub mod oauth;
pub mod paths;
pub mod ratelimit;
pub mod registry;
pub mod remote_wasm;
pub mod server;
pub mod tls;

pub use config::{GatewayConfig, WasmFilter};
pub use echo::{EchoUpstream, RecordedRequest};
pub use envoy::Envoy;
pub use http::{Request, Response};
pub use oauth::OAuthServer;
pub use ratelimit::RateLimitService;

/// What header-scrub's `api` security-header preset adds to every response, as clients must see it.
pub const API_SECURITY_HEADERS: [(&str, &str); 6] = [
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

/// An echo upstream with an Envoy in front of it: what most tests want.
///
/// Field order matters for drop order: Envoy stops before the upstream.
#[derive(Debug)]
pub struct Gateway {
    /// The Envoy process.
    pub envoy: Envoy,
    /// The upstream Envoy forwards to.
    pub echo: EchoUpstream,
}

impl Gateway {
    /// Starts an echo upstream and an Envoy (one worker) running `filters`
    /// in order.
    ///
    /// # Panics
    /// If Envoy does not start; the message includes Envoy's log.
    pub fn start(filters: Vec<WasmFilter>) -> Gateway {
        Self::start_with(|mut cfg| {
            cfg.filters = filters;
            cfg
        })
    }

    /// Starts an echo upstream and an Envoy whose configuration is the
    /// default [`GatewayConfig`] for that upstream, adjusted by `cfg`.
    ///
    /// # Panics
    /// If Envoy does not start; the message includes Envoy's log.
    pub fn start_with(cfg: impl FnOnce(GatewayConfig) -> GatewayConfig) -> Gateway {
        let (echo, envoy) = Self::launch(cfg);
        match envoy {
            Ok(envoy) => Gateway { envoy, echo },
            Err(log) => panic!("Envoy failed to start: {log}"),
        }
    }

    /// Like [`Gateway::start_with`], for a configuration Envoy must refuse
    /// (e.g. a filter config error): returns Envoy's log, for the test to
    /// check the reason.
    ///
    /// # Panics
    /// If Envoy starts; the message includes Envoy's log.
    pub fn start_refused(cfg: impl FnOnce(GatewayConfig) -> GatewayConfig) -> String {
        match Self::launch(cfg).1 {
            Ok(envoy) => panic!("Envoy accepted a bad config:\n{}", envoy.log()),
            Err(log) => log,
        }
    }

    /// Like [`Gateway::start_with`], but Envoy reads the `gateway` listener from a file it watches,
    /// as from a control plane, so that [`Gateway::push`] can change the filters while it runs.
    /// Envoy drains a replaced filter chain for `drain_secs` (its `--drain-time-s`), then removes
    /// it, and with it the old filters' plugin contexts.
    ///
    /// # Panics
    /// If Envoy does not start; the message includes Envoy's log.
    pub fn start_lds(drain_secs: u32, cfg: impl FnOnce(GatewayConfig) -> GatewayConfig) -> Gateway {
        let echo = EchoUpstream::start();
        let config = cfg(GatewayConfig::new(echo.addr()));
        match Envoy::start_lds(&config, drain_secs) {
            Ok(envoy) => Gateway { envoy, echo },
            Err(log) => panic!("Envoy failed to start: {log}"),
        }
    }

    /// Pushes a new `gateway` listener, configured by `cfg` from the defaults as in
    /// [`Gateway::start_lds`], and returns once every worker runs it. `Err` holds what Envoy logged
    /// when it refused the update; it then goes on with the listener it had.
    ///
    /// # Panics
    /// If the gateway was not started by [`Gateway::start_lds`], or Envoy neither takes nor refuses
    /// the update within 15 s.
    pub fn push(&self, cfg: impl FnOnce(GatewayConfig) -> GatewayConfig) -> Result<(), String> {
        self.envoy.push_listener(&cfg(GatewayConfig::new(self.echo.addr())))
    }

    /// Starts an echo upstream, then an Envoy configured by `cfg` in front of it.
    fn launch(cfg: impl FnOnce(GatewayConfig) -> GatewayConfig) -> (EchoUpstream, Result<Envoy, String>) {
        let echo = EchoUpstream::start();
        let config = cfg(GatewayConfig::new(echo.addr()));
        let envoy = Envoy::start(&config.to_bootstrap(), config.concurrency);
        (echo, envoy)
    }

    /// Sends `req` to the gateway listener.
    ///
    /// # Panics
    /// On an I/O or parse error.
    pub fn send(&self, req: Request) -> Response {
        let addr = self.envoy.listener();
        match http::send(addr, &req) {
            Ok(resp) => resp,
            Err(e) => panic!(
                "sending {} {} to the gateway at {addr} failed: {e}",
                req.method, req.path
            ),
        }
    }

    /// Sends `req` over TLS, presenting `client`'s certificate if given: for a gateway whose
    /// listener has [`GatewayConfig::with_tls`].
    pub fn send_tls(&self, req: Request, client: Option<tls::Client>) -> Response {
        let addr = self.envoy.listener();
        match tls::send_tls(addr, &req, client) {
            Ok(resp) => resp,
            Err(e) => panic!(
                "sending {} {} over TLS to the gateway at {addr} failed: {e}",
                req.method, req.path
            ),
        }
    }

    /// `GET path` through the gateway.
    ///
    /// # Panics
    /// On an I/O or parse error.
    pub fn get(&self, path: &str) -> Response {
        self.send(Request::get(path))
    }
}

/// Merges `extra` into `base`: objects member by member (recursively), anything else replaced.
pub fn merge_json(base: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(base), serde_json::Value::Object(extra)) = (base.as_object_mut(), extra) {
        for (k, v) in extra {
            match (base.get_mut(&k), v) {
                (Some(existing @ serde_json::Value::Object(_)), serde_json::Value::Object(v)) => {
                    merge_json(existing, serde_json::Value::Object(v))
                }
                (_, v) => {
                    base.insert(k, v);
                }
            }
        }
    }
}

impl Gateway {
    /// How many requests Envoy is working on at the `gateway` listener (its
    /// `downstream_rq_active` gauge): lets a test see that a request it sent
    /// from another thread has arrived and is waiting.
    ///
    /// # Panics
    /// If the admin interface does not answer.
    pub fn requests_in_flight(&self) -> u64 {
        self.envoy.counter("http.gateway.downstream_rq_active")
    }

    /// Sends `req` and, once Envoy is working on it, opens `gate`: for a request that must arrive
    /// while a call the gate holds (a key fetch, say) is still in flight.
    ///
    /// # Panics
    /// As [`Gateway::send`], or if the request does not reach Envoy within 15 s.
    pub fn send_then_open(&self, req: Request, gate: &server::Gate) -> Response {
        let in_flight_before = self.requests_in_flight();
        std::thread::scope(|s| {
            let sent = s.spawn(|| self.send(req));
            self.wait_until("the request to reach Envoy", || {
                self.requests_in_flight() > in_flight_before
            });
            gate.open();
            sent.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Polls `condition` until it holds (a readiness check, bounded at 15 s, not a sleep).
    ///
    /// # Panics
    /// On timeout, with `what` and Envoy's log.
    pub fn wait_until(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while !condition() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; Envoy log:\n{}",
                self.envoy.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
