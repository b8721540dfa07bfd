//! The broker's cookies. With https they carry the `__Host-` prefix (which the browser only accepts with `Secure`,
//! `Path=/` and no `Domain`, so a sibling subdomain cannot plant or shadow them); all are `HttpOnly` and
//! `SameSite=Lax` (Lax, not Strict, so the session survives the top-level return from an identity provider).
//!
//! One is different: the reset cookie, which holds a password reset token between the mailed link and the form
//! (so that the token leaves the address bar at once). A token that sets the account's password must reach that
//! one page and nothing else on the host — not the app's own routes, not another backend behind the same proxy —
//! so it is scoped to the form's path, which `__Host-` forbids (it requires `Path=/`). It carries `__Secure-`
//! instead (the browser takes it only over https, so no one on the network can plant it), and `SameSite=Strict`.

use http::header::COOKIE;
use http::HeaderMap;

#[derive(Debug, Clone)]
pub(crate) struct CookieNames {
    pub(crate) session: &'static str,
    pub(crate) csrf: &'static str,
    pub(crate) flow: &'static str,
    pub(crate) link: &'static str,
    pub(crate) remember: &'static str,
    /// The half-signed-in state between a primary proof and the second step.
    pub(crate) second_factor: &'static str,
    /// The password source last chosen on the login form, preselected next time: a source id, nothing secret.
    pub(crate) source: &'static str,
    /// A password reset token on its way from the mailed link to the form (see the module doc).
    pub(crate) reset: &'static str,
    secure: bool,
}

impl CookieNames {
    pub(crate) fn new(secure: bool) -> Self {
        if secure {
            CookieNames {
                session: "__Host-vestibule-session",
                csrf: "__Host-vestibule-csrf",
                flow: "__Host-vestibule-flow",
                link: "__Host-vestibule-link",
                remember: "__Host-vestibule-remember",
                second_factor: "__Host-vestibule-2fa",
                source: "__Host-vestibule-source",
                reset: "__Secure-vestibule-reset",
                secure,
            }
        } else {
            CookieNames {
                session: "vestibule-session",
                csrf: "vestibule-csrf",
                flow: "vestibule-flow",
                link: "vestibule-link",
                remember: "vestibule-remember",
                second_factor: "vestibule-2fa",
                source: "vestibule-source",
                reset: "vestibule-reset",
                secure,
            }
        }
    }

    /// Whether cookies are `Secure` (the deployment is https).
    pub(crate) fn secure(&self) -> bool {
        self.secure
    }

    /// A `Set-Cookie` value. `max_age` of `None` makes a browser-session cookie.
    pub(crate) fn set(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        if self.secure {
            c.push_str("; Secure");
        }
        c
    }

    /// A `Set-Cookie` value that deletes the cookie.
    pub(crate) fn clear(&self, name: &str) -> String {
        self.set(name, "", Some(0))
    }

    /// A `Set-Cookie` value for a cookie only the page at `path` receives, and only from a page of this site
    /// (`SameSite=Strict`): for a secret that page alone needs. `max_age` in seconds; 0 deletes it.
    pub(crate) fn set_for_page(&self, name: &str, value: &str, path: &str, max_age: i64) -> String {
        let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}");
        if self.secure {
            c.push_str("; Secure");
        }
        c
    }
}

/// The first value of cookie `name` in the request. Values are opaque tokens of ours, so no unquoting is needed.
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// [`get`] of two names in one pass over the `Cookie` headers: what the session layer reads on every request
/// (the session cookie and, where a restore is allowed, the remember-me cookie).
pub(crate) fn get_both<'a>(headers: &'a HeaderMap, first: &str, second: &str) -> (Option<&'a str>, Option<&'a str>) {
    let (mut a, mut b) = (None, None);
    let pairs = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'));
    for pair in pairs {
        let Some((k, v)) = pair.trim().split_once('=') else {
            continue;
        };
        if a.is_none() && k == first {
            a = Some(v);
        } else if b.is_none() && k == second {
            b = Some(v);
        }
        if a.is_some() && b.is_some() {
            break;
        }
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn secure_cookies_use_the_host_prefix() {
        let c = CookieNames::new(true);
        let s = c.set(c.session, "v", None);
        assert_eq!(s, "__Host-vestibule-session=v; Path=/; HttpOnly; SameSite=Lax; Secure");
        assert!(c.clear(c.flow).contains("Max-Age=0"));
        let dev = CookieNames::new(false);
        assert!(!dev.set(dev.session, "v", None).contains("Secure"));
    }

    #[test]
    fn the_reset_cookie_reaches_its_page_only() {
        let c = CookieNames::new(true);
        assert_eq!(
            c.set_for_page(c.reset, "t", "/auth/reset-password", 600),
            "__Secure-vestibule-reset=t; Path=/auth/reset-password; HttpOnly; SameSite=Strict; Max-Age=600; Secure"
        );
        let dev = CookieNames::new(false);
        assert_eq!(
            dev.set_for_page(dev.reset, "", "/reset-password", 0),
            "vestibule-reset=; Path=/reset-password; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }

    #[test]
    fn cookie_lookup_is_exact() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; vestibule-session-x=2; vestibule-session=3"),
        );
        assert_eq!(get(&h, "vestibule-session"), Some("3"));
        assert_eq!(get(&h, "a"), Some("1"));
        assert_eq!(get(&h, "b"), None);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Names that share prefixes and suffixes with ours, as a sibling app or an attacker's subdomain could set.
        const NAMES: &[&str] = &[
            "vestibule-session",
            "vestibule-session-x",
            "vestibule-sessionx",
            "x-vestibule-session",
            "vestibule-sessio",
            "__Host-vestibule-session",
            "Vestibule-Session",
            "vestibule-remember",
            "a",
        ];

        fn pairs() -> impl Strategy<Value = Vec<(&'static str, String)>> {
            prop::collection::vec((prop::sample::select(NAMES), "[A-Za-z0-9_.=-]{0,12}"), 0..8)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            /// The value of exactly the named cookie, the first one sent, across several `Cookie` headers and with
            /// or without the space after `;`; never a cookie whose name merely starts or ends like it.
            #[test]
            fn finds_exactly_the_named_cookie(
                headers in prop::collection::vec((pairs(), any::<bool>()), 0..3),
                wanted in prop::sample::select(NAMES),
            ) {
                let mut map = HeaderMap::new();
                let mut expected = None;
                for (pairs, spaced) in &headers {
                    let sep = if *spaced { "; " } else { ";" };
                    let line = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(sep);
                    if let Ok(v) = http::HeaderValue::from_str(&line) {
                        map.append(COOKIE, v);
                        if expected.is_none() {
                            expected = pairs.iter().find(|(n, _)| *n == wanted).map(|(_, v)| v.clone());
                        }
                    }
                }
                prop_assert_eq!(get(&map, wanted).map(str::to_owned), expected);
            }

            /// `get_both` finds what two calls of `get` find.
            #[test]
            fn get_both_is_get_twice(
                headers in prop::collection::vec((pairs(), any::<bool>()), 0..3),
                first in prop::sample::select(NAMES),
                second in prop::sample::select(NAMES),
            ) {
                let mut map = HeaderMap::new();
                for (pairs, spaced) in &headers {
                    let sep = if *spaced { "; " } else { ";" };
                    let line = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(sep);
                    if let Ok(v) = http::HeaderValue::from_str(&line) {
                        map.append(COOKIE, v);
                    }
                }
                let (a, b) = get_both(&map, first, second);
                prop_assert_eq!(a, get(&map, first));
                if first != second {
                    prop_assert_eq!(b, get(&map, second));
                }
            }

            /// Any bytes a client can put in `Cookie` headers, any name asked for: no panic, and a hit is a pair
            /// of exactly that name.
            #[test]
            fn never_panics_on_arbitrary_headers(
                raw in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..3),
                name in "[ -~]{0,20}",
            ) {
                let mut map = HeaderMap::new();
                for bytes in raw {
                    if let Ok(v) = http::HeaderValue::from_bytes(&bytes) {
                        map.append(COOKIE, v);
                    }
                }
                if let Some(value) = get(&map, &name) {
                    let needle = format!("{name}={value}");
                    let found = map
                        .get_all(COOKIE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .flat_map(|v| v.split(';'))
                        .any(|pair| pair.trim() == needle);
                    prop_assert!(found, "{:?} not a pair in {:?}", needle, map);
                }
            }
        }
    }
}
