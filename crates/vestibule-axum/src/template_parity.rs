//! Every built-in page rendered by askama (compiled in) and by minijinja reading the same files from `templates/`
//! as an override folder would, on realistic values, in every language: the two must agree, so any built-in
//! template is a working starting point for an override and an override of `base.html` frames every page.

use std::collections::BTreeSet;
use std::path::Path;

use askama::Template;

use crate::i18n::{Catalogues, Tr, BUILTIN_TEMPLATES};
use crate::pages::*;
use crate::ui::{chrome, Logo, PageRequest, TemplateOverrides, UiSettings};

/// Text that needs escaping, and a slash, which minijinja escapes and askama does not.
const NASTY: &str = "Zoë <b>\"O'Brien\"</b> & co/x";

fn sources() -> Vec<SourceLink> {
    vec![
        SourceLink {
            id: "local".into(),
            name: "Company <password>".into(),
            selected: false,
        },
        SourceLink {
            id: "corp".into(),
            name: "Corp LDAP".into(),
            selected: true,
        },
    ]
}

fn redirects() -> Vec<SourceLink> {
    vec![SourceLink {
        id: "github".into(),
        name: "GitHub & co".into(),
        selected: false,
    }]
}

fn enrolment() -> EnrolmentView {
    EnrolmentView {
        qr_svg: "<svg viewBox=\"0 0 1 1\"><path d=\"M0 0h1v1H0z\"/></svg>".into(),
        secret: "JBSWY3DPEHPK3PXP".into(),
        uri: "otpauth://totp/Vestibule:alice?secret=JBSWY3DPEHPK3PXP&issuer=Vestibule".into(),
    }
}

fn passkey_form(ask_name: bool) -> PasskeyForm {
    PasskeyForm {
        action: "/account/passkeys/finish",
        kind: "create",
        ceremony: "c3VwZXItc2VjcmV0".into(),
        options: script_json(r#"{"publicKey":{"user":{"name":"</script><b>"}}}"#),
        ask_name,
        autostart: true,
        button: "Use a passkey",
    }
}

/// The two renderings of a page, after the chrome every page gets.
struct Rendered {
    name: &'static str,
    askama: String,
    minijinja: String,
}

fn both<P: Page>(env: &minijinja::Environment<'static>, ui: &UiSettings, lang: usize, mut page: P) -> Rendered {
    let req = PageRequest {
        lang: Tr { lang },
        link_prefix: "?next=%2Faccount&amp;x=<y>&".into(),
        chosen: None,
        api: false,
    };
    let (c, t) = page.chrome();
    *c = chrome(ui, &req);
    *t = req.lang;
    Rendered {
        name: P::NAME,
        askama: page.render().expect("askama renders"),
        minijinja: render_minijinja(env, &page).unwrap_or_else(|e| panic!("{}: {e:#}", P::NAME)),
    }
}

/// Only the spelling of escapes differs: minijinja writes `&lt;`, `&gt;`, `&amp;`, `&quot;`, `&#x27;` and escapes
/// `/` as `&#x2f;`; askama writes `&#60;`, `&#62;`, `&#38;`, `&#34;`, `&#39;` and leaves `/` alone.
fn normalise(html: &str) -> String {
    html.replace("&#60;", "&lt;")
        .replace("&#62;", "&gt;")
        .replace("&#38;", "&amp;")
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
}

fn all_pages(env: &minijinja::Environment<'static>, ui: &UiSettings, lang: usize) -> Vec<Rendered> {
    let mut out = Vec::new();
    for (has_error, several) in [(true, true), (false, false)] {
        out.push(both(
            env,
            ui,
            lang,
            LoginPage {
                mount: "/auth",
                csrf_token: "tok/en+=",
                next: "/app?a=1&b=<2>",
                username: NASTY,
                has_error,
                error: "error-sign-in-failed",
                has_password_sources: several,
                several_password_sources: several,
                password_sources: if several { sources() } else { Vec::new() },
                has_redirect_sources: several,
                redirect_sources: if several { redirects() } else { Vec::new() },
                reset: several,
                passkeys: several,
                ..Default::default()
            },
        ));
    }
    for full in [true, false] {
        out.push(both(
            env,
            ui,
            lang,
            AccountPage {
                mount: "/auth",
                csrf_token: "tok",
                display_name: NASTY,
                has_email: full,
                email: "alice@example.org",
                email_unconfirmed: full,
                has_pending_email: full,
                pending_email: "new@example.org",
                email_change: full,
                has_notice: full,
                notice: "notice-password-changed",
                has_password: full,
                has_totp: full,
                has_factor: full,
                recovery_codes_left: if full { 7 } else { 1 },
                has_passkeys: full,
                passkeys: vec![PasskeyRow {
                    id: "pk1".into(),
                    name: NASTY.into(),
                    created: "2026-11-28 21:30 UTC".into(),
                    last_used: "never".into(),
                }],
                passkeys_enabled: full,
                identities: vec![
                    IdentityRow {
                        source: "local".into(),
                        source_name: "Company <password>".into(),
                        subject: "42".into(),
                        has_login: true,
                        login: "alice".into(),
                        since: "2026-11-28 21:30 UTC".into(),
                    },
                    IdentityRow {
                        source: "github".into(),
                        source_name: "GitHub".into(),
                        subject: "583231".into(),
                        has_login: false,
                        login: String::new(),
                        since: "2026-11-29 08:00 UTC".into(),
                    },
                ],
                can_unlink: full,
                sessions: vec![
                    SessionRow {
                        id: "s1".into(),
                        current: true,
                        ip: "192.0.2.1".into(),
                        user_agent: "Mozilla/5.0 <X11>".into(),
                        created: "2026-11-28 21:30 UTC".into(),
                        last_seen: "2026-11-28 21:35 UTC".into(),
                    },
                    SessionRow {
                        id: "s2".into(),
                        current: false,
                        ip: "2001:db8::1".into(),
                        user_agent: "curl/8".into(),
                        created: "2026-11-27 10:00 UTC".into(),
                        last_seen: "2026-11-27 10:01 UTC".into(),
                    },
                ],
                has_tokens: full,
                can_add: full,
                tokens: vec![TokenRow {
                    id: "t1".into(),
                    name: "ci & deploy".into(),
                    scopes: "read write".into(),
                    expires: "2026-12-28 21:30 UTC".into(),
                    last_used: "never".into(),
                }],
                password_sources: sources(),
                redirect_sources: redirects(),
                ..Default::default()
            },
        ));
    }
    out.push(both(
        env,
        ui,
        lang,
        TokenPage {
            mount: "/auth",
            name: NASTY,
            value: "vst_abc/def+ghi",
            scopes: "read",
            expires: "2026-12-28 21:30 UTC".into(),
            ..Default::default()
        },
    ));
    for signed_in in [true, false] {
        out.push(both(
            env,
            ui,
            lang,
            LinkPage {
                mount: "",
                csrf_token: "tok",
                signed_in,
                account_name: NASTY,
                source: "GitHub",
                has_email: signed_in,
                email: "alice@example.org",
                may_create: !signed_in,
                password_sources: sources(),
                redirect_sources: redirects(),
                ..Default::default()
            },
        ));
    }
    for enrol in [true, false] {
        out.push(both(
            env,
            ui,
            lang,
            SecondFactorPage {
                mount: "/auth",
                csrf_token: "tok",
                next: "/app",
                has_error: enrol,
                error: "error-wrong-code",
                has_enrolment: enrol,
                enrolment: if enrol { enrolment() } else { EnrolmentView::default() },
                step_up: !enrol,
                has_passkey: !enrol,
                pk: passkey_form(false),
                ..Default::default()
            },
        ));
    }
    out.push(both(
        env,
        ui,
        lang,
        PasskeyPage {
            mount: "/auth",
            csrf_token: "tok",
            next: "/app",
            title: "passkey-add-title",
            intro: "passkey-add-intro",
            has_error: true,
            error: "error-passkey-not-registered",
            pk: passkey_form(true),
            back: "/account",
            ..Default::default()
        },
    ));
    out.push(both(
        env,
        ui,
        lang,
        TotpEnrolPage {
            mount: "/auth",
            csrf_token: "tok",
            has_error: true,
            error: "error-wrong-code",
            has_enrolment: true,
            enrolment: enrolment(),
            ..Default::default()
        },
    ));
    out.push(both(
        env,
        ui,
        lang,
        RecoveryCodesPage {
            mount: "/auth",
            codes: vec!["abcd-efgh".into(), "ijkl-mnop".into(), "qrst-uvwx".into()],
            continue_to: "/auth/account?done=codes&x=/y",
            ..Default::default()
        },
    ));
    out.push(both(
        env,
        ui,
        lang,
        LogoutPage {
            mount: "/auth",
            csrf_token: "tok",
            ..Default::default()
        },
    ));
    for sent in [true, false] {
        out.push(both(
            env,
            ui,
            lang,
            ResetPage {
                mount: "/auth",
                csrf_token: "tok",
                sent,
                ..Default::default()
            },
        ));
    }
    out.push(both(
        env,
        ui,
        lang,
        EmailChangeConfirmPage {
            mount: "/auth",
            csrf_token: "tok",
            token: "abc/def",
            email: "new+tag@example.org",
            ..Default::default()
        },
    ));
    out.push(both(
        env,
        ui,
        lang,
        ResetPasswordPage {
            mount: "/auth",
            csrf_token: "tok",
            has_error: true,
            error: "error-password-too-short",
            ..Default::default()
        },
    ));
    for reference in [Some("3f9a0c1b2d4e"), None] {
        out.push(both(
            env,
            ui,
            lang,
            message_page("error-internal-title", NASTY, reference),
        ));
    }
    out
}

#[test]
fn askama_and_minijinja_render_every_built_in_page_alike() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
    let overrides = TemplateOverrides::load(&folder).expect("the built-in templates load as overrides");
    let mut seen = BTreeSet::new();
    for logo in [true, false] {
        let ui = UiSettings {
            product_name: "Acme <Login> & co".into(),
            logo: logo.then(|| Logo {
                bytes: b"<svg/>".as_slice().into(),
                content_type: "image/svg+xml",
            }),
            templates: None,
        };
        for lang in 0..Catalogues::builtin().languages.len() {
            for page in all_pages(&overrides.env, &ui, lang) {
                seen.insert(page.name);
                assert!(
                    normalise(&page.askama).contains("Acme &lt;Login&gt; &amp; co"),
                    "{}",
                    page.askama
                );
                assert!(!page.askama.contains("<b>"), "values are escaped: {}", page.askama);
                assert_eq!(
                    normalise(&page.askama),
                    normalise(&page.minijinja),
                    "{} in language {lang} renders differently",
                    page.name
                );
            }
        }
    }
    // Every template is rendered, directly or through a page that extends or includes it.
    let used: BTreeSet<&str> = BUILTIN_TEMPLATES
        .iter()
        .filter(|(name, _)| {
            seen.contains(name)
                || BUILTIN_TEMPLATES.iter().any(|(_, text)| {
                    text.contains(&format!("{{% include \"{name}\" %}}"))
                        || text.contains(&format!("{{% extends \"{name}\" %}}"))
                })
        })
        .map(|(name, _)| *name)
        .collect();
    let all: BTreeSet<&str> = BUILTIN_TEMPLATES.iter().map(|(name, _)| *name).collect();
    assert_eq!(used, all);
}

/// The comparison is not vacuous: a template the two engines read differently (here askama's `!`, outside the
/// subset) is caught.
#[test]
fn a_template_outside_the_subset_is_told_apart() {
    let mut env = crate::ui::environment();
    env.add_template("logout.html", "{% if !csrf_token %}x{% endif %}")
        .expect_err("minijinja does not read askama's `!`");
    env.add_template("logout.html", "{{ csrf_token|upper }}")
        .expect("compiles");
    let page = LogoutPage {
        mount: "",
        csrf_token: "tok",
        ..Default::default()
    };
    let minijinja = render_minijinja(&env, &page).expect("renders");
    assert_ne!(normalise(&minijinja), normalise(&page.render().expect("renders")));
}
