//! Escaping for the two places where outside text goes into LDAP syntax: filter assertion values (RFC 4515: a
//! login name, a user's DN, a stored subject) and DN attribute values (RFC 4514: a login name in a DN template).
//! Everything this crate puts into a filter or a DN goes through here, which is what the property tests below
//! check.

use std::borrow::Cow;
use std::fmt::Write;

/// A string as an RFC 4515 assertion value: `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`, `\29`, `\5c`, `\00`,
/// so the value can neither widen a match (`*`) nor close the filter and open another.
pub(crate) fn filter_value(s: &str) -> Cow<'_, str> {
    ldap3::ldap_escape(s)
}

/// Bytes as an RFC 4515 assertion value, every byte as `\xx`: for binary attributes such as Active Directory's
/// `objectGUID`, whose bytes need not be UTF-8 and may be any of the special characters.
pub(crate) fn filter_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "\\{b:02x}");
    }
    out
}

/// A string as an RFC 4514 attribute value: `,`, `+`, `"`, `\`, `<`, `>`, `;`, `=` and NUL anywhere, `#` or a
/// space at the start and a space at the end become `\xx`, so the value stays one value of one RDN.
pub(crate) fn dn_value(s: &str) -> Cow<'_, str> {
    ldap3::dn_escape(s)
}

#[cfg(test)]
mod tests {
    use ldap3::asn1::{Tag, TagClass};
    use proptest::prelude::*;

    use super::*;

    /// Strings rich in the characters that matter, plus anything at all.
    fn tricky_string() -> impl Strategy<Value = String> {
        let special = prop_oneof![
            Just('*'),
            Just('('),
            Just(')'),
            Just('\\'),
            Just('\0'),
            Just(','),
            Just('+'),
            Just('"'),
            Just('<'),
            Just('>'),
            Just(';'),
            Just('='),
            Just('#'),
            Just(' '),
            Just('{'),
            Just('}'),
            Just('\u{a0}'),
            Just('\u{2003}'),
        ];
        prop_oneof![
            any::<String>(),
            proptest::collection::vec(prop_oneof![special, any::<char>()], 0..24)
                .prop_map(|chars| chars.into_iter().collect()),
        ]
    }

    /// The assertion value of an equality filter `(attr=value)` as ldap3 parses it (the BER it would send).
    fn parsed_equality_value(filter: &str) -> Option<Vec<u8>> {
        match ldap3::parse_filter(filter).ok()? {
            // Context tag 3 is equalityMatch: [attribute, value].
            Tag::Sequence(seq) if seq.class == TagClass::Context && seq.id == 3 => match seq.inner.as_slice() {
                [Tag::OctetString(_attr), Tag::OctetString(value)] => Some(value.inner.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// RFC 4515 well-formedness of an escaped value: no raw `*`, `(`, `)` or NUL, and each `\` starts a hex pair.
    fn filter_escaping_is_complete(escaped: &str) -> bool {
        let b = escaped.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'*' | b'(' | b')' | 0 => return false,
                b'\\' => {
                    if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                        && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                    {
                        return false;
                    }
                    i += 3;
                }
                _ => i += 1,
            }
        }
        true
    }

    /// A test-only RFC 4514 value decoder, independent of the crate's `dn` module: `\` + hex pair is a byte,
    /// `\` + one of the specials is that character; any other use of `\`, or a raw special, is an error.
    fn decode_dn_value(escaped: &str) -> Result<String, String> {
        const SPECIALS: &[u8] = b" \"#+,;<=>\\";
        let b = escaped.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c == b'\\' {
                let hi = b.get(i + 1).and_then(|c| (*c as char).to_digit(16));
                let lo = b.get(i + 2).and_then(|c| (*c as char).to_digit(16));
                match (hi, lo, b.get(i + 1)) {
                    (Some(h), Some(l), _) => {
                        out.push(u8::try_from(h * 16 + l).map_err(|e| e.to_string())?);
                        i += 3;
                    }
                    (_, _, Some(s)) if SPECIALS.contains(s) => {
                        out.push(*s);
                        i += 2;
                    }
                    _ => return Err(format!("bad escape at {i} in {escaped:?}")),
                }
                continue;
            }
            let raw_special = matches!(c, b',' | b'+' | b'"' | b'<' | b'>' | b';' | b'=' | 0)
                || (i == 0 && (c == b'#' || c == b' '))
                || (i + 1 == b.len() && c == b' ');
            if raw_special {
                return Err(format!("unescaped {:?} at {i} in {escaped:?}", c as char));
            }
            out.push(c);
            i += 1;
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn filter_values_round_trip_through_ldap3s_parser(s in tricky_string()) {
            let escaped = filter_value(&s);
            prop_assert!(filter_escaping_is_complete(&escaped), "{escaped:?}");
            let filter = format!("(uid={escaped})");
            prop_assert_eq!(parsed_equality_value(&filter), Some(s.into_bytes()), "{}", filter);
        }

        #[test]
        fn filter_values_stay_one_equality_inside_a_larger_filter(s in tricky_string()) {
            // Where it matters: inside an AND with the rest of a configured filter, the value never escapes its
            // own parentheses.
            let filter = format!("(&(objectClass=person)(uid={}))", filter_value(&s));
            let parsed = ldap3::parse_filter(&filter);
            prop_assert!(parsed.is_ok(), "{filter}");
            if let Ok(Tag::Sequence(and)) = parsed {
                prop_assert_eq!(and.inner.len(), 2);
            }
        }

        #[test]
        fn filter_bytes_round_trip_for_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let escaped = filter_bytes(&bytes);
            prop_assert!(filter_escaping_is_complete(&escaped), "{escaped:?}");
            prop_assert_eq!(escaped.len(), bytes.len() * 3);
            let filter = format!("(objectGUID={escaped})");
            prop_assert_eq!(parsed_equality_value(&filter), Some(bytes), "{}", filter);
        }

        #[test]
        fn dn_values_round_trip_and_leave_no_special_unescaped(s in tricky_string()) {
            let escaped = dn_value(&s);
            prop_assert_eq!(decode_dn_value(&escaped), Ok(s.clone()));
        }

        #[test]
        fn dn_values_stay_one_value_of_one_rdn_for_the_crates_dn_parser(s in tricky_string()) {
            // What a direct-bind template makes of a login name, read back the way the crate reads DNs.
            let dn = format!("uid={},ou=people,dc=example,dc=org", dn_value(&s));
            let rdns = crate::dn::parse(&dn);
            prop_assert!(rdns.is_some(), "{dn}");
            let rdns = rdns.unwrap_or_default();
            prop_assert_eq!(rdns.len(), 4, "{}", dn);
            prop_assert_eq!(rdns[0].len(), 1, "{}", dn);
            prop_assert_eq!(&rdns[0][0], &("uid".to_owned(), s.clone()), "{}", dn);
        }
    }

    #[test]
    fn the_decoder_refuses_what_it_should() {
        assert!(decode_dn_value("a,b").is_err());
        assert!(decode_dn_value("#a").is_err());
        assert!(decode_dn_value("a ").is_err());
        assert!(decode_dn_value(" a").is_err());
        assert!(decode_dn_value("a\\q").is_err());
        assert_eq!(decode_dn_value("\\23a\\2c\\ b\\20"), Ok("#a, b ".to_owned()));
        assert!(!filter_escaping_is_complete("a*"));
        assert!(!filter_escaping_is_complete("a\\2"));
        assert!(filter_escaping_is_complete("a\\2a"));
    }
}
