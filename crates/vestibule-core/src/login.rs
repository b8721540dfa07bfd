//! Login names in one canonical form, so that `Alice`, `alice` and a full-width `ａｌｉｃｅ` are one name for
//! storage, lookup, uniqueness and rate limits.

use unicode_normalization::UnicodeNormalization;

/// The longest canonical login name, in characters.
pub const MAX_LOGIN_CHARS: usize = 256;

/// Input longer than this (in bytes) is refused before any normalisation, to bound the work an attacker can ask
/// for: 256 characters of up to 4 bytes each.
const MAX_LOGIN_INPUT_BYTES: usize = 4 * MAX_LOGIN_CHARS;

/// Why a login name has no canonical form. Safe to show to whoever typed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// Nothing was given.
    #[error("the login name is empty")]
    Empty,
    /// More than [`MAX_LOGIN_CHARS`] characters once canonical (or an oversized input).
    #[error("the login name is longer than {MAX_LOGIN_CHARS} characters")]
    TooLong,
    /// A control character, or an invisible one (zero-width, bidirectional control, variation selector...) that
    /// would let two names look the same.
    #[error("the login name contains a control or invisible character")]
    Invisible,
    /// Spaces at the start or the end: almost always a typing or pasting accident.
    #[error("the login name starts or ends with a space")]
    OuterSpace,
}

/// The canonical form of a login name: Unicode NFKC and lower case, as PRECIS's `UsernameCaseMapped` profile
/// (RFC 8265) maps names (NFKC also folds full-width and other compatibility forms, which that profile's width
/// mapping only partly does). Two names are the same account exactly when their canonical forms are equal;
/// canonicalising a canonical name returns it unchanged.
///
/// Refused: empty names, names over [`MAX_LOGIN_CHARS`] characters, control and invisible characters, and
/// spaces at either end. Spaces inside are kept (directory names can have them).
///
/// ```
/// use vestibule_core::{canonical_login, LoginError};
///
/// assert_eq!(canonical_login("Alice").unwrap(), "alice");
/// assert_eq!(canonical_login("ＡＬＩＣＥ").unwrap(), "alice");
/// assert_eq!(canonical_login("al\u{200B}ice"), Err(LoginError::Invisible));
/// assert_eq!(canonical_login(""), Err(LoginError::Empty));
/// ```
pub fn canonical_login(name: &str) -> Result<String, LoginError> {
    if name.len() > MAX_LOGIN_INPUT_BYTES {
        return Err(LoginError::TooLong);
    }
    let mut canonical: String = name.nfkc().collect();
    // Lower-casing can undo NFKC (U+0130 becomes `i` + a combining dot) and NFKC can yield capitals (U+210C becomes
    // `H`), so both are repeated until nothing changes (the tests check the result is stable for every scalar
    // value); the bound only keeps a pathological string from looping.
    for _ in 0..4 {
        let next: String = canonical.to_lowercase().nfkc().collect();
        if next == canonical {
            break;
        }
        canonical = next;
    }
    if canonical.is_empty() {
        return Err(LoginError::Empty);
    }
    if canonical.chars().count() > MAX_LOGIN_CHARS {
        return Err(LoginError::TooLong);
    }
    if canonical.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(LoginError::Invisible);
    }
    if canonical.starts_with(char::is_whitespace) || canonical.ends_with(char::is_whitespace) {
        return Err(LoginError::OuterSpace);
    }
    Ok(canonical)
}

/// Unicode's default-ignorable code points (zero-width characters, joiners, bidirectional controls, fillers,
/// variation selectors, tags): drawn as nothing, so `al\u{200B}ice` would look like `alice`. PRECIS disallows them
/// in identifiers too.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_width_variants_are_one_name() {
        for name in ["alice", "Alice", "ALICE", "ａｌｉｃｅ", "ＡＬＩＣＥ", "aLiCe"] {
            assert_eq!(canonical_login(name), Ok("alice".to_owned()), "{name:?}");
        }
        // Compatibility forms fold too: a ligature, a superscript, a circled letter.
        assert_eq!(canonical_login("ﬁona²"), Ok("fiona2".to_owned()));
        assert_eq!(canonical_login("Ⓑob"), Ok("bob".to_owned()));
        // Composed and decomposed accents are one name.
        assert_eq!(canonical_login("Jose\u{301}"), canonical_login("José"));
        // Other scripts keep their letters.
        assert_eq!(canonical_login("ΣΩΚΡΑΤΗΣ"), Ok("σωκρατης".to_owned()));
        assert_eq!(canonical_login("山田"), Ok("山田".to_owned()));
        // Spaces inside are kept; an ideographic space is a space.
        assert_eq!(canonical_login("Ann\u{3000}Lee"), Ok("ann lee".to_owned()));
    }

    #[test]
    fn different_names_stay_different() {
        assert_ne!(canonical_login("alice"), canonical_login("alice2"));
        assert_ne!(canonical_login("strasse"), canonical_login("straße"));
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(canonical_login(""), Err(LoginError::Empty));
        assert_eq!(canonical_login("a\0b"), Err(LoginError::Invisible));
        assert_eq!(canonical_login("a\nb"), Err(LoginError::Invisible));
        assert_eq!(canonical_login("a\u{7F}b"), Err(LoginError::Invisible));
        assert_eq!(canonical_login("al\u{200B}ice"), Err(LoginError::Invisible));
        assert_eq!(canonical_login("\u{202E}ecila"), Err(LoginError::Invisible));
        assert_eq!(canonical_login("alice\u{FE0F}"), Err(LoginError::Invisible));
        assert_eq!(canonical_login(" alice"), Err(LoginError::OuterSpace));
        assert_eq!(canonical_login("alice\u{00A0}"), Err(LoginError::OuterSpace));
        assert_eq!(
            canonical_login(&"a".repeat(MAX_LOGIN_CHARS)).map(|s| s.len()),
            Ok(MAX_LOGIN_CHARS)
        );
        assert_eq!(
            canonical_login(&"a".repeat(MAX_LOGIN_CHARS + 1)),
            Err(LoginError::TooLong)
        );
        assert_eq!(canonical_login(&"a".repeat(100_000)), Err(LoginError::TooLong));
        // U+FDFA expands to 18 characters under NFKC: the limit is on the canonical form.
        assert_eq!(canonical_login(&"\u{FDFA}".repeat(20)), Err(LoginError::TooLong));
    }

    /// Every stored name is canonical, and lookups canonicalise again: the function must be idempotent, for every
    /// scalar value and for strings mixing the troublesome ones.
    #[test]
    fn canonical_names_are_fixed_points() {
        let check = |s: &str| {
            if let Ok(once) = canonical_login(s) {
                assert_eq!(canonical_login(&once).as_ref(), Ok(&once), "{s:?}");
            }
        };
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            check(&format!("a{c}"));
        }
        for s in [
            "\u{130}",
            "\u{210C}x",
            "İSTANBUL",
            "ǅ",
            "ﬀ\u{301}",
            "\u{1E9E}",
            "Å\u{212B}",
            "ΣΑΣ",
        ] {
            check(s);
        }
    }
}
