//! ID-token verification, in two steps: [`parse`] (pure: no key, no network) and
//! [`UnverifiedToken::verified_claims`] (the signature against the provider's JWKS), then [`check_claims`].
//!
//! The signature primitives are openidconnect's (`JsonWebKey::verify_signature` over RSA, ECDSA and EdDSA keys);
//! the parsing and claim checks are here, because the broker needs the raw claims (claim mapping is configurable,
//! and `email_verified: "true"` must read as *not verified* rather than failing the whole token) and because a
//! few checks are stricter than the library's defaults (`iat` too old or in the future, `azp`, `typ`, `crit`,
//! member names that appear twice).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyUse, JwsSigningAlgorithm};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::json::{self, JsonError};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub(crate) const SKEW_SECS: i64 = 60;

/// The largest token accepted; real ID tokens are a few kilobytes.
const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Why a token was refused. Messages never contain the token or its claims' values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwtError {
    /// No key in the JWKS has the token's `kid` (or fits its algorithm): the caller may refetch the JWKS once.
    #[error("token signed with an unknown key")]
    UnknownKey,
    /// Anything else: the token is refused, for the fixed reason given.
    #[error("{0}")]
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

/// A compact JWS whose parts decoded and whose header passed every rule that needs no key. The claims are
/// reachable only through [`UnverifiedToken::verified_claims`], so nothing can read them unverified.
pub(crate) struct UnverifiedToken<'t> {
    alg: CoreJwsSigningAlgorithm,
    kid: Option<String>,
    /// `header.payload`, exactly as received: what the signature covers.
    signing_input: &'t [u8],
    signature: Vec<u8>,
    claims: Map<String, Value>,
}

/// Splits and decodes a compact JWS, refusing anything not well-formed before a key is looked up or a request
/// is made: three base64url parts, a header and a payload that are JSON objects naming no member twice (at any
/// depth; see [`crate::json`]), an asymmetric `alg` among `allowed`, no `crit`, an ID-token `typ` if any, and
/// a string `kid` if any. Keys come only from the provider's JWKS: `jku`, `x5u`, `jwk` and `x5c` are never
/// looked at.
pub(crate) fn parse<'t>(token: &'t str, allowed: &[CoreJwsSigningAlgorithm]) -> Result<UnverifiedToken<'t>, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Invalid("token too large"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        // Five parts would be an encrypted token (JWE), which this client never asked for.
        return Err(JwtError::Invalid("not a signed JWT"));
    };
    // RFC 7515 4: a parser must refuse duplicate header names or keep the last; refusing leaves no second
    // reading (`"alg":"none","alg":"RS256"` is RS256 here and `none` to a first-wins parser).
    let header = json::parse_object(&b64(h)?).map_err(|e| match e {
        JsonError::DuplicateName => JwtError::Invalid("token header has a duplicate parameter"),
        JsonError::Malformed | JsonError::NotAnObject => JwtError::Invalid("token header is not a JSON object"),
    })?;
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
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(JwtError::Invalid("token kid is not a string")),
    };
    // The payload is parsed before the signature is checked so that a malformed token costs no JWKS fetch;
    // its claims still stay out of reach until the signature verifies.
    let claims = json::parse_object(&b64(p)?).map_err(|e| match e {
        JsonError::DuplicateName => JwtError::Invalid("token claims have a duplicate name"),
        JsonError::Malformed | JsonError::NotAnObject => JwtError::Invalid("token payload is not a JSON object"),
    })?;
    Ok(UnverifiedToken {
        alg,
        kid,
        signing_input: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature: b64(s)?,
        claims,
    })
}

impl UnverifiedToken<'_> {
    /// Checks the signature against `keys` and, only if it holds, returns the claims.
    pub(crate) fn verified_claims(&self, keys: &CoreJsonWebKeySet) -> Result<&Map<String, Value>, JwtError> {
        let kid = self.kid.as_deref();
        let candidates: Vec<&CoreJsonWebKey> = keys
            .keys()
            .iter()
            .filter(|k| match kid {
                Some(kid) => k.key_id().is_some_and(|id| id.as_str() == kid),
                None => true,
            })
            .filter(|k| compatible(k, &self.alg))
            .collect();
        if candidates.is_empty() {
            return Err(JwtError::UnknownKey);
        }
        // Without a kid (or with a duplicated one) several keys may fit: the token is good if one of them signed it.
        if candidates.iter().any(|k| {
            k.verify_signature(&self.alg, self.signing_input, &self.signature)
                .is_ok()
        }) {
            Ok(&self.claims)
        } else {
            Err(JwtError::Invalid("bad token signature"))
        }
    }
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
    /// The oldest `iat` accepted, in seconds before `now`. No skew is added: the limit itself absorbs a
    /// provider clock that runs behind.
    pub max_age_secs: i64,
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

/// OpenID Connect Core 3.1.3.7, steps 2-5 and 9-11 (step 10 with a maximum `iat` age), plus `nbf` and `sub`.
/// Returns `sub`.
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
    // A token minted long ago and replayed now (leaked from a log, a proxy, a browser history) is refused even
    // when its `exp` is generous; a fresh sign-in yields a token issued seconds ago.
    if exp.now.saturating_sub(iat) > exp.max_age_secs {
        return Err(JwtError::Invalid("token issued too long ago"));
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
    use crate::json::arbitrary::{any_members, any_value, with_duplicate};
    use openidconnect::core::CoreRsaPrivateSigningKey;
    use openidconnect::{JsonWebKeyId, PrivateSigningKey};
    use proptest::prelude::*;
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
                max_age_secs: 600,
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
        // `now` is 1500 and the limit 600 s: issued at 900 is the oldest accepted.
        assert!(check(with("iat", json!(900))).is_ok());
        assert_eq!(
            check(with("iat", json!(899))),
            Err(JwtError::Invalid("token issued too long ago"))
        );
        assert!(check(with("iat", json!(i64::MIN))).is_err());
        assert!(check(with("iat", json!(-1e300))).is_err());
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

    const ALLOWED: &[CoreJwsSigningAlgorithm] = &[
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    ];

    fn encode(header: &str, payload: &str, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    fn refusal(token: &str) -> Option<JwtError> {
        parse(token, ALLOWED).err()
    }

    #[test]
    fn duplicates_in_header_or_claims_are_refused_while_parsing() {
        let claims = r#"{"sub":"u1","nonce":"n"}"#;
        let header_dup = Some(JwtError::Invalid("token header has a duplicate parameter"));
        let claims_dup = Some(JwtError::Invalid("token claims have a duplicate name"));
        assert_eq!(
            refusal(&encode(r#"{"alg":"none","alg":"RS256"}"#, claims, b"s")),
            header_dup
        );
        assert_eq!(
            refusal(&encode(r#"{"alg":"RS256","kid":"a","kid":"b"}"#, claims, b"s")),
            header_dup
        );
        for dup in [
            r#"{"sub":"evil","sub":"u1"}"#,
            r#"{"aud":"x","aud":["rp"]}"#,
            r#"{"nonce":"n","n\u006fnce":"n"}"#,
            r#"{"address":{"country":"a","country":"b"}}"#,
        ] {
            assert_eq!(refusal(&encode(r#"{"alg":"RS256"}"#, dup, b"s")), claims_dup, "{dup}");
        }
        assert!(refusal(&encode(r#"{"alg":"RS256"}"#, claims, b"s")).is_none());
    }

    /// The test provider's key from `tests/keys`, with its public half as a one-key JWKS.
    fn test_key() -> (CoreRsaPrivateSigningKey, CoreJsonWebKeySet) {
        let pem = include_str!("../tests/keys/provider.pem");
        let key = CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new("k1".into()))).expect("test key");
        let jwks = CoreJsonWebKeySet::new(vec![key.as_verification_key()]);
        (key, jwks)
    }

    fn sign(key: &CoreRsaPrivateSigningKey, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
        let sig = key
            .sign(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, input.as_bytes())
            .expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn claims_are_released_only_after_the_signature_verifies() {
        let (key, jwks) = test_key();
        let token = sign(&key, r#"{"alg":"RS256","kid":"k1"}"#, r#"{"sub":"u1"}"#);
        let parsed = parse(&token, ALLOWED).expect("well-formed");
        assert_eq!(
            parsed.verified_claims(&jwks).map(|c| c.get("sub").cloned()),
            Ok(Some(json!("u1")))
        );

        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).expect("ascii");
        let parsed = parse(&forged, ALLOWED).expect("still well-formed");
        assert_eq!(
            parsed.verified_claims(&jwks),
            Err(JwtError::Invalid("bad token signature"))
        );

        let other_kid = sign(&key, r#"{"alg":"RS256","kid":"k9"}"#, r#"{"sub":"u1"}"#);
        let parsed = parse(&other_kid, ALLOWED).expect("well-formed");
        assert_eq!(parsed.verified_claims(&jwks), Err(JwtError::UnknownKey));
    }

    /// What [`parse`] must accept, decided independently of it: the header and payload are objects, `alg` is
    /// an allowed name, no `crit`, `typ` absent or JWT, `kid` absent or a string.
    fn well_formed(header: &Value, payload: &Value) -> bool {
        let Value::Object(h) = header else { return false };
        let alg_ok = matches!(h.get("alg"), Some(Value::String(a)) if a == "RS256" || a == "ES256");
        let typ_ok = match h.get("typ") {
            None => true,
            Some(Value::String(t)) => t.eq_ignore_ascii_case("jwt") || t.eq_ignore_ascii_case("application/jwt"),
            Some(_) => false,
        };
        let kid_ok = matches!(h.get("kid"), None | Some(Value::String(_)));
        alg_ok && typ_ok && kid_ok && !h.contains_key("crit") && payload.is_object()
    }

    /// Headers near the boundary: the names `parse` reads, each absent or with a good or bad value, plus noise.
    fn header_like() -> impl Strategy<Value = Value> {
        let alg = prop::option::of(prop_oneof![
            Just(json!("RS256")),
            Just(json!("ES256")),
            Just(json!("PS256")),
            Just(json!("none")),
            Just(json!("HS256")),
            Just(json!("rs256")),
            Just(json!(["RS256"])),
            Just(json!(null)),
        ]);
        let typ = prop::option::of(prop_oneof![
            Just(json!("JWT")),
            Just(json!("jwt")),
            Just(json!("application/jwt")),
            Just(json!("at+jwt")),
            Just(json!(1)),
        ]);
        let kid = prop::option::of(prop_oneof![any::<String>().prop_map(Value::String), Just(json!(7))]);
        let crit = prop::option::of(Just(json!(["exp"])));
        (alg, typ, kid, crit, any_members()).prop_map(|(alg, typ, kid, crit, noise)| {
            let mut h: Map<String, Value> = noise
                .into_iter()
                .filter(|(n, _)| !["alg", "typ", "kid", "crit"].contains(&n.as_str()))
                .collect();
            for (name, value) in [("alg", alg), ("typ", typ), ("kid", kid), ("crit", crit)] {
                if let Some(v) = value {
                    h.insert(name.to_owned(), v);
                }
            }
            Value::Object(h)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_is_refused_without_panicking(
            text in prop_oneof![
                any::<String>(),
                prop::collection::vec(any::<u8>(), 0..512).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ]
        ) {
            prop_assert!(parse(&text, ALLOWED).is_err());
        }

        #[test]
        fn arbitrary_base64url_segments_are_refused(
            segments in prop::collection::vec("[A-Za-z0-9_-]{0,200}", 1..6)
        ) {
            prop_assert!(parse(&segments.join("."), ALLOWED).is_err());
        }

        #[test]
        fn headers_and_payloads_are_refused_unless_well_formed(
            header in prop_oneof![header_like(), any_value()],
            payload in prop_oneof![any_members().prop_map(|m| Value::Object(m.into_iter().collect())), any_value()],
            signature in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let token = encode(&header.to_string(), &payload.to_string(), &signature);
            let parsed = parse(&token, ALLOWED);
            prop_assert_eq!(parsed.is_ok(), well_formed(&header, &payload), "{:?}", parsed.err());
            if let Ok(t) = parsed {
                prop_assert_eq!(Value::Object(t.claims), payload);
                prop_assert_eq!(t.kid.as_deref(), header.get("kid").and_then(Value::as_str));
                prop_assert_eq!(t.signature, signature);
            }
        }

        #[test]
        fn a_duplicated_name_in_header_or_claims_refuses_the_token(
            text in with_duplicate(),
            in_header in any::<bool>(),
        ) {
            let token = if in_header {
                encode(&text, "{}", b"sig")
            } else {
                encode(r#"{"alg":"RS256"}"#, &text, b"sig")
            };
            let expected = if in_header {
                "token header has a duplicate parameter"
            } else {
                "token claims have a duplicate name"
            };
            prop_assert_eq!(refusal(&token), Some(JwtError::Invalid(expected)));
        }
    }

    proptest! {
        // RSA signing is slow in a debug build; a few signed cases prove the same round trip as 256 would.
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn signed_claims_round_trip(members in any_members()) {
            let (key, jwks) = test_key();
            let claims: Map<String, Value> = members.into_iter().collect();
            let payload = Value::Object(claims.clone()).to_string();
            let token = sign(&key, r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#, &payload);
            let parsed = parse(&token, ALLOWED).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parsed.verified_claims(&jwks), Ok(&claims));
        }
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
