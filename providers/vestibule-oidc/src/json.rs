//! Strict JSON for token parts: an object that names a member twice is refused, at every depth.
//!
//! `serde_json` keeps the last of two members with the same name. In a signed token, that is a gift to whoever
//! can place a second `sub`, `aud` or `alg` where another parser (the provider's, a gateway's, a log
//! pipeline's) keeps the first: two programs read two different tokens under one signature. RFC 7515 4 and
//! RFC 7519 4 allow rejecting such a token; rejecting is the only choice that cannot be read two ways. Names
//! are compared after JSON unescaping, so `"s\u0075b"` duplicates `"sub"`.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a document was refused. Never carries the document or a name from it: the text is attacker-chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JsonError {
    /// Not JSON at all (syntax, bad escapes, trailing bytes, nesting deeper than `serde_json`'s limit of 128).
    #[error("not JSON")]
    Malformed,
    /// JSON, but not an object at the top.
    #[error("not a JSON object")]
    NotAnObject,
    /// Some object, at any depth, names a member twice.
    #[error("a JSON object names a member twice")]
    DuplicateName,
}

/// Parses `bytes` as one JSON object, refusing a member name that appears twice in any object inside it.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    match parse_value(bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err(JsonError::NotAnObject),
    }
}

/// Parses `bytes` as one JSON value of any kind (an array of objects, say), refusing a member name that appears
/// twice in any object inside it.
pub(crate) fn parse_value(bytes: &[u8]) -> Result<Value, JsonError> {
    let duplicate = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict { duplicate: &duplicate }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    // The flag, not the error text, says why parsing stopped: `serde_json` wraps a custom error with a position.
    if duplicate.get() {
        return Err(JsonError::DuplicateName);
    }
    parsed.map_err(|_| JsonError::Malformed)
}

/// Builds a [`Value`] as `serde_json`'s own visitor does, except that a repeated name in an object stops the
/// parse and raises `duplicate`. `Copy`, so each nested value gets its own seed pointing at the same flag.
#[derive(Clone, Copy)]
struct Strict<'a> {
    duplicate: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // `serde_json` refuses non-finite numbers while parsing, so `None` cannot happen; `Null` mirrors its
        // own visitor rather than panicking.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                self.duplicate.set(true);
                return Err(A::Error::custom("duplicate member name"));
            }
            let value = map.next_value_seed(self)?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

/// proptest strategies for JSON documents, shared with the token tests.
#[cfg(test)]
pub(crate) mod arbitrary {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// Any JSON value, with floats limited to ones `serde_json` reads back exactly (without its
    /// `float_roundtrip` feature, a long decimal may come back one ulp off).
    pub(crate) fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i32>().prop_map(|i| json!(f64::from(i) / 8.0)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A JSON object as (name, value) members with distinct names.
    pub(crate) fn any_members() -> impl Strategy<Value = Vec<(String, Value)>> {
        prop::collection::btree_map(any::<String>(), any_value(), 1..8).prop_map(|m| m.into_iter().collect())
    }

    /// `name` as a JSON string with every UTF-16 unit escaped: the same name to a JSON parser, other bytes.
    pub(crate) fn escaped(name: &str) -> String {
        let units: String = name.encode_utf16().map(|u| format!("\\u{u:04x}")).collect();
        format!("\"{units}\"")
    }

    /// Writes an object from raw (name, value) JSON texts, in order, duplicates and all.
    pub(crate) fn raw_object(members: &[(String, String)]) -> String {
        let inner: Vec<String> = members.iter().map(|(n, v)| format!("{n}:{v}")).collect();
        format!("{{{}}}", inner.join(","))
    }

    /// A JSON object text in which one object, `depth` levels down, names a member twice.
    pub(crate) fn with_duplicate() -> impl Strategy<Value = String> {
        (
            any_members(),
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            any_value(),
            any::<bool>(),
            0..4usize,
        )
            .prop_map(|(members, which, at, second, escape, depth)| {
                let mut raw: Vec<(String, String)> = members
                    .iter()
                    .map(|(n, v)| (json!(n).to_string(), v.to_string()))
                    .collect();
                let name = &members[which.index(members.len())].0;
                let name = if escape { escaped(name) } else { json!(name).to_string() };
                raw.insert(at.index(raw.len() + 1), (name, second.to_string()));
                let mut text = raw_object(&raw);
                for level in 0..depth {
                    text = if level % 2 == 0 {
                        format!("{{\"nested\":{text}}}")
                    } else {
                        format!("[1,{text}]")
                    };
                }
                // The top must stay an object, so that only the duplicate can be the reason for a refusal.
                if text.starts_with('[') {
                    format!("{{\"list\":{text}}}")
                } else {
                    text
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::arbitrary::{any_members, with_duplicate};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_objects_parse_like_serde_json() {
        let text = br#"{"a": 1, "b": [true, null, -2, 2.5, "x\u00e9"], "c": {"d": {}}, "e": 18446744073709551615}"#;
        let reference: Value = serde_json::from_slice(text).expect("reference");
        assert_eq!(parse_object(text).map(Value::Object), Ok(reference));
    }

    #[test]
    fn duplicates_are_refused_at_any_depth_and_in_any_spelling() {
        for text in [
            r#"{"sub": "a", "sub": "b"}"#,
            r#"{"sub": "a", "s\u0075b": "a"}"#,
            r#"{"x": {"y": 1, "y": 1}}"#,
            r#"{"x": [1, {"y": 1, "y": 2}]}"#,
            r#"{"x": [[[{"": 1, "": 1}]]]}"#,
        ] {
            assert_eq!(parse_object(text.as_bytes()), Err(JsonError::DuplicateName), "{text}");
        }
        // The same name in two different objects is not a duplicate.
        assert!(parse_object(br#"{"a": {"n": 1}, "b": {"n": 1}, "n": 1}"#).is_ok());
    }

    #[test]
    fn malformed_and_non_objects_are_refused() {
        for text in [
            &b""[..],
            b"{",
            b"{\"a\":1} x",
            b"{\"a\":1}{}",
            b"{\"a\":\"\\ud800\"}",
            b"\xff",
            b"{'a':1}",
        ] {
            assert_eq!(parse_object(text), Err(JsonError::Malformed), "{text:?}");
        }
        for text in ["[]", "1", "\"{}\"", "null"] {
            assert_eq!(parse_object(text.as_bytes()), Err(JsonError::NotAnObject), "{text}");
        }
        // Deep nesting hits serde_json's recursion limit instead of the stack.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse_object(deep.as_bytes()), Err(JsonError::Malformed));
    }

    #[test]
    fn errors_reveal_nothing() {
        let secret = "eyJzZWNyZXQiOiJ4In0";
        let text = format!("{{\"{secret}\": 1, \"{secret}\": 2}}");
        let e = parse_object(text.as_bytes()).expect_err("duplicate");
        assert!(!format!("{e} {e:?}").contains(secret));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let reference = serde_json::from_slice::<Value>(&bytes);
            match (parse_object(&bytes), reference) {
                // Whatever it accepts, serde_json reads the same way.
                (Ok(map), Ok(reference)) => prop_assert_eq!(reference, Value::Object(map)),
                (Err(JsonError::Malformed), Err(_)) => {}
                (Err(JsonError::NotAnObject), Ok(reference)) => prop_assert!(!reference.is_object()),
                // serde_json keeps the last of the two; this parser refuses.
                (Err(JsonError::DuplicateName), Ok(_)) => {}
                (ours, reference) => prop_assert!(false, "disagreement: {:?} vs {:?}", ours, reference.is_ok()),
            }
        }

        #[test]
        fn objects_without_duplicates_round_trip(members in any_members()) {
            let object: Map<String, Value> = members.into_iter().collect();
            let text = serde_json::to_vec(&object).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parse_object(&text), Ok(object));
        }

        #[test]
        fn a_duplicated_name_is_always_refused(text in with_duplicate()) {
            prop_assert_eq!(parse_object(text.as_bytes()), Err(JsonError::DuplicateName));
        }
    }
}
