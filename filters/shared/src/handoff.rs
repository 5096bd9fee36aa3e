//! The filter-state keys by which filters hand verified facts to the filters behind them.
//! Filter state is request-scoped and set only by filters: a client cannot forge it, unlike a
//! header.

/// The verified token's claims, as the JSON object of its payload. Set by jwt-auth (and
/// phantom-token); read by scope-gate and rate-limit.
pub const CLAIMS: &str = "apisec.claims";
