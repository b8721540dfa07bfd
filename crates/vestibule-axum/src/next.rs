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
}
