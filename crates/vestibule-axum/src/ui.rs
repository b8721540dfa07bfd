//! The operator's look of the built-in pages: the product name and logo in `base.html`, and template overrides
//! (`[ui] templates`) rendered with minijinja from the same values as the built-in askama templates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::i18n::{Catalogues, Tr, BUILTIN_TEMPLATES};

/// How the built-in pages look: [`crate::HttpSettings::ui`].
#[derive(Debug, Clone)]
pub struct UiSettings {
    /// Shown in every page's title and header (default `Vestibule`).
    pub product_name: String,
    /// Shown in every page's header, served at `{mount}/static/logo`.
    pub logo: Option<Logo>,
    /// Files that replace built-in templates of the same name.
    pub templates: Option<TemplateOverrides>,
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings {
            product_name: "Vestibule".to_owned(),
            logo: None,
            templates: None,
        }
    }
}

/// Why a logo or a template folder was refused; the message names the file (and the line, for a template).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UiError(String);

/// The largest logo accepted: it is sent with every page load that has no cached copy.
pub const MAX_LOGO_BYTES: usize = 512 * 1024;

/// A logo image, read once at start.
#[derive(Clone)]
pub struct Logo {
    pub(crate) bytes: Arc<[u8]>,
    pub(crate) content_type: &'static str,
}

impl std::fmt::Debug for Logo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logo")
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Logo {
    /// Reads a `.svg` or `.png` file of at most [`MAX_LOGO_BYTES`]; the content type comes from the extension.
    pub fn load(path: &Path) -> Result<Logo, UiError> {
        let shown = path.display();
        let content_type = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase) {
            Some(e) if e == "svg" => "image/svg+xml",
            Some(e) if e == "png" => "image/png",
            _ => return Err(UiError(format!("{shown}: a logo must be a .svg or .png file"))),
        };
        let bytes = std::fs::read(path).map_err(|e| UiError(format!("{shown}: cannot read the logo: {e}")))?;
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(UiError(format!(
                "{shown}: the logo is {} bytes; at most {MAX_LOGO_BYTES} are accepted",
                bytes.len()
            )));
        }
        if bytes.is_empty() {
            return Err(UiError(format!("{shown}: the logo file is empty")));
        }
        Ok(Logo {
            bytes: bytes.into(),
            content_type,
        })
    }
}

/// The operator's templates, compiled once at start together with the built-in ones they fall back to.
#[derive(Clone)]
pub struct TemplateOverrides {
    pub(crate) env: Arc<minijinja::Environment<'static>>,
    folder: PathBuf,
    names: Vec<String>,
}

impl std::fmt::Debug for TemplateOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateOverrides")
            .field("folder", &self.folder)
            .field("names", &self.names)
            .finish()
    }
}

impl TemplateOverrides {
    /// Reads every file in `folder`: each must have the name of a built-in page template, and all of them must
    /// compile (the error names the file and the line).
    pub fn load(folder: &Path) -> Result<TemplateOverrides, UiError> {
        let shown = folder.display();
        let entries =
            std::fs::read_dir(folder).map_err(|e| UiError(format!("{shown}: cannot read the folder: {e}")))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| UiError(format!("{shown}: {e}")))?;
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if !BUILTIN_TEMPLATES.iter().any(|(builtin, _)| *builtin == name) {
                let known: Vec<&str> = BUILTIN_TEMPLATES.iter().map(|(n, _)| *n).collect();
                return Err(UiError(format!(
                    "{}: not the name of a built-in template (one of: {})",
                    path.display(),
                    known.join(", ")
                )));
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| UiError(format!("{}: cannot read the template: {e}", path.display())))?;
            files.push((name, text));
        }
        files.sort();
        Self::from_sources(folder, files)
    }

    /// The overrides given as `(name, text)`; `folder` is only for messages.
    pub(crate) fn from_sources(folder: &Path, files: Vec<(String, String)>) -> Result<TemplateOverrides, UiError> {
        let mut env = environment();
        let names = files.iter().map(|(n, _)| n.clone()).collect();
        for (name, text) in files {
            env.add_template_owned(name.clone(), text).map_err(|e| {
                let line = e.line().map(|l| format!(":{l}")).unwrap_or_default();
                UiError(format!("{}{line}: {}", folder.join(&name).display(), detail(&e)))
            })?;
        }
        for (name, text) in BUILTIN_TEMPLATES {
            if env.get_template(name).is_err() {
                env.add_template(name, text)
                    .map_err(|e| UiError(format!("built-in {name}: {e}")))?;
            }
        }
        Ok(TemplateOverrides {
            env: Arc::new(env),
            folder: folder.to_owned(),
            names,
        })
    }

    /// The names of the built-in templates this set replaces.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// The error's own words, without minijinja's appended location (the caller puts the file and line first).
fn detail(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// A minijinja environment that renders the built-in templates as askama does. Its defaults already match:
/// HTML escaping for `.html` names, whitespace kept but for a template's final newline.
pub(crate) fn environment() -> minijinja::Environment<'static> {
    minijinja::Environment::new()
}

/// What `base.html` shows on every page besides the page itself: `ui` in a template.
#[derive(Serialize, Default, Debug)]
pub(crate) struct Chrome {
    pub(crate) product_name: String,
    pub(crate) has_logo: bool,
    /// The page's language code, for `<html lang>`.
    pub(crate) lang: String,
    /// Links to this page in every language (`?lang=de`).
    pub(crate) languages: Vec<LanguageLink>,
}

/// One language in the footer.
#[derive(Serialize, Debug)]
pub(crate) struct LanguageLink {
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) href: String,
    pub(crate) current: bool,
}

/// What the page rendering needs to know about the request: its language and where the language links go.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageRequest {
    pub(crate) lang: Tr,
    /// What a language link starts with, before `lang=CODE`: `?` (plus a safe `next`) for a page loaded with GET,
    /// the login page for a page that answered a form (a GET there could be refused).
    pub(crate) link_prefix: String,
    /// A `?lang=` the request asked for: the answer sets the cookie.
    pub(crate) chosen: Option<Tr>,
    /// A request of the JSON API for single-page apps (`/api/...` under the mount): its errors are JSON.
    pub(crate) api: bool,
}

/// Where the JSON API for single-page apps lives under the mount (`crate::spa`): the broker's routes see their path
/// without the mount, as the nest strips it.
pub(crate) const API_PREFIX: &str = "/api/";

tokio::task_local! {
    static PAGE_REQUEST: Arc<PageRequest>;
}

impl PageRequest {
    /// The request's language and link prefix, from its method, query, cookie and `Accept-Language`.
    pub(crate) fn of(req: &http::Request<axum::body::Body>, mount: &str) -> PageRequest {
        let mut page = Self::of_head(req.method(), req.uri(), req.headers(), mount);
        page.api = req.uri().path().starts_with(API_PREFIX);
        page
    }

    /// [`PageRequest::of`] from a request's head: what an extractor has (the refusal pages of the app's routes).
    pub(crate) fn of_head(
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        mount: &str,
    ) -> PageRequest {
        let catalogues = Catalogues::builtin();
        let query = uri.query().unwrap_or("");
        let chosen = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == "lang")
            .find_map(|(_, v)| catalogues.find(&v))
            .map(|lang| Tr { lang });
        let from_cookie = || {
            crate::cookies::get(headers, crate::i18n::LANG_COOKIE)
                .and_then(|code| catalogues.find(code))
                .map(|lang| Tr { lang })
        };
        let negotiated = || {
            let accept = headers
                .get(http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            Tr {
                lang: catalogues.negotiate(accept),
            }
        };
        let lang = chosen.or_else(from_cookie).unwrap_or_else(negotiated);
        // A language link keeps only a safe `next` from the query: anything else a URL carries (an unsafe `next`,
        // made-up parameters) is not echoed into the page.
        let link_prefix = if matches!(*method, http::Method::GET | http::Method::HEAD) {
            let next = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "next")
                .and_then(|(_, v)| crate::safe_next(&v));
            match next {
                Some(next) => {
                    let mut q = url::form_urlencoded::Serializer::new(String::new());
                    q.append_pair("next", &next);
                    format!("?{}&", q.finish())
                }
                None => "?".to_owned(),
            }
        } else {
            format!("{mount}/login?")
        };
        PageRequest {
            lang,
            link_prefix,
            chosen,
            api: false,
        }
    }

    /// Runs `fut` with this request's page settings available to [`PageRequest::current`].
    pub(crate) fn scope<F: std::future::Future>(
        self: Arc<Self>,
        fut: F,
    ) -> tokio::task::futures::TaskLocalFuture<Arc<PageRequest>, F> {
        PAGE_REQUEST.scope(self, fut)
    }

    /// The request being answered, or the defaults (English) outside the broker's routes.
    pub(crate) fn current() -> Arc<PageRequest> {
        PAGE_REQUEST.try_with(Arc::clone).unwrap_or_default()
    }
}

/// The chrome of a page for the request.
pub(crate) fn chrome(settings: &UiSettings, req: &PageRequest) -> Chrome {
    Chrome {
        product_name: settings.product_name.clone(),
        has_logo: settings.logo.is_some(),
        lang: req.lang.code().to_owned(),
        languages: Catalogues::builtin()
            .languages
            .iter()
            .enumerate()
            .map(|(i, l)| LanguageLink {
                code: l.code.clone(),
                name: l.name.clone(),
                href: format!("{}lang={}", req.link_prefix, l.code),
                current: i == req.lang.lang,
            })
            .collect(),
    }
}
