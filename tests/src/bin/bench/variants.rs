//! The variants under test, as data: what runs in Envoy, and what load drives it.

use crate::tokens::Alg;

/// One HTTP filter of a variant's chain (native filters always run before wasm filters; no
/// variant mixes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Native `envoy.filters.http.jwt_authn`, with or without its `jwt_cache_config`.
    NativeJwt {
        cache: bool,
    },
    /// Native `envoy.filters.http.header_mutation` doing what [`Stage::HeaderScrub`] does.
    NativeHeaderMutation,
    /// Native `envoy.filters.http.local_ratelimit`, a limit nothing reaches.
    NativeLocalRateLimit,
    /// jwt-auth: inline keys; `cache_max_entries` and `host_crypto` as given; claim headers on.
    JwtAuth {
        cache_max_entries: usize,
        host_crypto: bool,
        claim_headers: bool,
    },
    ScopeGate,
    HeaderScrub,
    /// rate-limit, one local limit nothing reaches; `per_client`: keyed by the verified `sub`
    /// (fallback: client address), else one bucket for all (like native `local_ratelimit`).
    RateLimit {
        per_client: bool,
    },
    /// phantom-token against the bench's OAuth server.
    PhantomToken,
}

/// What each request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// No token.
    Plain,
    /// The same JWT on every request.
    Repeated(Alg),
    /// A different JWT on each request, cycling through a set larger than any cache.
    Unique(Alg),
    /// The same opaque token on every request (introspected once, then cached).
    Opaque,
}

/// How a variant's wasm filters are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modules {
    /// One module per filter (`<filter>.wasm`), each in its own VM: as `envoy/gateway.yaml`.
    PerFilter,
    /// Every filter from the one module `apisec_bundle.wasm`, all plugins in one shared VM: as
    /// `envoy/gateway-bundle.yaml`.
    Bundle,
    /// Every filter as a member of one plugin, the bundle's `chain` root: as
    /// `envoy/gateway-chain.yaml`.
    Chain,
}

#[derive(Debug, Clone)]
pub struct Variant {
    /// Short stable name (for `--only` and the targets).
    pub id: &'static str,
    /// What the table shows.
    pub label: &'static str,
    /// The variant this one is compared with besides bare Envoy: its native equivalent, or the
    /// chain it extends.
    pub reference: Option<&'static str>,
    /// Part of `--quick`.
    pub quick: bool,
    pub stages: Vec<Stage>,
    pub modules: Modules,
    pub load: Load,
}

/// jwt-auth's verified-token cache for the unique-token variants: far smaller than the token sets,
/// which the load cycles through in order, so a token is always evicted before it comes back.
pub const UNIQUE_CACHE_ENTRIES: usize = 256;

/// jwt-auth as shipped: cache on, host crypto on.
const JWT: Stage = Stage::JwtAuth {
    cache_max_entries: 4096,
    host_crypto: true,
    claim_headers: false,
};

const fn jwt_unique(host_crypto: bool) -> Stage {
    Stage::JwtAuth {
        cache_max_entries: UNIQUE_CACHE_ENTRIES,
        host_crypto,
        claim_headers: false,
    }
}

fn v(
    id: &'static str,
    label: &'static str,
    reference: Option<&'static str>,
    quick: bool,
    stages: &[Stage],
    load: Load,
) -> Variant {
    Variant {
        id,
        label,
        reference,
        quick,
        stages: stages.to_vec(),
        modules: Modules::PerFilter,
        load,
    }
}

/// Every variant, in table order.
#[rustfmt::skip]
pub fn all() -> Vec<Variant> {
    use Alg::{EdDsa, Es256, Rs256};
    use Load::{Opaque, Plain, Repeated, Unique};
    let native = |cache| Stage::NativeJwt { cache };
    let full_chain = [
        Stage::HeaderScrub,
        Stage::JwtAuth {
            cache_max_entries: 4096,
            host_crypto: true,
            claim_headers: true,
        },
        Stage::ScopeGate,
        Stage::RateLimit { per_client: true },
    ];
    vec![
        v("bare", "bare Envoy", None, true, &[], Plain),
        v("native-jwt-rs256-unique", "native jwt_authn, RS256, unique tokens", None, true, &[native(false)], Unique(Rs256)),
        v("native-jwt-es256-unique", "native jwt_authn, ES256, unique tokens", None, false, &[native(false)], Unique(Es256)),
        v("native-jwt-eddsa-unique", "native jwt_authn, EdDSA, unique tokens", None, false, &[native(false)], Unique(EdDsa)),
        v("native-jwt-repeated", "native jwt_authn, RS256, repeated token, no cache", None, true, &[native(false)], Repeated(Rs256)),
        v("native-jwt-repeated-cache", "native jwt_authn, RS256, repeated token, jwt_cache_config", None, true, &[native(true)], Repeated(Rs256)),
        v("jwt-rs256-unique-host", "jwt-auth, RS256, unique tokens, host crypto", Some("native-jwt-rs256-unique"), true, &[jwt_unique(true)], Unique(Rs256)),
        v("jwt-es256-unique-host", "jwt-auth, ES256, unique tokens, host crypto", Some("native-jwt-es256-unique"), false, &[jwt_unique(true)], Unique(Es256)),
        v("jwt-rs256-unique-wasm", "jwt-auth, RS256, unique tokens, pure Rust", Some("native-jwt-rs256-unique"), true, &[jwt_unique(false)], Unique(Rs256)),
        v("jwt-es256-unique-wasm", "jwt-auth, ES256, unique tokens, pure Rust", Some("native-jwt-es256-unique"), false, &[jwt_unique(false)], Unique(Es256)),
        // Ed25519 has no host path (Envoy's verify_signature does RSA and ECDSA only): with or
        // without host crypto it is the same pure-Rust check.
        v("jwt-eddsa-unique", "jwt-auth, EdDSA, unique tokens (pure Rust: no host path)", Some("native-jwt-eddsa-unique"), false, &[jwt_unique(true)], Unique(EdDsa)),
        v("jwt-repeated", "jwt-auth, RS256, repeated token (cache hit)", Some("native-jwt-repeated"), true, &[JWT], Repeated(Rs256)),
        v("phantom-hit", "phantom-token, cache hit", None, true, &[Stage::PhantomToken], Opaque),
        v("scope-gate", "jwt-auth (repeated token) + scope-gate", Some("jwt-repeated"), false, &[JWT, Stage::ScopeGate], Repeated(Rs256)),
        v("header-scrub", "header-scrub", Some("native-header-mutation"), false, &[Stage::HeaderScrub], Plain),
        v("native-header-mutation", "native header_mutation", None, false, &[Stage::NativeHeaderMutation], Plain),
        v("rate-limit", "rate-limit, local", Some("native-local-ratelimit"), false, &[Stage::RateLimit { per_client: false }], Plain),
        v("native-local-ratelimit", "native local_ratelimit", None, false, &[Stage::NativeLocalRateLimit], Plain),
        v("full-chain", "full chain, separate modules (header-scrub, jwt-auth, scope-gate, rate-limit), repeated token", None, true, &full_chain, Repeated(Rs256)),
        Variant {
            modules: Modules::Bundle,
            ..v("full-chain-bundle", "full chain, one module (bundle: the same four filters in one VM), repeated token", Some("full-chain"), true, &full_chain, Repeated(Rs256))
        },
        Variant {
            modules: Modules::Chain,
            ..v("full-chain-plugin", "full chain, one plugin (the bundle's chain root running the same four filters), repeated token", Some("full-chain-bundle"), true, &full_chain, Repeated(Rs256))
        },
    ]
}
