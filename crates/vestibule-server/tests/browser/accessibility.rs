//! Accessibility and phone size, in the real browser. axe-core (pinned by tests/browser/package-lock.json,
//! installed by tests/browser/install.sh) is injected over WebDriver into each page and must find no violation of
//! the WCAG 2.0 and 2.1 A and AA rules (contrast, labels, names, landmarks, headings, language...), at desktop
//! size and at a phone's 360×740 CSS px (Chromium's device emulation, with the page's viewport meta tag honoured).
//! At phone size nothing may scroll sideways, and buttons, fields and choices are at least 44 px high. A page made
//! to fail shows that every one of these checks can fail.
//!
//! Injecting a script over WebDriver bypasses the page's CSP, which is what a checker needs; the pages' own script
//! is tested under the CSP elsewhere (browser/passkey.rs).

use std::path::Path;

use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use vestibule_tests::chrome::{axe_source, axe_violations, Ext, WAIT};
use vestibule_tests::net::RefusingPort;
use vestibule_tests::server::{Server, TempDir};

use super::{Env, BIN, PASSWORD};

/// A small phone, in CSS px.
const PHONE: (u32, u32) = (360, 740);

/// Emulates a phone screen (`Some`), or the window again (`None`), through Chromium's DevTools.
async fn emulate(b: &Client, size: Option<(u32, u32)>) {
    let (cmd, params) = match size {
        Some((width, height)) => (
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 2, "mobile": true }),
        ),
        None => ("Emulation.clearDeviceMetricsOverride", json!({})),
    };
    b.issue_cmd(Ext {
        method: http::Method::POST,
        path: "goog/cdp/execute".into(),
        body: Some(json!({ "cmd": cmd, "params": params })),
    })
    .await
    .unwrap();
}

/// At phone size: the viewport's width, the document's (wider means sideways scrolling), and the visible
/// controls less than 44 px high.
async fn phone_layout(b: &Client) -> Value {
    b.execute(
        "const small = [...document.querySelectorAll(
             'button, select, summary, .tabs label, label.check, ' +
             'input:not([type=hidden]):not([type=checkbox]):not([type=radio])')]
           .filter(e => e.getClientRects().length > 0 && e.getBoundingClientRect().height < 44)
           .map(e => e.outerHTML.slice(0, 100));
         return { inner: window.innerWidth, scroll: document.documentElement.scrollWidth, small };",
        vec![],
    )
    .await
    .unwrap()
}

/// Whether a page at phone size is laid out in the phone's width and no wider. An emulated phone zooms a page
/// wider than itself out to fit (so `innerWidth` grows), or, with the viewport meta tag, lets it scroll sideways.
fn fits(layout: &Value) -> bool {
    layout["inner"] == PHONE.0 && layout["scroll"].as_u64().unwrap() <= u64::from(PHONE.0)
}

/// Runs every check on the page the browser shows, at desktop size and at phone size, and adds what fails to
/// `problems` (so that one run reports every page). Saves a phone-size screenshot as `shot` in `shots` if named.
async fn check_page(b: &Client, axe: &str, page: &str, problems: &mut Vec<String>, shot: Option<(&Path, &str)>) {
    let at = b.current_url().await.map(|u| u.to_string()).unwrap_or_default();
    for v in axe_violations(b, axe).await {
        problems.push(format!("{page} ({at}), desktop: {v}"));
    }
    emulate(b, Some(PHONE)).await;
    let layout = phone_layout(b).await;
    if !fits(&layout) {
        problems.push(format!("{page}, phone: wider than the screen: {layout}"));
    }
    for small in layout["small"].as_array().unwrap() {
        problems.push(format!("{page}, phone: under 44 px high: {small}"));
    }
    for v in axe_violations(b, axe).await {
        problems.push(format!("{page} ({at}), phone: {v}"));
    }
    if let Some((dir, name)) = shot {
        // What a phone shows first, and the whole page at a phone's width (the viewport made as tall as the page).
        let png = b.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        save_png(dir, name, &png);
        let height = b
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .unwrap();
        let height = u32::try_from(height.as_u64().unwrap()).unwrap();
        emulate(b, Some((PHONE.0, height.max(PHONE.1)))).await;
        save_png(dir, &format!("{name}-full"), &b.screenshot().await.unwrap());
    }
    emulate(b, None).await;
}

/// Keeps a screenshot in the test's folder and, for a person to look at after the run, in the temporary folder.
fn save_png(dir: &Path, name: &str, png: &[u8]) {
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    let _ = std::fs::write(std::env::temp_dir().join(format!("vestibule-{name}.png")), png);
}

async fn fill(b: &Client, css: &str, text: &str) {
    let field = b
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(b: &Client, xpath: &str) {
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("nothing at {xpath}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn button(b: &Client, label: &str) {
    click(b, &format!("//button[normalize-space()='{label}']")).await;
}

/// Types into the login form in sight (with several password sources every source has its form, and only the
/// chosen one shows) and clicks its "Sign in".
async fn submit_login(b: &Client, username: &str, password: &str) {
    let mut shown = None;
    for form in b.find_all(Locator::Css("form.panel")).await.unwrap() {
        if form.is_displayed().await.unwrap() {
            assert!(shown.is_none(), "two password forms in sight");
            shown = Some(form);
        }
    }
    let form = shown.expect("no password form in sight");
    for (name, text) in [("username", username), ("password", password)] {
        let field = form.find(Locator::Css(&format!("input[name={name}]"))).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn wait_for(b: &Client, css: &str) {
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_and_fits_a_phone() {
    let axe = axe_source();
    // Two password sources (the local one and a directory whose server refuses connections: its form renders,
    // a sign-in there is an error page) and a redirect source (GitHub-shaped, never reached).
    let dead = RefusingPort::new();
    let dir = TempDir::new("vestibule-a11y");
    std::fs::write(dir.0.join("gh-secret"), "not-a-real-secret").unwrap();
    let base = format!("http://{}", dead.addr());
    let config = format!(
        "[database]\nurl = \"sqlite://{{dir}}/v.db\"\n\n\
         [[sources]]\nkind = \"local\"\nid = \"local\"\n\n\
         [[sources]]\nkind = \"ldap\"\nid = \"corp\"\ndisplay_name = \"Company directory\"\nurl = \"ldap://{}\"\n\
         user_dn_template = \"uid={{username}},ou=people,dc=example,dc=com\"\ntimeout_secs = 2\n\n\
         [[sources]]\nkind = \"github\"\nid = \"github\"\ndisplay_name = \"GitHub\"\nclient_id = \"a11y\"\n\
         client_secret_file = \"{{dir}}/gh-secret\"\nauthorize_url = \"{base}/authorize\"\n\
         token_url = \"{base}/token\"\napi_base_url = \"{base}/api\"\ntimeout_secs = 2\n",
        dead.addr()
    );
    let env = Env::start_in(dir, &config).await;
    let shots = env.dir.0.clone();
    let b = env.b();
    let mut problems = Vec::new();

    // The login page with two password sources and a redirect source.
    b.goto(&env.url("/login?next=/account")).await.unwrap();
    wait_for(b, "input[name=source][value=corp]").await;
    check_page(
        b,
        &axe,
        "login, two password sources and a redirect source",
        &mut problems,
        Some((&shots, "login-phone")),
    )
    .await;

    // A failed sign-in: the form again with the error.
    submit_login(b, "alice", "not the password").await;
    wait_for(b, "p.error[role=alert]").await;
    check_page(b, &axe, "login with an error", &mut problems, None).await;

    // Message pages: a sign-in through the unreachable directory (503 with a reference), a stale callback, a
    // page that does not exist.
    click(b, "//label[normalize-space()='Company directory']").await;
    submit_login(b, "alice", "whatever password").await;
    wait_for(b, "p.muted code").await;
    check_page(b, &axe, "message: directory unavailable", &mut problems, None).await;
    b.goto(&env.url("/callback/github?state=stale&code=x")).await.unwrap();
    wait_for(b, "h1").await;
    check_page(b, &axe, "message: stale callback", &mut problems, None).await;
    b.goto(&env.url("/no-such-page")).await.unwrap();
    wait_for(b, "h1").await;
    check_page(b, &axe, "message: not found", &mut problems, None).await;

    // The reset pages: the request, its answer, and the mailed link's new-password form (for nora, whose address
    // is confirmed: an unconfirmed one gets no link).
    let added = env.server.cli(
        &[
            "user",
            "add",
            "nora",
            "--email",
            "nora@example.org",
            "--email-verified",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(added.success, "{}", added.stderr);
    b.goto(&env.url("/reset")).await.unwrap();
    fill(b, "input[name=login]", "nora").await;
    check_page(b, &axe, "reset request", &mut problems, None).await;
    button(b, "Send the link").await;
    wait_for(b, "p[role=status]").await;
    check_page(b, &axe, "reset requested", &mut problems, None).await;
    let outbox = env.dir.0.join("vestibule-outbox");
    let mail = vestibule_tests::smtp::wait_for_eml(&outbox, |m| m.contains("Subject: Reset your password"));
    let link = vestibule_tests::smtp::link_in(&mail, &env.server.base, "reset").unwrap();
    b.goto(&link).await.unwrap();
    wait_for(b, "input[name=new_password]").await;
    // The token left the address bar (and the history) before the page was shown: the link's answer moved it
    // into a cookie for the reset page and sent the browser on to a URL without it.
    let token = link.rsplit('/').next().unwrap();
    let href = b.execute("return location.href", vec![]).await.unwrap();
    let href = href.as_str().unwrap();
    assert!(href.ends_with("/reset-password") && !href.contains(token), "{href}");
    check_page(b, &axe, "reset: new password", &mut problems, None).await;
    // The browser keeps the reset cookie (path-scoped, `SameSite=Strict`) and sends it with the form.
    fill(b, "input[name=new_password]", "nora's brand new password").await;
    button(b, "Set the password").await;
    let heading = b
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//h1[normalize-space()='Password set']"))
        .await;
    assert!(heading.is_ok(), "the new password was not set: {heading:?}");

    // Signed in (the local source, chosen by clicking), with a second session from another browser and a token.
    let mut other = vestibule_tests::browser::Browser::new(&env.server.base);
    other.user_agent = "Other browser".into();
    assert_eq!(other.sign_in("local", "alice", PASSWORD, "").await.status, 303);
    b.goto(&env.url("/login?next=/account")).await.unwrap();
    click(b, "//label[normalize-space()='Password']").await;
    submit_login(b, "alice", PASSWORD).await;
    env.wait_for_path("/account").await;
    click(b, "//summary[normalize-space()='Create a token']").await;
    fill(b, "input[name=name]", "deploy script").await;
    button(b, "Create token").await;
    wait_for(b, "code.token").await;
    check_page(b, &axe, "token created", &mut problems, None).await;
    b.goto(&env.url("/account")).await.unwrap();
    wait_for(b, "ul.tokens li").await;
    let sessions = b.find_all(Locator::Css("ul.sessions li")).await.unwrap();
    assert_eq!(sessions.len(), 2, "this browser's session and the other one");
    check_page(
        b,
        &axe,
        "account: identities, tokens, sessions",
        &mut problems,
        Some((&shots, "account-phone")),
    )
    .await;
    // With the "add" forms open, too.
    for summary in b.find_all(Locator::Css("details.add summary")).await.unwrap() {
        summary.click().await.unwrap();
    }
    check_page(b, &axe, "account, add forms open", &mut problems, None).await;

    // TOTP enrolment, its recovery codes, then the second step of the next sign-in.
    button(b, "Set up an authenticator app").await;
    wait_for(b, ".qr svg").await;
    check_page(b, &axe, "TOTP enrolment", &mut problems, None).await;
    let html = b.source().await.unwrap();
    let key = vestibule_tests::totp::code_elements(&html)[0].clone();
    let code = vestibule_tests::totp::code(&key, vestibule_tests::totp::now_secs());
    fill(b, "input[name=code]", &code).await;
    button(b, "Turn on").await;
    wait_for(b, "ul.codes").await;
    check_page(b, &axe, "recovery codes", &mut problems, None).await;
    b.goto(&env.url("/account")).await.unwrap();
    button(b, "Sign out").await;
    env.wait_for_path("/login").await;
    submit_login(b, "alice", PASSWORD).await;
    wait_for(b, "input[name=code]").await;
    check_page(b, &axe, "second factor step", &mut problems, None).await;

    // The login page with one password source: a server with only the local one.
    let single_dir = TempDir::new("vestibule-a11y-single");
    let mut single = Server::start(
        Path::new(BIN),
        &single_dir.0,
        "[database]\nurl = \"sqlite://{dir}/v.db\"\n",
    );
    b.goto(&format!("{}/login", single.base)).await.unwrap();
    wait_for(b, "input[name=username]").await;
    assert!(b.find_all(Locator::Css("input[name=source]")).await.unwrap().is_empty());
    check_page(
        b,
        &axe,
        "login, one password source",
        &mut problems,
        Some((&shots, "login-one-source-phone")),
    )
    .await;
    single.stop();

    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    env.finish().await;
}

/// The checks above can fail: a page with an unlabeled field, faint text, a box wider than a phone and small
/// controls gets axe violations for the label and the contrast, scrolls sideways and has small controls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checks_catch_a_bad_page() {
    let axe = axe_source();
    let env = Env::start().await;
    let b = env.b();
    let page = "<!doctype html><html lang=en><meta name=viewport content='width=device-width'><title>Bad</title>\
                <main><h1>Bad</h1><form><input name=q><button>Go</button></form>\
                <p style='color:#ccc;background:#fff'>faint words</p><div style='width:600px'>wide</div></main>";
    b.goto(&format!("data:text/html,{}", vestibule_tests::browser::urlencode(page)))
        .await
        .unwrap();
    wait_for(b, "input[name=q]").await;
    let found = axe_violations(b, &axe).await;
    for rule in ["label (", "color-contrast ("] {
        assert!(found.iter().any(|v| v.starts_with(rule)), "no {rule}…) in {found:#?}");
    }
    emulate(b, Some(PHONE)).await;
    let layout = phone_layout(b).await;
    assert!(!fits(&layout), "{layout}");
    assert_eq!(
        layout["small"].as_array().unwrap().len(),
        2,
        "the field and the button: {layout}"
    );

    // And the same checks pass on a good page, so the failures above are the page's.
    emulate(b, None).await;
    b.goto(&env.url("/login")).await.unwrap();
    wait_for(b, "input[name=username]").await;
    assert_eq!(axe_violations(b, &axe).await, Vec::<String>::new());
    emulate(b, Some(PHONE)).await;
    let layout = phone_layout(b).await;
    assert!(fits(&layout), "{layout}");
    assert_eq!(layout["small"], json!([]), "{layout}");
    env.finish().await;
}
