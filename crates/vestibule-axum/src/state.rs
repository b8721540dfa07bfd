use std::sync::Arc;
use std::time::Duration;

use vestibule::Broker;

use crate::cookies::CookieNames;

/// How the broker's routes behave over HTTP.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Where the router is nested. Leave it empty: the path of the broker's base URL says it once (`/auth` for
    /// `https://app.example.com/auth`), and [`Vestibule::nest_into`] nests the router there. When set, it must
    /// be that same path.
    pub mount: String,
    /// `Secure` cookies with the `__Host-` prefix. Must be true whenever the public URL is https; false only for
    /// loopback development (the server refuses it elsewhere).
    pub secure_cookies: bool,
    /// Where a sign-in lands when `next` is absent or unsafe (default: the account page under `mount`).
    pub landing: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (default: none). From any other peer the header is
    /// ignored, so a client cannot choose the address that sessions, logs and protection see.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The longest the broker's routes work on one request, session check included (default 30 s). Past it the
    /// request is dropped and answered `503 Service Unavailable` with `Retry-After`, so a stuck database or
    /// directory cannot pile up hung connections. It covers [`crate::router`] only: the app's own routes take
    /// their own limits.
    pub request_timeout: Duration,
    /// The product name, logo and template overrides of the built-in pages (default: `Vestibule`, no logo, the
    /// built-in templates).
    pub ui: crate::UiSettings,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            mount: String::new(),
            secure_cookies: true,
            landing: None,
            trusted_proxies: Vec::new(),
            request_timeout: Duration::from_secs(30),
            ui: crate::UiSettings::default(),
        }
    }
}

/// The broker plus its HTTP settings: the state of the router and of the layer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Vestibule {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) broker: Arc<Broker>,
    pub(crate) mount: String,
    pub(crate) landing: String,
    pub(crate) cookies: CookieNames,
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    pub(crate) request_timeout: Duration,
    pub(crate) ui: crate::UiSettings,
}

impl Vestibule {
    /// Wraps a broker. The routes are served under the path of the broker's base URL.
    ///
    /// When `settings.mount` is set and is not that path, the given mount is kept (as in earlier versions, where
    /// it was given separately) and the disagreement is logged as an error at start-up: redirect callbacks built
    /// from the base URL would miss the router. [`Vestibule::try_new`] refuses it instead.
    pub fn new(broker: Arc<Broker>, settings: HttpSettings) -> Self {
        if let Some(message) = mount_mismatch(&broker, &settings) {
            tracing::error!("{message}");
        }
        Self::build(broker, settings)
    }

    /// [`Vestibule::new`], refusing a `settings.mount` that is not the path of the broker's base URL.
    pub fn try_new(broker: Arc<Broker>, settings: HttpSettings) -> Result<Self, String> {
        match mount_mismatch(&broker, &settings) {
            Some(message) => Err(message),
            None => Ok(Self::build(broker, settings)),
        }
    }

    fn build(broker: Arc<Broker>, settings: HttpSettings) -> Self {
        let given = settings.mount.trim_end_matches('/');
        let mount = if given.is_empty() {
            broker.mount_path().trim_end_matches('/').to_owned()
        } else {
            given.to_owned()
        };
        let landing = settings.landing.clone().unwrap_or_else(|| format!("{mount}/account"));
        Vestibule {
            inner: Arc::new(Inner {
                broker,
                cookies: CookieNames::new(settings.secure_cookies),
                mount,
                landing,
                trusted_proxies: settings.trusted_proxies,
                request_timeout: settings.request_timeout,
                ui: settings.ui,
            }),
        }
    }

    /// Where the broker's routes are mounted (`""` at the root).
    pub fn mount(&self) -> &str {
        &self.inner.mount
    }

    /// The broker.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.inner.broker
    }

    /// The login page's path, with the mount prefix.
    pub fn login_path(&self) -> String {
        format!("{}/login", self.inner.mount)
    }
}

/// Why `settings.mount` cannot be the broker's mount: it is set, and it is not the path of the broker's base URL.
fn mount_mismatch(broker: &Broker, settings: &HttpSettings) -> Option<String> {
    let from_base = broker.mount_path().trim_end_matches('/');
    let given = settings.mount.trim_end_matches('/');
    (!given.is_empty() && given != from_base).then(|| {
        format!(
            "HttpSettings.mount is `{given}` but the broker's base URL `{}` puts its routes under `{from_base}`; \
             leave mount empty (the base URL says it once) or make them agree",
            broker.base_url()
        )
    })
}
