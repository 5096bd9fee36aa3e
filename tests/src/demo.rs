//! The demo gateway's topology: `envoy/gateway.yaml` and the services behind it, each on a fixed
//! address of 127.0.0.1. `make run` starts it all in one process (`demo`); the docker-compose
//! harness (`envoy/docker-compose.yaml`) runs each service in its own container (`demo serve
//! <service>`), on the same addresses; the gateway suite (`tests/tests/gateway.rs`) runs against
//! either. Keep these addresses, the clusters of `envoy/gateway.yaml` and the compose file in step:
//! `tests/tests/compose.rs` checks that they are.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::oauth::{Client, TokenFormat};
use crate::ratelimit::{Limit, Unit};
use crate::{paths, EchoUpstream, Envoy, OAuthServer, RateLimitService};

/// The gateway listener (`envoy/gateway.yaml`).
pub const LISTENER: &str = "127.0.0.1:8080";
/// Envoy's admin interface.
pub const ADMIN: &str = "127.0.0.1:9901";
/// The echo upstream (cluster `upstream`).
pub const UPSTREAM: &str = "127.0.0.1:8081";
/// The test OAuth server (cluster `oauth`); the tokens' issuer is `http://` and this address.
pub const OAUTH: &str = "127.0.0.1:8082";
/// The test rate-limit service's gRPC port (cluster `ratelimit`).
pub const RATELIMIT_GRPC: &str = "127.0.0.1:8083";
/// The test rate-limit service's HTTP/JSON port (not used by the gateway; there for curl).
pub const RATELIMIT_HTTP: &str = "127.0.0.1:8084";
/// The OAuth client phantom-token introspects as.
pub const GATEWAY_CLIENT: (&str, &str) = ("gateway", "gateway-secret");
/// The rate-limit domain of `envoy/gateway.yaml`.
pub const RATELIMIT_DOMAIN: &str = "gateway";
/// Envoy's worker threads, in `make run` as in the compose file.
pub const CONCURRENCY: u32 = 2;

/// One of the services behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The echo upstream.
    Echo,
    /// The test OAuth server.
    OAuth,
    /// The test rate-limit service.
    RateLimit,
}

impl Service {
    /// Every service, in start order.
    pub const ALL: [Service; 3] = [Service::Echo, Service::OAuth, Service::RateLimit];

    /// Its name on the command line (`demo serve <name>`) and in the compose file.
    pub fn name(self) -> &'static str {
        match self {
            Service::Echo => "echo",
            Service::OAuth => "oauth",
            Service::RateLimit => "ratelimit",
        }
    }

    /// The service called `name`.
    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The addresses it listens on.
    pub fn addresses(self) -> Vec<SocketAddr> {
        match self {
            Service::Echo => vec![addr(UPSTREAM)],
            Service::OAuth => vec![addr(OAUTH)],
            Service::RateLimit => vec![addr(RATELIMIT_GRPC), addr(RATELIMIT_HTTP)],
        }
    }

    /// Starts it on its addresses, set up as `envoy/gateway.yaml` expects; it stops on drop.
    ///
    /// # Panics
    /// If an address is taken (is `make run` or the compose stack already running?).
    pub fn start(self) -> Running {
        match self {
            Service::Echo => Running::Echo(EchoUpstream::bind(addr(UPSTREAM))),
            Service::OAuth => {
                let oauth = OAuthServer::bind(addr(OAUTH));
                set_up_oauth(&oauth);
                Running::OAuth(oauth)
            }
            Service::RateLimit => {
                let ratelimit = RateLimitService::bind(addr(RATELIMIT_GRPC), addr(RATELIMIT_HTTP));
                // The fleet-wide limit of envoy/gateway.yaml: per client and path, 100 an hour.
                ratelimit.set_limit(
                    RATELIMIT_DOMAIN,
                    Limit::new(&[("client_id", None), ("path", None)], 100, Unit::Hour).named("fleet_per_path"),
                );
                Running::RateLimit(ratelimit)
            }
        }
    }
}

/// Sets up `oauth` as the demo's OAuth server (`make run`, `demo serve oauth`) is set up.
pub fn set_up_oauth(oauth: &OAuthServer) {
    // Clients get opaque tokens; phantom-token exchanges them, as client `gateway`.
    oauth.set_token_format(TokenFormat::Opaque);
    oauth.add_client(Client::new(GATEWAY_CLIENT.0, GATEWAY_CLIENT.1, ""));
}

/// A started service; dropping it stops it.
#[derive(Debug)]
pub enum Running {
    /// See [`Service::Echo`].
    Echo(EchoUpstream),
    /// See [`Service::OAuth`].
    OAuth(OAuthServer),
    /// See [`Service::RateLimit`].
    RateLimit(RateLimitService),
}

/// The whole demo: the services, then Envoy on `envoy/gateway.yaml`. Envoy stops first on drop.
#[derive(Debug)]
pub struct Demo {
    /// The Envoy process.
    pub envoy: Envoy,
    /// The services behind it.
    pub services: Vec<Running>,
}

impl Demo {
    /// Starts every service, then Envoy; returns once Envoy is ready. The error says which
    /// address is taken, or is Envoy's log.
    pub fn start() -> Result<Demo, String> {
        let taken = Service::ALL
            .into_iter()
            .flat_map(Service::addresses)
            .chain([addr(LISTENER), addr(ADMIN)])
            .find_map(|a| std::net::TcpListener::bind(a).err().map(|e| format!("{a}: {e}")));
        if let Some(taken) = taken {
            return Err(format!(
                "{taken}: is `make run` or the compose stack already running? To test a running \
                 gateway, set {ENDPOINT_VARIABLES:?}."
            ));
        }
        let services = Service::ALL.into_iter().map(Service::start).collect();
        let envoy = Envoy::start_file(&config_path(), &paths::workspace_root(), CONCURRENCY)?;
        Ok(Demo { envoy, services })
    }
}

/// `envoy/gateway.yaml`.
pub fn config_path() -> PathBuf {
    paths::workspace_root().join("envoy").join("gateway.yaml")
}

/// One of the constant addresses above, parsed.
///
/// # Panics
/// If it is not an address (a typo in this file).
pub fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Where a running demo gateway answers: from the environment (`GATEWAY_URL`,
/// `GATEWAY_ADMIN_URL`, `OAUTH_URL`, e.g. the compose stack), or the addresses above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// The gateway listener.
    pub gateway: SocketAddr,
    /// Envoy's admin interface.
    pub admin: SocketAddr,
    /// The OAuth server (tokens, client registration).
    pub oauth: SocketAddr,
}

/// The environment variables [`Endpoints::from_env`] reads, each an `http://host:port` URL.
pub const ENDPOINT_VARIABLES: [&str; 3] = ["GATEWAY_URL", "GATEWAY_ADMIN_URL", "OAUTH_URL"];

impl Endpoints {
    /// The addresses of [`Demo`].
    pub fn local() -> Endpoints {
        Endpoints {
            gateway: addr(LISTENER),
            admin: addr(ADMIN),
            oauth: addr(OAUTH),
        }
    }

    /// `None` when none of [`ENDPOINT_VARIABLES`] is set (the caller starts its own [`Demo`]);
    /// an error when only some are, or one is not an `http://host:port` URL.
    pub fn from_env() -> Option<Result<Endpoints, String>> {
        let values: Vec<Option<String>> = ENDPOINT_VARIABLES
            .iter()
            .map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
            .collect();
        if values.iter().all(Option::is_none) {
            return None;
        }
        let parsed: Result<Vec<SocketAddr>, String> = ENDPOINT_VARIABLES
            .iter()
            .zip(&values)
            .map(|(name, value)| match value {
                None => Err(format!("{name} is not set; set all of {ENDPOINT_VARIABLES:?} or none")),
                Some(url) => parse_http_url(url).map_err(|e| format!("{name}={url}: {e}")),
            })
            .collect();
        Some(parsed.map(|addrs| Endpoints {
            gateway: addrs[0],
            admin: addrs[1],
            oauth: addrs[2],
        }))
    }
}

/// `http://host:port` (a trailing `/` allowed) to the first address `host:port` resolves to.
fn parse_http_url(url: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let authority = url
        .strip_prefix("http://")
        .ok_or("expected an http:// URL")?
        .trim_end_matches('/');
    if authority.contains('/') {
        return Err("expected no path".into());
    }
    authority
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("{authority} resolves to no address"))
}
