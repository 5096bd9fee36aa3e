//! The tokens the load carries: per algorithm, a set of distinct JWTs (one per line in a file, for
//! the wrk script to cycle through) and one token that every request repeats.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use harness::oauth::{jwks_for, mint, now_secs, TokenSpec};
use serde_json::{json, Value};

/// The `iss` of every bench token.
pub const ISSUER: &str = "https://bench.example";
/// The `aud` of every bench token.
pub const AUDIENCE: &str = "api";
/// The scope every bench token grants (scope-gate requires it).
pub const SCOPE: &str = "orders:read";
/// Lifetime of the bench tokens: longer than any run.
const TTL_SECS: u64 = 6 * 3600;

/// A signing algorithm under test, with the fixture key that signs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    fn kid(self) -> &'static str {
        match self {
            Alg::Rs256 => "rsa-1",
            Alg::Es256 => "ec-1",
            Alg::EdDsa => "ed-1",
        }
    }
}

/// The public keys of every [`Alg`]: what jwt-auth and native `jwt_authn` verify with.
pub fn jwks() -> Value {
    jwks_for(&[Alg::Rs256.kid(), Alg::Es256.kid(), Alg::EdDsa.kid()])
}

/// Minted token sets, written under a directory.
pub struct Tokens {
    dir: PathBuf,
    repeated: BTreeMap<Alg, String>,
    sets: BTreeMap<Alg, usize>,
}

impl Tokens {
    pub fn new(dir: &Path) -> Tokens {
        Tokens {
            dir: dir.to_owned(),
            repeated: BTreeMap::new(),
            sets: BTreeMap::new(),
        }
    }

    /// Mints `count` distinct tokens of `alg` (distinct `jti`) into their file, once.
    pub fn mint_set(&mut self, alg: Alg, count: usize) -> Result<(), String> {
        if self.sets.contains_key(&alg) {
            return Ok(());
        }
        let mut text = String::new();
        for i in 0..count {
            text.push_str(&token(alg, &format!("{}-{i}", alg.name())));
            text.push('\n');
        }
        let path = self.set_file(alg);
        fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        self.sets.insert(alg, count);
        Ok(())
    }

    /// The file of the distinct tokens of `alg`, one per line.
    pub fn set_file(&self, alg: Alg) -> PathBuf {
        self.dir.join(format!("tokens-{}.txt", alg.name()))
    }

    /// The first token of the set of `alg` (for a check before the load).
    pub fn first_of_set(&self, alg: Alg) -> Result<String, String> {
        let path = self.set_file(alg);
        let text = fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        text.lines()
            .next()
            .map(str::to_owned)
            .ok_or_else(|| format!("{} is empty", path.display()))
    }

    /// The one token of `alg` that a repeated-token load sends with every request.
    pub fn repeated(&mut self, alg: Alg) -> String {
        self.repeated
            .entry(alg)
            .or_insert_with(|| token(alg, &format!("{}-repeated", alg.name())))
            .clone()
    }

    /// How many tokens each set holds, by algorithm.
    pub fn set_sizes(&self) -> &BTreeMap<Alg, usize> {
        &self.sets
    }
}

fn token(alg: Alg, jti: &str) -> String {
    let now = now_secs();
    let claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "bench-user",
        "scope": SCOPE,
        "iat": now,
        "exp": now + TTL_SECS,
        "jti": jti,
    });
    mint(&TokenSpec::new(alg.name(), alg.kid()).claims(claims))
}
