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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tr {
    pub(crate) lang: usize,
}

impl Tr {
    /// The message `key`.
    pub fn msg(&self, key: &str) -> String {
        Catalogues::builtin().message(self.lang, key, None)
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
