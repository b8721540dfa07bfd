//! `next`: where to go after signing in. Only a same-origin relative path is accepted; anything that a browser
//! could read as another origin falls back to the default page (Flask-Login's `/\evil.example` and OpenCVE's
//! `////evil.example` bypasses included).

use percent_encoding::percent_decode_str;

/// `Some(path)` when `raw` is a safe same-origin path such as `/dashboard?tab=1`, else `None`.
///
/// ```
/// use vestibule_axum::safe_next;
/// assert_eq!(safe_next("/app/home?x=1").as_deref(), Some("/app/home?x=1"));
/// for evil in ["//evil.example", "/\\evil.example", "https://evil.example", "javascript:alert(1)",
///              "/%2F%2Fevil.example", "/%5Cevil.example", "%2F%2Fevil.example", "/\t/evil.example"] {
///     assert_eq!(safe_next(evil), None, "{evil}");
/// }
/// ```
pub fn safe_next(raw: &str) -> Option<String> {
    if raw.len() > 2048 {
        return None;
    }
    // Check the value as given and after each round of percent-decoding: whichever form a browser or a proxy ends
    // up interpreting, none may point elsewhere. Three rounds cover double encoding; deeper nesting is refused.
    let mut current = raw.to_owned();
    for _ in 0..3 {
        if !safe_form(&current) {
            return None;
        }
        let decoded = percent_decode_str(&current).decode_utf8().ok()?.into_owned();
        if decoded == current {
            return Some(raw.to_owned());
        }
        current = decoded;
    }
    None
}

fn safe_form(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        // Browsers turn `\` into `/` and drop tabs and newlines, so `/\t/x` becomes `//x`.
        && !s.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_pass() {
        for ok in [
            "/",
            "/account",
            "/a/b?c=d&e=%2F",
            "/search?q=https://x.example",
            "/%E2%9C%93",
        ] {
            assert_eq!(safe_next(ok).as_deref(), Some(ok), "{ok}");
        }
    }

    #[test]
    fn everything_else_falls_back() {
        for bad in [
            "",
            "account",
            "//evil.example",
            "///evil.example",
            "////evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "http:evil.example",
            "javascript:alert(1)",
            "data:text/html,x",
            "/%2fevil.example",
            "%2F%2Fevil.example",
            "/%5cevil.example",
            "/%252F%252Fevil.example",
            "/%25252F%25252Fevil.example",
            "/\n/evil.example",
            " /evil",
            "/ok\\..\\evil",
            "/%00",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Pieces that the known bypasses are made of: slashes and backslashes raw and percent-encoded (once and
        /// twice), schemes, controls and spaces browsers drop, a non-ASCII slash look-alike.
        const PIECES: &[&str] = &[
            "/",
            "\\",
            "%2F",
            "%2f",
            "%5C",
            "%5c",
            "%25",
            "%252F",
            "%2525",
            "%09",
            "%0A",
            "%0d",
            "%00",
            "%20",
            "%",
            "%E2%9C%93",
            "%C0%AF",
            "%ff",
            "a",
            "evil.example",
            ":",
            "https:",
            "javascript:",
            "//",
            "@",
            ".",
            "..",
            "?",
            "#",
            "=",
            "&",
            "\t",
            "\n",
            "\r",
            " ",
            "\u{0}",
            "\u{7f}",
            "\u{a0}",
            "\u{3000}",
            "\u{ff0f}",
            "✓",
        ];

        fn tricky() -> impl Strategy<Value = String> {
            prop::collection::vec(prop::sample::select(PIECES), 0..12).prop_map(|p| p.concat())
        }

        /// Every spelling a browser, a proxy or an app decoding the value once or twice more could act on: the
        /// value and each round of percent-decoding until it stops changing.
        fn spellings(raw: &str) -> Vec<String> {
            let mut out = vec![raw.to_owned()];
            for _ in 0..4 {
                let last = out.last().cloned().unwrap_or_default();
                let next = percent_decode_str(&last).decode_utf8_lossy().into_owned();
                if next == last {
                    break;
                }
                out.push(next);
            }
            out
        }

        /// The oracle: a same-origin relative path in every spelling, by the rules stated independently of the
        /// implementation, and by the WHATWG URL parser itself (the `url` crate) resolving it against a page.
        fn same_origin_everywhere(raw: &str) -> Result<(), String> {
            let base = url::Url::parse("https://app.example/some/page?q=1").map_err(|e| e.to_string())?;
            for s in spellings(raw) {
                let fail = |why: &str| Err(format!("{why} in spelling {s:?} of {raw:?}"));
                if !s.starts_with('/') {
                    return fail("not a path");
                }
                if s.starts_with("//") || s.starts_with("/\\") {
                    return fail("network-path reference");
                }
                if s.contains('\\') {
                    return fail("backslash");
                }
                if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return fail("control or space");
                }
                let resolved = match base.join(&s) {
                    Ok(u) => u,
                    Err(e) => return fail(&format!("unparseable ({e})")),
                };
                if resolved.origin() != base.origin()
                    || !resolved.username().is_empty()
                    || resolved.password().is_some()
                {
                    return fail(&format!("resolves elsewhere: {resolved}"));
                }
            }
            Ok(())
        }

        fn check(raw: &str) -> Result<(), TestCaseError> {
            if let Some(out) = safe_next(raw) {
                prop_assert_eq!(&out, raw, "returned as given");
                same_origin_everywhere(&out).map_err(TestCaseError::fail)?;
                // It goes into a `Location` header as it is.
                prop_assert!(http::HeaderValue::try_from(out.clone()).is_ok(), "{:?}", out);
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn whatever_is_accepted_is_same_origin_in_every_spelling(raw in tricky()) {
                check(&raw)?;
            }

            #[test]
            fn arbitrary_text_never_panics_and_is_judged_the_same(raw in any::<String>()) {
                check(&raw)?;
            }

            #[test]
            fn plain_paths_are_accepted(
                segments in prop::collection::vec("[A-Za-z0-9._~-]{1,8}", 0..5),
                query in proptest::option::of("[A-Za-z0-9=&%/:._-]{0,16}"),
            ) {
                let mut path = format!("/{}", segments.join("/"));
                if let Some(q) = query {
                    // Keep only queries whose percent signs start valid escapes of safe characters.
                    let q = q.replace('%', "%41");
                    path = format!("{path}?{q}");
                }
                prop_assume!(!path.starts_with("//"));
                let accepted = safe_next(&path);
                prop_assert_eq!(accepted.as_deref(), Some(path.as_str()));
            }
        }
    }
}
