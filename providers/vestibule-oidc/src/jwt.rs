//! ID-token verification.
//!
//! The signature primitives are openidconnect's (`JsonWebKey::verify_signature` over RSA, ECDSA and EdDSA keys);
//! the parsing and claim checks are here, because the broker needs the raw claims (claim mapping is configurable,
//! and `email_verified: "true"` must read as *not verified* rather than failing the whole token) and because a
//! few checks are stricter than the library's defaults (`iat` in the future, `azp`, `typ`, `crit`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyUse, JwsSigningAlgorithm};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub(crate) const SKEW_SECS: i64 = 60;

/// The largest token accepted; real ID tokens are a few kilobytes.
const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Why a token was refused. Messages never contain the token or its claims' values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JwtError {
    /// No key in the JWKS has the token's `kid` (or fits its algorithm): the caller may refetch the JWKS once.
    UnknownKey,
    /// Anything else: the token is refused.
    Invalid(&'static str),
}

/// Maps an algorithm name to one that may sign an ID token here: asymmetric only. `none` and HMAC are refused
/// because the broker never trusts an unsigned token, and HMAC "keyed with the public key" is the classic
/// key-confusion forgery.
pub(crate) fn parse_asymmetric_alg(name: &str) -> Option<CoreJwsSigningAlgorithm> {
    let alg: CoreJwsSigningAlgorithm = serde_json::from_value(Value::String(name.to_owned())).ok()?;
    match alg {
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256
        | CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384
        | CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512
        | CoreJwsSigningAlgorithm::RsaSsaPssSha256
        | CoreJwsSigningAlgorithm::RsaSsaPssSha384
        | CoreJwsSigningAlgorithm::RsaSsaPssSha512
        | CoreJwsSigningAlgorithm::EcdsaP256Sha256
        | CoreJwsSigningAlgorithm::EcdsaP384Sha384
        | CoreJwsSigningAlgorithm::EdDsa => Some(alg),
        _ => None,
    }
}

fn b64(part: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Invalid("token is not base64url"))
}

/// Checks a compact JWS against `keys` with one of `allowed` algorithms and returns its payload as JSON.
/// Keys come only from the provider's JWKS: `jku`, `x5u`, `jwk` and `x5c` headers are never looked at.
pub(crate) fn verify_signature(
    token: &str,
    keys: &CoreJsonWebKeySet,
    allowed: &[CoreJwsSigningAlgorithm],
) -> Result<Map<String, Value>, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Invalid("token too large"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        // Five parts would be an encrypted token (JWE), which this client never asked for.
        return Err(JwtError::Invalid("not a signed JWT"));
    };
    let header: Map<String, Value> =
        serde_json::from_slice(&b64(h)?).map_err(|_| JwtError::Invalid("token header is not a JSON object"))?;
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwtError::Invalid("token header has no alg"))?;
    let alg = parse_asymmetric_alg(alg_name)
        .filter(|a| allowed.contains(a))
        .ok_or(JwtError::Invalid("token algorithm not allowed"))?;
    if header.contains_key("crit") {
        // RFC 7515 4.1.11: extensions we do not understand must make the token invalid.
        return Err(JwtError::Invalid("token has critical header extensions"));
    }
    if let Some(typ) = header.get("typ") {
        // An ID token is typed JWT or untyped; `at+jwt`, `logout+jwt` and friends are other tokens (ASVS 9.2.2).
        let ok = typ
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("application/jwt"));
        if !ok {
            return Err(JwtError::Invalid("token type is not an ID token"));
        }
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(JwtError::Invalid("token kid is not a string")),
    };
    let candidates: Vec<&CoreJsonWebKey> = keys
        .keys()
        .iter()
        .filter(|k| match kid {
            Some(kid) => k.key_id().is_some_and(|id| id.as_str() == kid),
            None => true,
        })
        .filter(|k| compatible(k, &alg))
        .collect();
    if candidates.is_empty() {
        return Err(JwtError::UnknownKey);
    }
    let signature = b64(s)?;
    let signing_input = &token.as_bytes()[..h.len() + 1 + p.len()];
    // Without a kid (or with a duplicated one) several keys may fit: the token is good if one of them signed it.
    if !candidates
        .iter()
        .any(|k| k.verify_signature(&alg, signing_input, &signature).is_ok())
    {
        return Err(JwtError::Invalid("bad token signature"));
    }
    serde_json::from_slice(&b64(p)?).map_err(|_| JwtError::Invalid("token payload is not a JSON object"))
}

fn compatible(key: &CoreJsonWebKey, alg: &CoreJwsSigningAlgorithm) -> bool {
    if key.key_use().is_some_and(|u| !u.allows_signature()) {
        return false;
    }
    if alg.key_type().as_ref() != Some(key.key_type()) {
        return false;
    }
    match key.signing_alg() {
        JsonWebKeyAlgorithm::Unspecified => true,
        JsonWebKeyAlgorithm::Algorithm(a) => a == alg,
        JsonWebKeyAlgorithm::Unsupported => false,
    }
}

/// What the claims of an ID token must match.
pub(crate) struct Expected<'a> {
    /// Accepted `iss` spellings (one, except Google's two).
    pub issuers: &'a [String],
    pub client_id: &'a str,
    pub trusted_audiences: &'a [String],
    pub nonce: &'a str,
    /// Seconds since the epoch.
    pub now: i64,
}

fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        // NumericDate may carry a fraction; whole seconds are precise enough for a 60 s skew.
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(JwtError::Invalid("token time claim out of range")),
        Some(_) => Err(JwtError::Invalid("token time claim is not a number")),
    }
}

/// OpenID Connect Core 3.1.3.7, steps 2-5 and 9-11, plus `nbf` and `sub`. Returns `sub`.
pub(crate) fn check_claims(claims: &Map<String, Value>, exp: &Expected<'_>) -> Result<String, JwtError> {
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(JwtError::Invalid("token has no issuer"))?;
    if !exp.issuers.iter().any(|i| i == iss) {
        return Err(JwtError::Invalid("token issuer mismatch"));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| v.as_str().ok_or(JwtError::Invalid("token audience is not a string")))
            .collect::<Result<_, _>>()?,
        _ => return Err(JwtError::Invalid("token has no audience")),
    };
    if !audiences.contains(&exp.client_id) {
        return Err(JwtError::Invalid("token audience mismatch"));
    }
    if audiences
        .iter()
        .any(|a| *a != exp.client_id && !exp.trusted_audiences.iter().any(|t| t == a))
    {
        return Err(JwtError::Invalid("token names an untrusted audience"));
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == exp.client_id => {}
        Some(_) => return Err(JwtError::Invalid("token authorized party mismatch")),
        None if audiences.len() > 1 => return Err(JwtError::Invalid("token for several audiences has no azp")),
        None => {}
    }
    let expiry = number(claims, "exp")?.ok_or(JwtError::Invalid("token has no expiry"))?;
    if exp.now > expiry.saturating_add(SKEW_SECS) {
        return Err(JwtError::Invalid("token expired"));
    }
    let iat = number(claims, "iat")?.ok_or(JwtError::Invalid("token has no issue time"))?;
    if iat > exp.now.saturating_add(SKEW_SECS) {
        return Err(JwtError::Invalid("token issued in the future"));
    }
    if let Some(nbf) = number(claims, "nbf")? {
        if nbf > exp.now.saturating_add(SKEW_SECS) {
            return Err(JwtError::Invalid("token not yet valid"));
        }
    }
    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .ok_or(JwtError::Invalid("token has no nonce"))?;
    if !bool::from(nonce.as_bytes().ct_eq(exp.nonce.as_bytes())) {
        return Err(JwtError::Invalid("token nonce mismatch"));
    }
    match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(JwtError::Invalid("token has no subject")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn base() -> Value {
        json!({"iss": "https://op", "aud": "rp", "exp": 2000, "iat": 1000, "nonce": "n", "sub": "u1"})
    }

    fn check(v: Value) -> Result<String, JwtError> {
        let issuers = ["https://op".to_owned()];
        let trusted = ["other".to_owned()];
        check_claims(
            &claims(v),
            &Expected {
                issuers: &issuers,
                client_id: "rp",
                trusted_audiences: &trusted,
                nonce: "n",
                now: 1500,
            },
        )
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = base();
        v[key] = value;
        v
    }

    #[test]
    fn honest_claims_pass() {
        assert_eq!(check(base()).as_deref(), Ok("u1"));
        assert!(check(with("aud", json!(["rp"]))).is_ok());
        assert!(check(with("exp", json!(1500.5))).is_ok());
    }

    #[test]
    fn audience_rules() {
        assert!(check(with("aud", json!("x"))).is_err());
        assert!(check(with("aud", json!(["rp", "evil"]))).is_err());
        // A trusted second audience still needs azp = client_id.
        assert!(check(with("aud", json!(["rp", "other"]))).is_err());
        let mut v = with("aud", json!(["rp", "other"]));
        v["azp"] = json!("rp");
        assert!(check(v).is_ok());
        assert!(check(with("azp", json!("other"))).is_err());
    }

    #[test]
    fn time_nonce_and_subject_rules() {
        assert!(check(with("exp", json!(1000))).is_err());
        assert!(check(with("exp", json!("2000"))).is_err());
        assert!(check(with("iat", json!(1700))).is_err());
        assert!(check(with("nbf", json!(1700))).is_err());
        assert!(check(with("nonce", json!("m"))).is_err());
        assert!(check(with("sub", json!(""))).is_err());
        assert!(check(with("sub", json!(7))).is_err());
        let mut v = base();
        if let Value::Object(m) = &mut v {
            m.remove("iat");
        }
        assert!(check(v).is_err());
    }

    #[test]
    fn only_asymmetric_algorithms() {
        assert!(parse_asymmetric_alg("RS256").is_some());
        assert!(parse_asymmetric_alg("ES256").is_some());
        for bad in ["none", "HS256", "HS512", "rs256", ""] {
            assert!(parse_asymmetric_alg(bad).is_none(), "{bad}");
        }
    }
}
