//! askama pages. Templates live in the workspace's `templates/` folder; every value is HTML-escaped by askama.

use askama::Template;
use serde::Serialize;
use vestibule_core::Timestamp;

use crate::i18n::Tr;
use crate::ui::{Chrome, PageRequest};
use crate::Vestibule;

/// A built-in page: an askama template with its file name, whose values also serialise for an override.
pub(crate) trait Page: Template + Serialize {
    /// The template's file name in `templates/`, which an override replaces.
    const NAME: &'static str;
    /// Where the page keeps what every page shows, filled in by [`render`].
    fn chrome(&mut self) -> (&mut Chrome, &mut Tr);
    /// The page's language (`t`, which serialisation skips: minijinja gets it as an object).
    fn tr(&self) -> Tr;
}

macro_rules! impl_page {
    ($page:ident, $name:literal) => {
        impl Page for $page<'_> {
            const NAME: &'static str = $name;
            fn chrome(&mut self) -> (&mut Chrome, &mut Tr) {
                (&mut self.ui, &mut self.t)
            }
            fn tr(&self) -> Tr {
                self.t
            }
        }
    };
}

impl_page!(LoginPage, "login.html");
impl_page!(AccountPage, "account.html");
impl_page!(TokenPage, "token.html");
impl_page!(LinkPage, "link.html");
impl_page!(SecondFactorPage, "second_factor.html");
impl_page!(PasskeyPage, "passkey.html");
impl_page!(TotpEnrolPage, "totp_enrol.html");
impl_page!(RecoveryCodesPage, "recovery_codes.html");
impl_page!(LogoutPage, "logout.html");
impl_page!(ResetPage, "reset.html");
impl_page!(EmailChangeConfirmPage, "email_change_confirm.html");
impl_page!(ResetPasswordPage, "reset_password.html");
impl_page!(MessagePage, "message.html");

/// A source as the login page lists it.
#[derive(Serialize)]
pub(crate) struct SourceLink {
    pub(crate) id: String,
    pub(crate) name: String,
    /// The password source the login form's choice starts on.
    pub(crate) selected: bool,
}

/// The login page. One password form in sight whatever the number of password sources: each source keeps its own
/// form posting to `/login/{source}` (the public contract), and with several a choice drawn as tabs (radio buttons
/// and CSS, no script) shows the chosen one. The redirect sources are buttons below it. Written in the template subset (plain `bool` flags, no
/// `Option`), so that an override rendered by minijinja reads the same fields.
#[derive(Template, Serialize, Default)]
#[template(path = "login.html")]
pub(crate) struct LoginPage<'a> {
    pub(crate) mount: &'a str,
    pub(crate) csrf_token: &'a str,
    pub(crate) next: &'a str,
    pub(crate) username: &'a str,
    pub(crate) has_error: bool,
    pub(crate) error: &'a str,
    pub(crate) has_password_sources: bool,
    pub(crate) several_password_sources: bool,
    pub(crate) password_sources: Vec<SourceLink>,
    pub(crate) has_redirect_sources: bool,
    pub(crate) redirect_sources: Vec<SourceLink>,
    /// Whether to offer "Forgot your password?" (a mailer and a local password source).
    pub(crate) reset: bool,
    /// Whether to offer "Sign in with a passkey".
    pub(crate) passkeys: bool,
    pub(crate) ui: Chrome,
    #[serde(skip)]
    pub(crate) t: Tr,
}

/// Marks which of `sources` the login form's choice starts on: `chosen` when it is one of them, else the first.
pub(crate) fn choose_source(sources: &mut [SourceLink], chosen: Option<&str>) {
    let at = chosen.and_then(|c| sources.iter().position(|s| s.id == c)).unwrap_or(0);
    for (i, s) in sources.iter_mut().enumerate() {
        s.selected = i == at;
    }
}

#[derive(Serialize)]
pub(crate) struct IdentityRow {
    pub(crate) source: String,
    /// The source's display name (its id when it is no longer configured).
    pub(crate) source_name: String,
    pub(crate) subject: String,
    pub(crate) has_login: bool,
    pub(crate) login: String,
    pub(crate) since: String,
}

#[derive(Serialize)]
pub(crate) struct SessionRow {
    pub(crate) id: String,
    pub(crate) current: bool,
    pub(crate) ip: String,
    pub(crate) user_agent: String,
    pub(crate) created: String,
    pub(crate) last_seen: String,
}

/// The account page, in three sections: ways to sign in, security, sessions. Written in the template subset (plain
/// `bool` flags, empty strings for what is absent), so that an override rendered by minijinja reads the same fields.
#[derive(Template, Serialize, Default)]
#[template(path = "account.html")]
pub(crate) struct AccountPage<'a> {
    pub(crate) mount: &'a str,
    pub(crate) csrf_token: &'a str,
    pub(crate) display_name: &'a str,
    pub(crate) has_email: bool,
    pub(crate) email: &'a str,
    /// Shown next to the address: an unconfirmed one is used neither for reset nor for linking.
    pub(crate) email_unconfirmed: bool,
    /// An address change waiting to be confirmed from the new address (not used for anything until then).
    pub(crate) has_pending_email: bool,
    pub(crate) pending_email: &'a str,
    /// Whether the address can be changed here (a mailer is configured).
    pub(crate) email_change: bool,
    pub(crate) has_notice: bool,
    pub(crate) notice: &'a str,
    pub(crate) has_password: bool,
    pub(crate) has_totp: bool,
    /// Any second factor (authenticator app or passkey): the recovery codes are shown then.
    pub(crate) has_factor: bool,
    pub(crate) recovery_codes_left: u32,
    pub(crate) has_passkeys: bool,
    pub(crate) passkeys: Vec<PasskeyRow>,
    pub(crate) passkeys_enabled: bool,
    pub(crate) identities: Vec<IdentityRow>,
    /// More than one way in: each can be removed (the last one cannot).
    pub(crate) can_unlink: bool,
    pub(crate) sessions: Vec<SessionRow>,
    pub(crate) has_tokens: bool,
    pub(crate) tokens: Vec<TokenRow>,
    /// Whether any source below can still be added.
    pub(crate) can_add: bool,
    /// The sources the account has no identity of yet (so never the local source of an account with a password).
    pub(crate) password_sources: Vec<SourceLink>,
    pub(crate) redirect_sources: Vec<SourceLink>,
    pub(crate) ui: Chrome,
    #[serde(skip)]
    pub(crate) t: Tr,
}

#[derive(Serialize)]
pub(crate) struct TokenRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) scopes: String,
    pub(crate) expires: String,
    pub(crate) last_used: String,
}

#[derive(Template, Serialize, Default)]
#[template(path = "token.html")]
pub(crate) struct TokenPage<'a> {
    pub(crate) mount: &'a str,
    pub(crate) name: &'a str,
    pub(crate) value: &'a str,
    pub(crate) scopes: &'a str,
    pub(crate) expires: String,
    pub(crate) ui: Chrome,
    #[serde(skip)]
    pub(crate) t: Tr,
}

#[derive(Template, Serialize, Default)]
#[template(path = "link.html")]
pub(crate) struct LinkPage<'a> {
    pub(crate) mount: &'a str,
    pub(crate) csrf_token: &'a str,
    pub(crate) signed_in: bool,
    pub(crate) account_name: &'a str,
    pub(crate) source: &'a str,
    pub(crate) has_email: bool,
    pub(crate) email: &'a str,
    pub(crate) may_create: bool,
    pub(crate) password_sources: Vec<SourceLink>,
    pub(crate) redirect_sources: Vec<SourceLink>,
    pub(crate) ui: Chrome,
    #[serde(skip)]
    pub(crate) t: Tr,
}

/// A TOTP authenticator being set up, as a page shows it: the QR code (SVG made here, from the URI), the
/// base32 key and the URI as text.
#[derive(Serialize, Default)]
pub(crate) struct EnrolmentView {
    pub(crate) qr_svg: String,
    pub(crate) secret: String,
    pub(crate) uri: String,
}

impl EnrolmentView {
    pub(crate) fn of(e: &vestibule::TotpEnrolment) -> EnrolmentView {
        use vestibule_core::ExposeSecret;
        let uri = e.uri.expose_secret();
        // The SVG is the library's own markup (paths and a viewBox) of the URI's bits: nothing in it is text from a
        // request, so it is inserted unescaped. Without its XML prolog, which does not belong inside HTML.
        let qr_svg = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
            .map(|code| {
                code.render::<qrcode::render::svg::Color<'_>>()
                    .min_dimensions(200, 200)
                    .quiet_zone(true)
                    .build()
            })
            .map(|svg| match svg.find("<svg") {
                Some(i) => svg[i..].to_owned(),
                None => svg,
            })
            .unwrap_or_default();
        EnrolmentView {
            qr_svg,
            secret: e.secret_base32.expose_secret().to_owned(),
            uri: uri.to_owned(),
        }
    }
}

#[derive(Template, Serialize, Default)]
#[template(path = "second_factor.html")]
pub(crate) struct SecondFactorPage<'a> {
    pub(crate) mount: &'a str,
    pub(crate) csrf_token: &'a str,
    pub(crate) next: &'a str,
    pub(crate) has_error: bool,
    pub(crate) error: &'a str,
    pub(crate) has_enrolment: bool,
    pub(crate) enrolment: EnrolmentView,
    pub(crate) step_up: bool,
    /// A passkey ceremony, when the account has passkeys.
    pub(crate) has_passkey: bool,
    pub(crate) pk: PasskeyForm,
    /// The code form (step-up of an account whose only second factor is its identity provider's has none).
    pub(crate) has_code: bool,
    /// Step-up at these identity providers (their multi-factor sign-in is trusted here).
    pub(crate) has_providers: bool,
    pub(crate) providers: Vec<SourceLink>,
    pub(crate) ui: Chrome,
    #[serde(skip)]
    pub(crate) t: Tr,
}

/// A passkey on the account page.
#[derive(Serialize)]
pub(crate) struct PasskeyRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) created: String,
    pub(crate) last_used: String,
}

/// A passkey ceremony as a page shows it (`passkey_form.html`): the options in a JSON data block, and the form
/// that `passkey.js` fills with the authenticator's answer.
#[derive(Serialize, Default)]
pub(crate) struct PasskeyForm {
    /// Where the form posts (after the mount).
    pub(crate) action: &'static str,
    /// `create` (registration) or `get` (an assertion).
    pub(crate) kind: &'static str,
    pub(crate) ceremony: String,
    /// The options JSON, made safe inside `<script>` ([`script_json`]).
    pub(crate) options: String,
    /// Ask for a name (registration).
    pub(crate) ask_name: bool,
    /// Start the ceremony as soon as the page loads (the person already clicked for it).
    pub(crate) autostart: bool,
    pub(crate) button: &'static str,
}

impl PasskeyForm {
    pub(crate) fn new(challenge: &vestibule::PasskeyChallenge, action: &'static str, kind: &'static str) -> Self {
        use vestibule_core::ExposeSecret;
        PasskeyForm {
            action,
            kind,
            ceremony: challenge.ceremony.expose_secret().to_owned(),
            options: script_json(&challenge.options),
            ask_name: false,
            autostart: false,
            button: "passkey-use",
        }
    }
}

/// JSON made safe to place inside `<script type="application/json">`: `<`, `>` and `&` only occur inside JSON
/// strings, where their `\u` escapes mean the same, so no `</script>` (from a display name, say) can end the block.
pub(crate) fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A page that runs one passkey ceremony: registration (`/account/passkeys`) or a passwordless sign-in
/// (`/login/passkey`).
#[derive(Template, Serialize, Default)]
#[template(path = "passkey.html")]
pub(crate) struct PasskeyPage<'a> {
    pub(crate) mount: &'a str,
    pub(crate) csrf_token: &'a str,
    pub(crate) next: &'a str,
    pub(crate) title: &'a str,
    pub(crate) intro: &'a str,
    pub(crate) has_error: bool,
    pub(crate) error: &'a str,
    pub(crate) pk: PasskeyForm,
    /// Where "Back" goes (after the mount).
    pub(crate) back: &'a str,
    pub(crate) ui: Chrome,
    #[serde(skip)]
    pub(crate) t: Tr,
}

#[derive(Template, Serialize, Default)]
#[template(path = "totp_enrol.html")]
pub(crate) struct TotpEnrolPage<'a> {
    pub(crate) mount: &'a str,
    pub(crate) csrf_token: &'a str,
    pub(crate) has_error: bool,
    pub(crate) error: &'a str,
    pub(crate) has_enrolment: bool,
    pub(crate) enrolment: EnrolmentView,
    pub(crate) ui: Chrome,
    #[serde(skip)]
    pub(crate) t: Tr,
}

#[derive(Template, Serialize, Default)]
#[template(path = "recovery_codes.html")]
pub(crate) struct RecoveryCodesPage<'a> {
    pub(crate) mount: &'a str,
    pub(crate) codes: Vec<String>,
    pub(crate) continue_to: &'a str,
    pub(crate) ui: Chrome,
    #[serde(skip)]
    pub(crate) t: Tr,
}

/// The configured sources, split by flow, for the forms and buttons of a page.
pub(crate) fn source_links(v: &Vestibule) -> (Vec<SourceLink>, Vec<SourceLink>) {
    let (mut password, mut redirect) = (Vec::new(), Vec::new());
    for s in v.broker().sources() {
        let link = SourceLink {
            id: s.id().to_string(),
            name: s.display_name().to_owned(),
            selected: false,
        };
        match s.flow() {
            vestibule_core::Flow::Password(_) => password.push(link),
            vestibule_core::Flow::Redirect(_) => redirect.push(link),
            // A kind of flow this version cannot show is left off the page rather than shown as something else.
            _ => tracing::warn!(source = %s.id(), "a sign-in flow this front end does not know; not shown"),
        }
    }
    (password, redirect)
}

/// One click to sign out, when the sign-out form that was posted had expired.
#[derive(Template, Serialize, Default)]
#[template(path = "logout.html")]
pub(crate) struct LogoutPage<'a> {
    pub(crate) mount: &'a str,
    pub(crate) csrf_token: &'a str,
    pub(crate) ui: Chrome,
    #[serde(skip)]
    pub(crate) t: Tr,
}

/// `GET /reset` and the same page after `POST /reset`, whatever was typed.
#[derive(Template, Serialize, Default)]
#[template(path = "reset.html")]
pub(crate) struct ResetPage<'a> {
    pub(crate) mount: &'a str,
    pub(crate) csrf_token: &'a str,
    pub(crate) sent: bool,
    pub(crate) ui: Chrome,
    #[serde(skip)]
    pub(crate) t: Tr,
}

/// `GET /email/verify/{token}` for a change of address: the button that confirms it.
#[derive(Template, Serialize, Default)]
#[template(path = "email_change_confirm.html")]
pub(crate) struct EmailChangeConfirmPage<'a> {
    pub(crate) mount: &'a str,
    pub(crate) csrf_token: &'a str,
    pub(crate) token: &'a str,
    pub(crate) email: &'a str,
    pub(crate) ui: Chrome,
    #[serde(skip)]
    pub(crate) t: Tr,
}

/// `GET /reset-password` (where a mailed link `/reset/{token}` leads, its token moved into a cookie): the new
/// password form. It holds no token.
#[derive(Template, Serialize, Default)]
#[template(path = "reset_password.html")]
pub(crate) struct ResetPasswordPage<'a> {
    pub(crate) mount: &'a str,
    pub(crate) csrf_token: &'a str,
    pub(crate) has_error: bool,
    pub(crate) error: &'a str,
    pub(crate) ui: Chrome,
    #[serde(skip)]
    pub(crate) t: Tr,
}

#[derive(Template, Serialize, Default)]
#[template(path = "message.html")]
pub(crate) struct MessagePage<'a> {
    pub(crate) mount: &'a str,
    pub(crate) title: &'a str,
    pub(crate) message: &'a str,
    pub(crate) has_reference: bool,
    pub(crate) reference: &'a str,
    pub(crate) ui: Chrome,
    #[serde(skip)]
    pub(crate) t: Tr,
}

/// Renders a page in the request's language, with the operator's product name and logo: with the override set's
/// minijinja environment when one is configured (an override of `base.html` then frames every page), else with the
/// compiled-in askama template. A page that fails to render is logged and answered with a bare page.
pub(crate) fn render<P: Page>(v: &Vestibule, page: P) -> String {
    render_for(v, &PageRequest::current(), page)
}

/// [`render`] for a given request (the error pages, rendered after the handler's task-local scope ended).
pub(crate) fn render_for<P: Page>(v: &Vestibule, req: &PageRequest, mut page: P) -> String {
    let (chrome, t) = page.chrome();
    *chrome = crate::ui::chrome(&v.inner.ui, req);
    *t = req.lang;
    let rendered = match &v.inner.ui.templates {
        Some(overrides) => render_minijinja(&overrides.env, &page).map_err(|e| e.to_string()),
        None => page.render().map_err(|e| e.to_string()),
    };
    rendered.unwrap_or_else(|e| {
        tracing::error!(error = %e, template = P::NAME, "template rendering failed");
        "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
    })
}

/// A page through a minijinja environment: its serialised values plus `t`.
pub(crate) fn render_minijinja<P: Page>(
    env: &minijinja::Environment<'static>,
    page: &P,
) -> Result<String, minijinja::Error> {
    let t = page.tr();
    let ctx = minijinja::context! {
        t => minijinja::Value::from_object(t),
        ..minijinja::Value::from(minijinja::value::Serde(page))
    };
    env.get_template(P::NAME)?.render(ctx)
}

/// A page that says one thing, in the request's language.
pub(crate) fn message(v: &Vestibule, title: &str, message: &str, reference: Option<&str>) -> String {
    message_for(v, &PageRequest::current(), title, message, reference)
}

/// [`message`] for a given request (an error page, rendered after the handler).
pub(crate) fn message_for(
    v: &Vestibule,
    req: &PageRequest,
    title: &str,
    message: &str,
    reference: Option<&str>,
) -> String {
    let mut page = message_page(title, message, reference);
    page.mount = &v.inner.mount;
    render_for(v, req, page)
}

/// The page of [`message`], before the mount and the chrome.
pub(crate) fn message_page<'a>(title: &'a str, message: &'a str, reference: Option<&'a str>) -> MessagePage<'a> {
    MessagePage {
        title,
        message,
        has_reference: reference.is_some(),
        reference: reference.unwrap_or_default(),
        ..Default::default()
    }
}

/// `2026-11-28 21:30 UTC` from Unix seconds (proleptic Gregorian, Howard Hinnant's days-to-civil).
pub fn utc(ts: Timestamp) -> String {
    let days = ts.0.div_euclid(86_400);
    let secs = ts.0.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(utc(Timestamp(0)), "1970-01-01 00:00 UTC");
        assert_eq!(utc(Timestamp(951_782_400)), "2000-02-29 00:00 UTC");
        assert_eq!(utc(Timestamp(1_795_901_400)), "2026-11-28 21:30 UTC");
    }
}
