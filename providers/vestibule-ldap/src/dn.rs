//! Just enough of RFC 4514 to read DNs the directory returns: the short name of a group from its first RDN, and
//! DN comparison after normalization (attribute types and values compared case-insensitively, spaces around
//! separators ignored), so that `CN=Admins, OU=Groups,...` matches `cn=admins,ou=groups,...`.

/// One attribute-value assertion of an RDN: the type lowercased, the value unescaped.
type Ava = (String, String);

/// Parses a DN into its RDNs (each a set of AVAs), unescaping values. `None` when it is not a DN.
pub(crate) fn parse(dn: &str) -> Option<Vec<Vec<Ava>>> {
    let mut rdns = Vec::new();
    if dn.trim().is_empty() {
        return Some(rdns);
    }
    for rdn in split_unescaped(dn, b',') {
        let mut avas = Vec::new();
        for ava in split_unescaped(rdn, b'+') {
            let eq = ava.find('=')?;
            let kind = ava[..eq].trim_matches(' ');
            if kind.is_empty()
                || !kind
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return None;
            }
            avas.push((kind.to_ascii_lowercase(), unescape(trim_spaces(&ava[eq + 1..]))?));
        }
        rdns.push(avas);
    }
    Some(rdns)
}

/// The value of the first RDN (`admins` for `cn=admins,ou=groups,dc=example,dc=org`).
pub(crate) fn first_value(dn: &str) -> Option<String> {
    let rdns = parse(dn)?;
    let first = rdns.first()?.first()?;
    if first.1.is_empty() {
        return None;
    }
    Some(first.1.clone())
}

/// Everything after the first RDN (`ou=people,dc=example,dc=org` for `uid=alice,ou=people,dc=example,dc=org`),
/// or `None` for a DN of one RDN.
pub(crate) fn parent(dn: &str) -> Option<&str> {
    let first = split_unescaped(dn, b',').into_iter().next()?;
    let rest = dn.get(first.len() + 1..)?.trim_matches(' ');
    (!rest.is_empty()).then_some(rest)
}

/// A canonical form for comparing DNs: lowercase, unescaped, multi-valued RDNs sorted.
pub(crate) fn normalize(dn: &str) -> Option<String> {
    let rdns = parse(dn)?;
    let parts: Vec<String> = rdns
        .into_iter()
        .map(|mut avas| {
            for ava in avas.iter_mut() {
                ava.1 = ava.1.to_lowercase();
            }
            avas.sort();
            avas.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(parts.join(","))
}

/// Drops the spaces around a value that RFC 4514 readers may tolerate (`cn=a, dc=x`). Only U+0020, and not an
/// escaped one at the end (`a\ `): a tab or a no-break space is part of the value, and trimming it would make
/// two different groups compare equal.
fn trim_spaces(v: &str) -> &str {
    let v = v.trim_start_matches(' ');
    let b = v.as_bytes();
    let mut end = b.len();
    while end > 0 && b[end - 1] == b' ' {
        let backslashes = b[..end - 1].iter().rev().take_while(|c| **c == b'\\').count();
        if backslashes % 2 == 1 {
            break;
        }
        end -= 1;
    }
    &v[..end]
}

/// Splits at `sep` where it is not escaped by a backslash.
fn split_unescaped(s: &str, sep: u8) -> Vec<&str> {
    let bytes = s.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == sep => {
                parts.push(&s[start..i]);
                start = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    parts.push(&s[start.min(s.len())..]);
    parts
}

/// RFC 4514 value unescaping: `\XX` hex pairs and `\c` for a special character.
fn unescape(v: &str) -> Option<String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let a = *bytes.get(i + 1)?;
            match (hex(a), bytes.get(i + 2).and_then(|b| hex(*b))) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(a);
                    i += 2;
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Active Directory's `objectGUID` (16 bytes, the first three fields little-endian) as the canonical GUID
/// string that AD tools show, such as `3f2504e0-4f89-11d3-9a0c-0305e82c3301`.
pub(crate) fn guid_string(b: &[u8]) -> Option<String> {
    let b: &[u8; 16] = b.try_into().ok()?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

/// The inverse of [`guid_string`]: the 16 wire bytes of a GUID written `3f2504e0-4f89-11d3-9a0c-0305e82c3301`
/// (either case). `None` for anything else.
pub(crate) fn guid_bytes(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let digits: Vec<u8> = b.iter().copied().filter(|c| *c != b'-').collect();
    if digits.len() != 32 {
        return None;
    }
    let mut text = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        text[i] = hex(pair[0])? << 4 | hex(pair[1])?;
    }
    // Written order to wire order: the first three fields are little-endian on the wire.
    let t = text;
    Some([
        t[3], t[2], t[1], t[0], t[5], t[4], t[7], t[6], t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_values_are_short_names() {
        assert_eq!(
            first_value("cn=admins,ou=groups,dc=example,dc=org").as_deref(),
            Some("admins")
        );
        assert_eq!(
            first_value("CN=Domain Admins,CN=Users,DC=corp,DC=example").as_deref(),
            Some("Domain Admins")
        );
        assert_eq!(first_value("cn=a\\2cb,dc=x").as_deref(), Some("a,b"));
        assert_eq!(first_value("cn=R\\&D\\, Europe,dc=x").as_deref(), Some("R&D, Europe"));
        assert_eq!(first_value("garbage"), None);
    }

    #[test]
    fn normalization_ignores_case_and_spaces() {
        assert_eq!(
            normalize("CN=Admins, OU=Groups,dc=Example,dc=org"),
            normalize("cn=admins,ou=groups,dc=example,dc=org")
        );
        assert_ne!(
            normalize("cn=admins,ou=groups,dc=example,dc=org"),
            normalize("cn=admins2,ou=groups,dc=example,dc=org")
        );
        assert_eq!(normalize("cn=a\\2c b,dc=x"), normalize("cn=A\\, B,dc=x"));
        assert!(parse("cn=a,=b").is_none());
    }

    #[test]
    fn only_unescaped_spaces_around_a_value_are_insignificant() {
        // RFC 4514 values keep every other character: a tab, a no-break space, an escaped trailing space.
        assert_eq!(first_value("cn=\tab\t,dc=x").as_deref(), Some("\tab\t"));
        assert_eq!(
            first_value("cn=\u{a0}a\u{2003},dc=x").as_deref(),
            Some("\u{a0}a\u{2003}")
        );
        assert_eq!(first_value(r"cn=a\ ,dc=x").as_deref(), Some("a "));
        assert_eq!(first_value(r"cn= a\20 ,dc=x").as_deref(), Some("a "));
        assert_eq!(first_value(r"cn=\\ ,dc=x").as_deref(), Some("\\"));
        assert_ne!(normalize("cn=a\t,dc=x"), normalize("cn=a,dc=x"));
    }

    #[test]
    fn object_guid_is_rendered_like_active_directory() {
        // The classic example GUID {3F2504E0-4F89-11D3-9A0C-0305E82C3301} in its on-the-wire byte order.
        let wire = [
            0xe0, 0x04, 0x25, 0x3f, 0x89, 0x4f, 0xd3, 0x11, 0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c, 0x33, 0x01,
        ];
        assert_eq!(
            guid_string(&wire).as_deref(),
            Some("3f2504e0-4f89-11d3-9a0c-0305e82c3301")
        );
        assert_eq!(guid_string(&wire[..15]), None);
        assert_eq!(guid_bytes("3f2504e0-4f89-11d3-9a0c-0305e82c3301"), Some(wire));
        assert_eq!(guid_bytes("3F2504E0-4F89-11D3-9A0C-0305E82C3301"), Some(wire));
        for bad in [
            "3f2504e0-4f89-11d3-9a0c-0305e82c330",
            "3f2504e0+4f89-11d3-9a0c-0305e82c3301",
            "x",
        ] {
            assert_eq!(guid_bytes(bad), None, "{bad}");
        }
        assert_eq!(guid_bytes("3f2504e0-4f89-11d3-9a0c-0305e82c33g1"), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn guids_round_trip(wire in proptest::prelude::any::<[u8; 16]>()) {
            let text = guid_string(&wire);
            proptest::prop_assert_eq!(text.as_deref().and_then(guid_bytes), Some(wire));
        }
    }

    #[test]
    fn parents() {
        assert_eq!(parent("uid={username},ou=people,dc=x"), Some("ou=people,dc=x"));
        assert_eq!(parent("cn=a\\,b, ou=x"), Some("ou=x"));
        assert_eq!(parent("dc=x"), None);
    }
}
