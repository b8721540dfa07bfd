//! The words of the built-in pages, one fluent catalogue per language (`templates/i18n/<code>.ftl`, embedded at
//! build time; a new file is a new language), and the choice of language for a request: the `vestibule-lang`
//! cookie (set by a `?lang=` link in the page footer), else the best match for `Accept-Language`, else English.

use std::sync::{Arc, OnceLock};

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}
pub(crate) use embedded::{BUILTIN_TEMPLATES, CATALOGUES};

/// The cookie a `?lang=` link sets; it names a language code, nothing secret.
pub(crate) const LANG_COOKIE: &str = "vestibule-lang";

/// The language every other falls back to, for a key it lacks and for a request that matches none.
const FALLBACK: &str = "en";

/// One language: its code (the file name), its own name for itself (`language-name` in its catalogue), its words.
pub(crate) struct Language {
    pub(crate) code: String,
    pub(crate) name: String,
    id: LanguageIdentifier,
    bundle: FluentBundle<FluentResource>,
}

/// Every language the pages are offered in; the fallback first.
pub(crate) struct Catalogues {
    pub(crate) languages: Vec<Language>,
}

impl std::fmt::Debug for Catalogues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.languages.iter().map(|l| &l.code)).finish()
    }
}

/// What is wrong with a catalogue: its file and the problems fluent found (with their byte positions).
#[derive(Debug, thiserror::Error)]
#[error("templates/i18n/{file}.ftl: {problem}")]
pub(crate) struct CatalogueError {
    pub(crate) file: String,
    pub(crate) problem: String,
}

impl Catalogues {
    /// Parses catalogues given as `(code, text)`; any syntax error, unknown language code or message defined twice
    /// is an error naming the file.
    pub(crate) fn parse(sources: &[(&str, &str)]) -> Result<Catalogues, CatalogueError> {
        let mut languages = Vec::new();
        for (code, text) in sources {
            let fail = |problem: String| CatalogueError {
                file: (*code).to_owned(),
                problem,
            };
            let id: LanguageIdentifier = code.parse().map_err(|e| fail(format!("not a language code: {e}")))?;
            let resource =
                FluentResource::try_new((*text).to_owned()).map_err(|(_, errors)| fail(format!("{errors:?}")))?;
            let mut bundle = FluentBundle::new_concurrent(vec![id.clone()]);
            // No Unicode isolation marks around placeables: the pages are in one script direction per language,
            // and the marks would show as boxes in some fonts and break copying of names and addresses.
            bundle.set_use_isolating(false);
            bundle
                .add_resource(resource)
                .map_err(|errors| fail(format!("{errors:?}")))?;
            let mut language = Language {
                code: (*code).to_owned(),
                name: String::new(),
                id,
                bundle,
            };
            language.name = language
                .format("language-name", None)
                .ok_or_else(|| fail("no `language-name` message".to_owned()))?;
            languages.push(language);
        }
        languages.sort_by_key(|l| (l.code != FALLBACK, l.code.clone()));
        if languages.first().is_none_or(|l| l.code != FALLBACK) {
            return Err(CatalogueError {
                file: FALLBACK.to_owned(),
                problem: "missing: it is the fallback language".to_owned(),
            });
        }
        Ok(Catalogues { languages })
    }

    /// The built-in catalogues. A broken one is a bug the tests catch; were one to ship anyway, the pages fall
    /// back to showing message keys rather than failing to start.
    pub(crate) fn builtin() -> &'static Catalogues {
        static BUILTIN: OnceLock<Catalogues> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            Catalogues::parse(CATALOGUES).unwrap_or_else(|e| {
                tracing::error!(error = %e, "built-in language catalogue broken");
                Catalogues { languages: Vec::new() }
            })
        })
    }

    /// The language with this code, exactly.
    pub(crate) fn find(&self, code: &str) -> Option<usize> {
        self.languages.iter().position(|l| l.code == code)
    }

    /// The best language for an `Accept-Language` header, by RFC 4647 filtering (`de-CH` gets `de`); the fallback
    /// when nothing matches.
    pub(crate) fn negotiate(&self, accept_language: &str) -> usize {
        let requested = fluent_langneg::accepted_languages::parse(accept_language);
        let available: Vec<&LanguageIdentifier> = self.languages.iter().map(|l| &l.id).collect();
        let chosen = fluent_langneg::negotiate_languages(
            &requested,
            &available,
            None,
            fluent_langneg::NegotiationStrategy::Lookup,
        );
        chosen
            .first()
            .and_then(|id| self.languages.iter().position(|l| l.id == ***id))
            .unwrap_or(0)
    }

    /// `key` in language `lang`, else in the fallback, else the key itself (logged: a page shows a key rather than
    /// failing).
    pub(crate) fn message(&self, lang: usize, key: &str, args: Option<&FluentArgs<'_>>) -> String {
        let found = self
            .languages
            .get(lang)
            .and_then(|l| l.format(key, args))
            .or_else(|| self.languages.first().and_then(|l| l.format(key, args)));
        found.unwrap_or_else(|| {
            tracing::error!(key, "no such message in the language catalogues");
            key.to_owned()
        })
    }
}

impl Language {
    fn format(&self, key: &str, args: Option<&FluentArgs<'_>>) -> Option<String> {
        let pattern = self.bundle.get_message(key)?.value()?;
        let mut errors = Vec::new();
        let text = self.bundle.format_pattern(pattern, args, &mut errors);
        if !errors.is_empty() {
            tracing::error!(key, lang = %self.code, ?errors, "message formatting failed");
        }
        Some(text.into_owned())
    }
}

/// The ids of the messages a catalogue defines.
#[cfg(test)]
pub(crate) fn message_ids(source: &str) -> Vec<String> {
    use fluent_syntax::ast::Entry;
    match fluent_syntax::parser::parse(source) {
        Ok(resource) | Err((resource, _)) => resource
            .body
            .iter()
            .filter_map(|e| match e {
                Entry::Message(m) => Some(m.id.name.to_owned()),
                _ => None,
            })
            .collect(),
    }
}

/// `t` in a template: the words of the page's language. `{{ t.msg("key") }}`, and with arguments
/// `{{ t.msg1("key", "name", value) }}`, `{{ t.msg2("key", "a", x, "b", y) }}`; the result is text, escaped like
/// any other value.
///
/// A message the Rust code puts on a page (an error, a notice) is a key too, made with arguments (`key_with` in the crate) when it has
/// arguments (`error-throttled?minutes=5`), and shown with `{{ t.msg(error) }}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tr {
    pub(crate) lang: usize,
}

impl Tr {
    /// The message `key`, or the message and arguments of a key made with arguments (`error-throttled?minutes=5`).
    pub fn msg(&self, key: impl AsRef<str>) -> String {
        match key.as_ref().split_once('?') {
            None => Catalogues::builtin().message(self.lang, key.as_ref(), None),
            Some((key, query)) => {
                let args: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
                    .map(|(n, v)| (n.into_owned(), v.into_owned()))
                    .collect();
                let args: Vec<(&str, String)> = args.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
                self.with_args(key, &args)
            }
        }
    }

    /// The message `key` with one argument.
    pub fn msg1(&self, key: &str, name: &str, value: impl std::fmt::Display) -> String {
        self.with_args(key, &[(name, value.to_string())])
    }

    /// The message `key` with two arguments.
    pub fn msg2(
        &self,
        key: &str,
        name1: &str,
        value1: impl std::fmt::Display,
        name2: &str,
        value2: impl std::fmt::Display,
    ) -> String {
        self.with_args(key, &[(name1, value1.to_string()), (name2, value2.to_string())])
    }

    pub(crate) fn with_args(&self, key: &str, args: &[(&str, String)]) -> String {
        let mut fluent = FluentArgs::new();
        for (name, value) in args {
            // A whole number is passed as one, so a catalogue can choose a plural form for it.
            match value.parse::<i64>() {
                Ok(n) => fluent.set(name.to_string(), FluentValue::from(n)),
                Err(_) => fluent.set(name.to_string(), FluentValue::from(value.clone())),
            }
        }
        Catalogues::builtin().message(self.lang, key, Some(&fluent))
    }

    /// The code of the language (`<html lang>`).
    pub(crate) fn code(&self) -> &'static str {
        Catalogues::builtin()
            .languages
            .get(self.lang)
            .map_or(FALLBACK, |l| l.code.as_str())
    }
}

/// A message key with arguments, for a page field that [`Tr::msg`] shows: `key?name=value&...`.
pub(crate) fn key_with(key: &str, args: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(args);
    format!("{key}?{}", query.finish())
}

/// `t` for minijinja: the same three methods.
impl minijinja::value::Object for Tr {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        method: &str,
        args: &[minijinja::Value],
    ) -> Result<minijinja::Value, minijinja::Error> {
        let text = |i: usize| -> Result<String, minijinja::Error> {
            let v = args.get(i).ok_or_else(|| {
                minijinja::Error::new(
                    minijinja::ErrorKind::MissingArgument,
                    format!("t.{method} needs more arguments"),
                )
            })?;
            Ok(match v.as_str() {
                Some(s) => s.to_owned(),
                None => v.to_string(),
            })
        };
        let expected = match method {
            "msg" => 1,
            "msg1" => 3,
            "msg2" => 5,
            _ => {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::UnknownMethod,
                    format!("t has msg, msg1 and msg2, not {method}"),
                ))
            }
        };
        if args.len() != expected {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::TooManyArguments,
                format!("t.{method} takes {expected} arguments"),
            ));
        }
        let key = text(0)?;
        let mut pairs = Vec::new();
        for i in (1..expected).step_by(2) {
            pairs.push((text(i)?, text(i + 1)?));
        }
        let borrowed: Vec<(&str, String)> = pairs.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        Ok(minijinja::Value::from(if borrowed.is_empty() {
            self.msg(&key)
        } else {
            self.with_args(&key, &borrowed)
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn keys(source: &str) -> BTreeSet<String> {
        message_ids(source).into_iter().collect()
    }

    /// The keys `t.msg("…")`, `t.msg1("…", …)` and `t.msg2("…", …)` name in a template.
    fn template_keys(text: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for call in ["t.msg(\"", "t.msg1(\"", "t.msg2(\""] {
            for (i, _) in text.match_indices(call) {
                let rest = &text[i + call.len()..];
                if let Some(end) = rest.find('"') {
                    found.insert(rest[..end].to_owned());
                }
            }
        }
        found
    }

    /// The message keys in the crate's Rust code: string literals of the key families that handlers and errors put
    /// on pages (`"error-…"`, `"notice-…"`, …), shown there with `t.msg(field)`.
    fn rust_keys() -> BTreeSet<String> {
        const FAMILIES: [&str; 9] = [
            "error-", "notice-", "message-", "passkey-", "account-", "session-", "link-", "never", "continue",
        ];
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = BTreeSet::new();
        for entry in std::fs::read_dir(&src).expect("src/") {
            let path = entry.expect("an entry").path();
            // This test's own examples and the parity test's values are not page strings.
            if path.ends_with("i18n.rs") || path.ends_with("template_parity.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            for literal in text.split('"').skip(1).step_by(2) {
                let is_key = literal
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && FAMILIES.iter().any(|f| literal.starts_with(f));
                if is_key {
                    found.insert(literal.to_owned());
                }
            }
        }
        found
    }

    #[test]
    fn every_catalogue_parses_and_has_the_keys_of_english() {
        let catalogues = Catalogues::parse(CATALOGUES).expect("the catalogues parse");
        assert!(catalogues.languages.len() >= 2, "English and at least one more");
        let (_, english) = CATALOGUES.iter().find(|(c, _)| *c == FALLBACK).expect("en.ftl");
        let english = keys(english);
        for (code, text) in CATALOGUES {
            let these = keys(text);
            let missing: Vec<_> = english.difference(&these).collect();
            let extra: Vec<_> = these.difference(&english).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{code}.ftl: missing {missing:?}, not in en.ftl {extra:?}"
            );
        }
    }

    #[test]
    fn every_key_the_templates_and_the_code_use_is_in_every_catalogue() {
        let mut used = BTreeSet::new();
        for (name, text) in BUILTIN_TEMPLATES {
            let these = template_keys(text);
            assert!(
                !these.is_empty() || !text.contains("t.msg"),
                "{name}: keys not found by this test"
            );
            used.extend(these);
        }
        let from_rust = rust_keys();
        assert!(
            from_rust.contains("error-csrf") && from_rust.contains("notice-linked"),
            "{from_rust:?}"
        );
        used.extend(from_rust);
        for (code, text) in CATALOGUES {
            let defined = keys(text);
            let missing: Vec<_> = used.difference(&defined).collect();
            assert!(missing.is_empty(), "{code}.ftl lacks {missing:?}");
        }
    }

    /// A catalogue with a syntax error is refused, naming the file: a broken translation fails the tests rather
    /// than showing message keys on pages.
    #[test]
    fn a_syntax_error_in_a_catalogue_is_refused() {
        let broken = [
            ("en", "language-name = English\n"),
            ("de", "language-name = Deutsch\nbroken = { $x\n"),
        ];
        let e = Catalogues::parse(&broken).expect_err("refused");
        assert_eq!(e.file, "de");
        assert!(e.to_string().starts_with("templates/i18n/de.ftl"), "{e}");
        let twice = [("en", "language-name = English\nlanguage-name = Again\n")];
        assert!(Catalogues::parse(&twice).is_err(), "a key defined twice");
        let no_english = [("de", "language-name = Deutsch\n")];
        assert!(Catalogues::parse(&no_english).is_err(), "English is the fallback");
    }

    #[test]
    fn accept_language_is_negotiated_with_english_as_the_fallback() {
        let c = Catalogues::builtin();
        let de = c.find("de").expect("German");
        let en = c.find("en").expect("English");
        assert_eq!(c.negotiate("de-CH, de;q=0.9, en;q=0.5"), de);
        assert_eq!(c.negotiate("fr-FR, de;q=0.7"), de);
        assert_eq!(c.negotiate("en-GB,en;q=0.9,de;q=0.8"), en);
        assert_eq!(c.negotiate("ja"), en);
        assert_eq!(c.negotiate(""), en);
        assert_eq!(c.negotiate("garbage;;;==="), en);
    }

    #[test]
    fn arguments_plurals_and_keys_with_arguments() {
        let c = Catalogues::builtin();
        let de = Tr {
            lang: c.find("de").expect("German"),
        };
        let en = Tr::default();
        assert_eq!(en.msg("sign-in"), "Sign in");
        assert_eq!(de.msg("sign-in"), "Anmelden");
        assert_eq!(en.msg1("continue-with", "source", "GitHub"), "Continue with GitHub");
        assert_eq!(
            en.msg(key_with("error-throttled", &[("minutes", "1")])),
            "Too many attempts. Please try again in 1 minute."
        );
        assert_eq!(
            de.msg(key_with("error-throttled", &[("minutes", "5")])),
            "Zu viele Versuche. Bitte versuchen Sie es in 5 Minuten noch einmal."
        );
        // A value with `&`, `=` or `?` survives the key's encoding.
        assert_eq!(
            en.msg(key_with(
                "message-address-confirmed",
                &[("email", "a&b=c?d@example.org")]
            )),
            "Thank you: a&b=c?d@example.org is confirmed."
        );
        // No Unicode isolation marks around placeables.
        assert!(!de.msg1("link-add", "source", "X").contains('\u{2068}'));
        // An unknown key shows itself rather than failing the page.
        assert_eq!(en.msg("no-such-key"), "no-such-key");
    }
}
