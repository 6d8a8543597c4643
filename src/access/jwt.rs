//! JSON Web Tokens, presented where static tokens are. Verified with a
//! shared secret (HS256/384/512) or a public key (EdDSA, ES256/384, RS and
//! PS 256/384/512) read from the files named in `[auth]`. `exp` is
//! required; the other claims become the connection's [`Grant`].

use super::{Grant, Scope};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    topics: Option<Vec<String>>,
    #[serde(default)]
    publish: Option<Vec<String>>,
    #[serde(default)]
    max_subs: Option<usize>,
    #[serde(default)]
    max_rate: Option<f64>,
    #[serde(default)]
    max_bytes_per_sec: Option<u64>,
}

/// The endpoint a verified token opens: a token with a `publish` claim is
/// a publisher's and opens only `/publish`; any other only `/ws`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Subscriber,
    Publisher,
}

/// The keys tokens are verified with.
pub(crate) struct Verifier {
    keys: Vec<(DecodingKey, Vec<Algorithm>)>,
    max_topic_len: usize,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        write!(f, "Verifier({} keys)", self.keys.len())
    }
}

impl Verifier {
    /// Reads the secret and public-key files; None when neither is set
    /// (JWT off). The error says which file and why, never its contents.
    pub fn load(
        secret: Option<&Path>,
        public_key: Option<&Path>,
        max_topic_len: usize,
    ) -> Result<Option<Verifier>, String> {
        let read = |what: &str, p: &Path| {
            std::fs::read(p).map_err(|e| format!("cannot read the {what} {}: {e}", p.display()))
        };
        let mut keys = Vec::new();
        if let Some(p) = secret {
            let mut s = read("JWT secret file", p)?;
            // A trailing newline from `echo` is not part of the secret.
            while s.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                s.pop();
            }
            if s.len() < 16 {
                return Err(format!(
                    "the JWT secret in {} is shorter than 16 bytes",
                    p.display()
                ));
            }
            keys.extend(Verifier::with_secret(&s, max_topic_len).keys);
        }
        if let Some(p) = public_key {
            let pem = read("JWT public key file", p)?;
            use Algorithm::*;
            let key = if let Ok(k) = DecodingKey::from_ed_pem(&pem) {
                (k, vec![EdDSA])
            } else if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
                (k, vec![ES256, ES384])
            } else if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                (k, vec![RS256, RS384, RS512, PS256, PS384, PS512])
            } else {
                return Err(format!(
                    "{} holds no PEM public key (Ed25519, EC P-256/P-384 or RSA)",
                    p.display()
                ));
            };
            keys.push(key);
        }
        Ok((!keys.is_empty()).then_some(Verifier {
            keys,
            max_topic_len,
        }))
    }

    /// A verifier of HS256/384/512 tokens with this secret.
    pub fn with_secret(secret: &[u8], max_topic_len: usize) -> Verifier {
        use Algorithm::*;
        Verifier {
            keys: vec![(DecodingKey::from_secret(secret), vec![HS256, HS384, HS512])],
            max_topic_len,
        }
    }

    /// Does `token` have a JWT's shape (three dot-separated parts)? Only
    /// such tokens are verified; others can only be static tokens.
    pub fn looks_like(token: &str) -> bool {
        token.split('.').count() == 3
    }

    /// Verifies a token's signature and expiry and reads its claims. The
    /// error is what the client is told (never the token).
    pub fn verify(&self, token: &str) -> Result<(Kind, Grant), String> {
        let header = decode_header(token).map_err(|_| "malformed token".to_string())?;
        let Some((key, algs)) = self.keys.iter().find(|(_, a)| a.contains(&header.alg)) else {
            return Err(format!(
                "tokens signed with {:?} are not accepted here",
                header.alg
            ));
        };
        let mut v = Validation::new(header.alg);
        v.algorithms = algs.clone();
        v.leeway = 0;
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp"]);
        let claims = decode::<Claims>(token, key, &v)
            .map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::InvalidSignature => "bad token signature",
                    ErrorKind::MissingRequiredClaim(_) => "the token has no exp claim",
                    ErrorKind::Json(_) => "the token's claims have the wrong types",
                    _ => "invalid token",
                }
                .to_string()
            })?
            .claims;
        let scope = |name: &str, v: Option<Vec<String>>| {
            v.map(|p| Scope::parse(&p, self.max_topic_len))
                .transpose()
                .map_err(|e| format!("the token's {name} claim: {e}"))
        };
        if claims.max_rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return Err("the token's max_rate claim must be a positive number".into());
        }
        let kind = match claims.publish {
            Some(_) => Kind::Publisher,
            None => Kind::Subscriber,
        };
        let grant = Grant {
            sub: claims.sub,
            topics: scope("topics", claims.topics)?,
            publish: scope("publish", claims.publish)?,
            max_subs: claims.max_subs,
            max_rate: claims.max_rate,
            max_bytes_per_sec: claims.max_bytes_per_sec.filter(|&b| b > 0),
            exp: Some(claims.exp.ok_or("the token has no exp claim")?),
        };
        Ok((kind, grant))
    }
}
