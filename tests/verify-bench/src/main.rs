//! Times jose's pure-Rust signature checks, the ones jwt-auth and phantom-token fall back to
//! without host crypto (and always use for EdDSA), one `Jwt::verify` at a time. Built for
//! `wasm32-wasip1` with the modules' release settings and run under V8 by `run.mjs`, it measures
//! "µs per verify in wasm" directly, where Envoy's CPU a request can only bound it from above.
//!
//! ```text
//! verify-bench [--secs N]    one line per algorithm, in µs per verify over its batches:
//!                             <alg> <median> <verifies timed> <fastest batch> <slowest batch>
//! ```
//!
//! The keys and tokens are the RFCs' examples: RFC 7515 A.2 (RS256, RSA 2048) and A.3 (ES256,
//! P-256); for EdDSA, RFC 8037 A.1's Ed25519 key signing RFC 7515 A.2's claims under `{"alg":"EdDSA"}`
//! (RFC 8037 A.4 signs a payload that is not a JWT's; Ed25519 signatures are deterministic, so
//! anyone can sign it again with that key and get the same token).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use jose::{Jwk, Jwks, Jwt};
use shared::NoHostCrypto;

struct Case {
    alg: &'static str,
    jwks: &'static str,
    token: &'static str,
}

const CASES: [Case; 3] = [
    Case {
        alg: "RS256",
        jwks: r#"{"keys":[{"kty":"RSA","e":"AQAB","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"}]}"#,
        token: "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw",
    },
    Case {
        alg: "ES256",
        jwks: r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#,
        token: "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
    },
    Case {
        alg: "EdDSA",
        jwks: r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
        token: "eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ._vSpFAYzQd76KTga_fKXdhrh3C0FWu4LvjqsxWd4NRyBOrKTdBeh_PkyRQtFmRgGKgdW5upgieZM67Gbz4AtAA",
    },
];

/// Each algorithm is timed in this many batches after its warm-up; the median batch is reported.
const BATCHES: u32 = 5;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let secs = match (args.next().as_deref(), args.next().map(|s| s.parse::<f64>())) {
        (None, _) => 2.0,
        (Some("--secs"), Some(Ok(secs))) if secs > 0.0 => secs,
        _ => {
            eprintln!("usage: verify-bench [--secs N]");
            return ExitCode::from(2);
        }
    };
    let per_case = Duration::from_secs_f64(secs);
    for case in &CASES {
        match time_case(case, per_case) {
            Ok(t) => println!(
                "{} {:.1} {} {:.1} {:.1}",
                case.alg, t.median_us, t.verifies, t.fastest_us, t.slowest_us
            ),
            Err(e) => {
                eprintln!("verify-bench: {}: {e}", case.alg);
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// One algorithm's batches, in µs per verify.
struct Timing {
    median_us: f64,
    fastest_us: f64,
    slowest_us: f64,
    verifies: u64,
}

/// A fifth of `budget` warms up (V8 tiers a hot function up to TurboFan, and ES256 builds its
/// curve tables on first use), the rest is timed in batches.
fn time_case(case: &Case, budget: Duration) -> Result<Timing, String> {
    let jwks = Jwks::parse(case.jwks.as_bytes()).map_err(|e| format!("JWKS: {e}"))?;
    let key = jwks.keys().first().ok_or("JWKS: no usable key")?;
    let jwt = Jwt::decode(case.token.as_bytes(), 16 * 1024).map_err(|e| format!("token: {e}"))?;
    // A refused signature would time the refusal, not the check.
    verify(&jwt, key)?;

    run_for(&jwt, key, budget / 5)?;
    let mut batches = Vec::new();
    let mut verifies = 0;
    for _ in 0..BATCHES {
        let (elapsed, n) = run_for(&jwt, key, budget * 4 / 5 / BATCHES)?;
        verifies += n;
        batches.push(elapsed.as_secs_f64() * 1e6 / n as f64);
    }
    batches.sort_by(f64::total_cmp);
    let median_us = batches.get(batches.len() / 2).copied().ok_or("no batch")?;
    Ok(Timing {
        median_us,
        fastest_us: batches.first().copied().unwrap_or(median_us),
        slowest_us: batches.last().copied().unwrap_or(median_us),
        verifies,
    })
}

/// Verifies until `at_least` has passed; the time taken and the number of verifies.
fn run_for(jwt: &Jwt, key: &Jwk, at_least: Duration) -> Result<(Duration, u64), String> {
    let start = Instant::now();
    let mut n = 0;
    loop {
        verify(jwt, key)?;
        n += 1;
        let elapsed = start.elapsed();
        if elapsed >= at_least {
            return Ok((elapsed, n));
        }
    }
}

fn verify(jwt: &Jwt, key: &Jwk) -> Result<(), String> {
    jwt.verify(key, &NoHostCrypto)
        .map_err(|e| format!("signature refused: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench must time accepted signatures: a refusal returns early and costs less.
    #[test]
    fn every_case_verifies_and_a_changed_signature_does_not() {
        for case in &CASES {
            let jwks = Jwks::parse(case.jwks.as_bytes()).unwrap();
            let key = jwks.keys().first().unwrap();
            let jwt = Jwt::decode(case.token.as_bytes(), 16 * 1024).unwrap();
            assert_eq!(jwt.alg().to_string(), case.alg);
            verify(&jwt, key).unwrap();

            let (input, signature) = case.token.rsplit_once('.').unwrap();
            let changed = if signature.starts_with('A') { "B" } else { "A" };
            let forged = format!("{input}.{changed}{}", &signature[1..]);
            let forged = Jwt::decode(forged.as_bytes(), 16 * 1024).unwrap();
            assert!(verify(&forged, key).is_err(), "{}", case.alg);
        }
    }
}
