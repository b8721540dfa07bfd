use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer};
use vestibule_core::{ExposeSecret, SecretString};

/// What stands in for a password when a URL is shown.
const MASK: &str = "***";

/// A database URL, which can carry a password (`postgres://user:password@host/db`, or `?password=`). `Debug` and
/// `Display` show it with the password masked (`postgres://user:***@host/db`), so operators can still read which
/// database is meant in logs and errors; [`ExposeSecret::expose_secret`] gives the URL itself, to connect.
///
/// ```
/// use vestibule_core::ExposeSecret;
/// use vestibule_store::DatabaseUrl;
///
/// let url = DatabaseUrl::from("postgres://vestibule:hunter2@db.internal/vestibule");
/// assert_eq!(url.to_string(), "postgres://vestibule:***@db.internal/vestibule");
/// assert_eq!(url.expose_secret(), "postgres://vestibule:hunter2@db.internal/vestibule");
/// ```
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    /// The URL with its password masked: what `Display` writes.
    pub fn redacted(&self) -> Cow<'_, str> {
        redact_password(self.0.expose_secret())
    }
}

impl ExposeSecret<str> for DatabaseUrl {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        DatabaseUrl(url.into())
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> Self {
        DatabaseUrl(url.into())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(DatabaseUrl::from)
    }
}

/// `url` with the password of its user info and the value of any `password` query parameter replaced by `***`.
///
/// Errs on the side of hiding: a password holding a character that ends the authority (`/`, `?`, `#`) unescaped
/// is not a valid URL, and where the split is unclear (an `@` after the authority) everything after the scheme is
/// masked rather than guessed at.
fn redact_password(url: &str) -> Cow<'_, str> {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        // `sqlite:file.db` and the like have no authority; one with an `@` is not something to guess at.
        None if url.contains('@') => {
            let scheme_end = url.find(':').map_or(0, |i| i + 1);
            return Cow::Owned(format!("{}{MASK}", &url[..scheme_end]));
        }
        None => return Cow::Borrowed(url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if tail.contains('@') {
        return Cow::Owned(format!("{scheme}{MASK}"));
    }
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..=colon]);
                    out.push_str(MASK);
                }
                None => out.push_str(userinfo),
            }
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    match tail.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let (query, fragment) = match query.find('#') {
                Some(i) => query.split_at(i),
                None => (query, ""),
            };
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        out.push_str(key);
                        out.push('=');
                        out.push_str(MASK);
                    }
                    _ => out.push_str(pair),
                }
            }
            out.push_str(fragment);
        }
        None => out.push_str(tail),
    }
    if out == url {
        Cow::Borrowed(url)
    } else {
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_password_is_masked() {
        for (url, shown) in [
            ("sqlite://vestibule.db", "sqlite://vestibule.db"),
            ("sqlite://vestibule.db?mode=rwc", "sqlite://vestibule.db?mode=rwc"),
            ("sqlite:vestibule.db", "sqlite:vestibule.db"),
            (
                "postgres://vestibule@db.internal/vestibule",
                "postgres://vestibule@db.internal/vestibule",
            ),
            (
                "postgres://db.internal:5432/vestibule",
                "postgres://db.internal:5432/vestibule",
            ),
            (
                "postgres://vestibule:hunter2@db.internal:5432/vestibule",
                "postgres://vestibule:***@db.internal:5432/vestibule",
            ),
            (
                "postgresql://u:p%40ss@h/d?sslmode=require",
                "postgresql://u:***@h/d?sslmode=require",
            ),
            // Unescaped `@` in the password: the last `@` ends the user info, as URL parsers read it.
            ("postgres://u:p@ss@h/d", "postgres://u:***@h/d"),
            ("postgres://u:@h/d", "postgres://u:***@h/d"),
            (
                "postgres://h/d?user=u&password=hunter2&sslmode=require",
                "postgres://h/d?user=u&password=***&sslmode=require",
            ),
            ("postgres://h/d?PASSWORD=hunter2", "postgres://h/d?PASSWORD=***"),
            // Not valid URLs: nothing after the scheme is shown rather than a guess.
            ("postgres://u:pa/ss@h/d", "postgres://***"),
            ("postgres://u:pa?ss@h/d", "postgres://***"),
            ("postgres:u:hunter2@h", "postgres:***"),
        ] {
            assert_eq!(redact_password(url), shown, "{url}");
        }
    }

    #[test]
    fn debug_and_display_hide_the_password() {
        let url = DatabaseUrl::from("postgres://vestibule:hunter2@db.internal/vestibule");
        for shown in [format!("{url:?}"), url.to_string()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("vestibule:***@db.internal/vestibule"), "{shown}");
        }
        assert_eq!(
            url.expose_secret(),
            "postgres://vestibule:hunter2@db.internal/vestibule"
        );
    }
}
