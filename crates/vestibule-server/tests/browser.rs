//! End-to-end in a real browser: the real `vestibule` binary on a free loopback port, driven by a headless
//! Chromium through chromedriver (W3C WebDriver, via fantoccini). What is tested is what a person sees: the page
//! as Chromium renders it under the server's strict CSP, its forms submitted by clicks, its redirects followed by
//! the browser, its cookies kept by the browser, and its refusal to be framed.
//!
//! Chromium and chromedriver come from `tests/browser/install.sh` (run by `scripts/test`) and are started by
//! `vestibule_tests::chrome`. The tests never skip: when either is missing they fail and say so.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use vestibule_tests::chrome::{Chrome, HEIGHT, WAIT, WIDTH};
use vestibule_tests::server::{Server, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vestibule");
const PASSWORD: &str = "correct horse battery";
/// The login page's words for every failed sign-in.
const GENERIC_FAILURE: &str = "Sign-in failed. Check your username and password and try again.";

#[path = "browser/accessibility.rs"]
mod accessibility;
#[path = "browser/passkey.rs"]
mod passkey;

/// A vestibule server on a fresh SQLite database with alice, and a fresh browser.
struct Env {
    server: Server,
    chrome: Chrome,
    dir: TempDir,
}

impl Env {
    async fn start() -> Env {
        let dir = TempDir::new("vestibule-browser");
        Env::start_in(dir, "[database]\nurl = \"sqlite://{dir}/v.db\"\n").await
    }

    /// A server with `config` (`{dir}` is `dir`) and alice, and a fresh browser.
    async fn start_in(dir: TempDir, config: &str) -> Env {
        let server = Server::start(Path::new(BIN), &dir.0, config);
        server.add_user("alice", "alice@example.org", PASSWORD);
        let chrome = Chrome::start().await;
        Env { server, chrome, dir }
    }

    fn b(&self) -> &Client {
        self.chrome.client()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    /// Waits until the browser is at exactly `path` of the server.
    async fn wait_for_path(&self, path: &str) {
        let want = url::Url::parse(&self.url(path)).unwrap();
        if let Err(e) = self.b().wait().at_most(WAIT).for_url(&want).await {
            let at = self.b().current_url().await.map(|u| u.to_string()).unwrap_or_default();
            panic!("browser never reached {want} (at {at}): {e}");
        }
    }

    /// The JSON body of the current page, as Chromium shows it (a `<pre>` of text).
    async fn page_json(&self) -> Value {
        let pre = self
            .b()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("pre"))
            .await
            .unwrap();
        let text = pre.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("page is not JSON ({e}): {text}"))
    }

    /// Opens the login page (with `next`) and fills in the password form with the browser.
    async fn fill_login(&self, username: &str, password: &str) {
        self.b().goto(&self.url("/login?next=/me")).await.unwrap();
        let user = self
            .b()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("input[name=username]"))
            .await
            .unwrap();
        user.send_keys(username).await.unwrap();
        let pass = self.b().find(Locator::Css("input[name=password]")).await.unwrap();
        pass.send_keys(password).await.unwrap();
    }

    async fn click_button(&self, label: &str) {
        let xpath = format!("//button[normalize-space()='{label}']");
        self.b()
            .find(Locator::XPath(&xpath))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    async fn finish(mut self) {
        self.chrome.finish().await;
        self.server.stop();
        drop(self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_page_is_styled_under_the_csp_and_renders() {
    let env = Env::start().await;
    let b = env.b();
    b.goto(&env.url("/login?next=/me")).await.unwrap();
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("form input[name=username]"))
        .await
        .unwrap();
    b.find(Locator::Css("form input[name=password][type=password]"))
        .await
        .unwrap();
    assert_eq!(b.title().await.unwrap(), "Sign in · Vestibule");

    // The stylesheet loaded under `default-src 'none'; style-src 'self'` and its rules apply.
    let sheets = b
        .execute(
            "return [...document.styleSheets].map(s => ({ href: s.href, rules: s.cssRules.length }));",
            vec![],
        )
        .await
        .unwrap();
    let sheets = sheets.as_array().unwrap();
    assert!(!sheets.is_empty(), "no stylesheet in the page: {sheets:?}");
    assert!(
        sheets[0]["href"]
            .as_str()
            .unwrap_or("")
            .ends_with("/static/vestibule.css"),
        "{sheets:?}"
    );
    assert!(
        sheets[0]["rules"].as_u64().unwrap() > 0,
        "the stylesheet has no rules: {sheets:?}"
    );
    let style = b
        .execute(
            "const s = getComputedStyle(document.querySelector('button[type=submit]'));
             return { background: s.backgroundColor, color: s.color, radius: s.borderTopLeftRadius };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(style["background"], "rgb(45, 91, 227)", "button not styled: {style}");
    assert_eq!(style["color"], "rgb(255, 255, 255)", "button not styled: {style}");
    // The `.card` rule lays the form out as a bordered box, not the browser's default block.
    let card = b
        .execute(
            "const s = getComputedStyle(document.querySelector('main.card'));
             return { border: s.borderTopStyle, padding: s.paddingTop };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(card["border"], "solid", "{card}");
    assert_eq!(card["padding"], "32px", "{card}");

    // A screenshot of what a person sees: a real PNG of the window's size, with more than a blank page in it.
    let png = b.screenshot().await.unwrap();
    let path = env.dir.0.join("login.png");
    std::fs::write(&path, &png).unwrap();
    let _ = std::fs::write("/tmp/vestibule-login.png", &png);
    let on_disk = std::fs::read(&path).unwrap();
    assert!(
        on_disk.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {:?}",
        &on_disk[..on_disk.len().min(8)]
    );
    assert!(on_disk.len() > 5 * 1024, "screenshot is only {} bytes", on_disk.len());
    assert_eq!(&on_disk[12..16], b"IHDR");
    let width = u32::from_be_bytes(on_disk[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(on_disk[20..24].try_into().unwrap());
    assert!(
        width >= WIDTH / 2 && height >= HEIGHT / 2,
        "screenshot is {width}x{height}"
    );

    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_account_and_sign_out_by_clicking() {
    let env = Env::start().await;
    let b = env.b();

    // Not signed in yet.
    b.goto(&env.url("/me")).await.unwrap();
    assert_eq!(env.page_json().await["error"], "unauthenticated");

    env.fill_login("alice", PASSWORD).await;
    env.click_button("Sign in").await;
    // The browser follows the redirect to `next` and sends the session cookie it was given.
    env.wait_for_path("/me").await;
    let me = env.page_json().await;
    assert_eq!(me["display_name"], "alice", "{me}");
    assert_eq!(me["email"], "alice@example.org", "{me}");
    assert_eq!(me["identities"][0]["source"], "local", "{me}");

    b.goto(&env.url("/account")).await.unwrap();
    env.wait_for_path("/account").await;
    let h1 = b.wait().at_most(WAIT).for_element(Locator::Css("h1")).await.unwrap();
    assert_eq!(h1.text().await.unwrap(), "alice");
    let sessions = b.find(Locator::Css("ul.sessions")).await.unwrap().text().await.unwrap();
    assert!(sessions.contains("This session"), "{sessions}");
    // The session was recorded with this browser's own user agent.
    assert!(sessions.contains("HeadlessChrome"), "{sessions}");

    env.click_button("Sign out").await;
    env.wait_for_path("/login").await;
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("input[name=username]"))
        .await
        .unwrap();

    b.goto(&env.url("/me")).await.unwrap();
    assert_eq!(env.page_json().await["error"], "unauthenticated");
    // And the account page sends the browser back to sign in.
    b.goto(&env.url("/account")).await.unwrap();
    env.wait_for_path("/login?next=/account").await;

    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_shows_the_generic_message_and_no_session() {
    let env = Env::start().await;
    let b = env.b();
    env.fill_login("alice", "not the password").await;
    env.click_button("Sign in").await;

    let alert = b
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("p.error[role=alert]"))
        .await
        .unwrap();
    assert_eq!(alert.text().await.unwrap(), GENERIC_FAILURE);
    // Still on the form (the POST's answer), the username kept, the password not.
    let at = b.current_url().await.unwrap();
    assert_eq!(at.path(), "/login/local", "{at}");
    let user = b.find(Locator::Css("input[name=username]")).await.unwrap();
    assert_eq!(user.prop("value").await.unwrap().as_deref(), Some("alice"));
    let pass = b.find(Locator::Css("input[name=password]")).await.unwrap();
    assert_eq!(pass.prop("value").await.unwrap().as_deref(), Some(""));
    // An unknown user reads exactly the same.
    let user = b.find(Locator::Css("input[name=username]")).await.unwrap();
    user.clear().await.unwrap();
    user.send_keys("nobody").await.unwrap();
    pass.send_keys(PASSWORD).await.unwrap();
    env.click_button("Sign in").await;
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//input[@name='username' and @value='nobody']"))
        .await
        .unwrap();
    let alert = b.find(Locator::Css("p.error[role=alert]")).await.unwrap();
    assert_eq!(alert.text().await.unwrap(), GENERIC_FAILURE);

    b.goto(&env.url("/me")).await.unwrap();
    assert_eq!(env.page_json().await["error"], "unauthenticated");

    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_page_cannot_be_framed_by_another_origin() {
    let env = Env::start().await;
    let b = env.b();

    // Another origin (another port) whose page frames the login page, and, as a control, a frameable page of
    // its own with the same form field, so that the check below is shown to see into a frame that did load.
    let login = env.url("/login");
    let app = axum::Router::new()
        .route(
            "/frame",
            axum::routing::get(move || async move {
                axum::response::Html(format!(
                    "<!doctype html><title>framer</title>\
                     <iframe id=f src=\"{login}\" onload=\"document.body.dataset.loaded='yes'\"></iframe>"
                ))
            }),
        )
        .route(
            "/control",
            axum::routing::get(|| async {
                axum::response::Html(
                    "<!doctype html><title>control</title>\
                     <iframe id=f src=\"/inner\" onload=\"document.body.dataset.loaded='yes'\"></iframe>",
                )
            }),
        )
        .route(
            "/inner",
            axum::routing::get(|| async { axum::response::Html("<form><input name=username></form>") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = format!("http://{}", listener.local_addr().unwrap());
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });

    // The control: a frameable page's field is found inside its frame.
    b.goto(&format!("{other}/control")).await.unwrap();
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("body[data-loaded=yes]"))
        .await
        .unwrap();
    b.find(Locator::Id("f")).await.unwrap().enter_frame().await.unwrap();
    b.find(Locator::Css("input[name=username]"))
        .await
        .expect("control: the field of a frameable page is visible in its frame");
    b.enter_parent_frame().await.unwrap();

    // The login page: the frame finished (its load event fired) but holds no login form.
    b.goto(&format!("{other}/frame")).await.unwrap();
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("body[data-loaded=yes]"))
        .await
        .unwrap();
    b.find(Locator::Id("f")).await.unwrap().enter_frame().await.unwrap();
    let found = b.find_all(Locator::Css("input[name=username]")).await.unwrap();
    assert!(
        found.is_empty(),
        "the login form rendered inside another origin's frame"
    );
    let forms = b.find_all(Locator::Css("form")).await.unwrap();
    assert!(forms.is_empty(), "a form rendered inside another origin's frame");
    b.enter_parent_frame().await.unwrap();

    serving.abort();
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_is_changed_from_the_account_page_and_the_mailed_link() {
    let env = Env::start().await;
    let b = env.b();
    env.fill_login("alice", PASSWORD).await;
    env.click_button("Sign in").await;
    env.wait_for_path("/me").await;

    // The form as Chromium renders it: type the address, click, land back on the account page.
    b.goto(&env.url("/account")).await.unwrap();
    // The form is folded under its summary, as a person finds it.
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//summary[normalize-space()='Use another email address']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let field = b
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(
            "form[action='/account/email'] input[name=email][type=email]",
        ))
        .await
        .unwrap();
    field.send_keys("nora@example.org").await.unwrap();
    env.click_button("Change email address").await;
    env.wait_for_path("/account?done=email_change_sent").await;
    let body = b.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    assert!(body.contains("A confirmation link is on its way"), "{body}");
    assert!(
        body.contains("Waiting for confirmation: nora@example.org (pending"),
        "{body}"
    );
    b.goto(&env.url("/me")).await.unwrap();
    assert_eq!(env.page_json().await["email"], "alice@example.org");

    // The link from the development outbox, opened in the same browser.
    let outbox = env.dir.0.join("vestibule-outbox");
    let mail = vestibule_tests::smtp::wait_for_eml(&outbox, |m| {
        m.contains("Subject: Confirm your new email address") && m.contains("nora@example.org")
    });
    let link = vestibule_tests::smtp::link_in(&mail, &env.server.base, "email/verify").unwrap();
    b.goto(&link).await.unwrap();
    // Opening it asks; the button confirms.
    b.find(Locator::XPath("//button[contains(., 'Confirm the change')]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Waits for the answer's page: reading the body at once could read the form's page as it goes away.
    let confirmed = b
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//p[contains(., 'is confirmed')]"))
        .await
        .unwrap();
    let body = confirmed.text().await.unwrap();
    assert!(body.contains("nora@example.org is confirmed"), "{body}");
    b.goto(&env.url("/me")).await.unwrap();
    assert_eq!(env.page_json().await["email"], "nora@example.org");
    b.goto(&env.url("/account")).await.unwrap();
    let body = b.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    assert!(
        body.contains("nora@example.org")
            && !body.contains("Waiting for confirmation")
            && !body.contains("not confirmed"),
        "{body}"
    );

    env.finish().await;
}

/// The red, green and blue of the screenshot's pixel at (`x`, `y`) in device pixels.
fn pixel(png_bytes: &[u8], x: u32, y: u32) -> [u8; 3] {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("a screenshot in {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    assert!(
        x < info.width && y < info.height,
        "({x}, {y}) outside {}x{}",
        info.width,
        info.height
    );
    let at = (y as usize * info.line_size) + x as usize * channels;
    [buf[at], buf[at + 1], buf[at + 2]]
}

/// A point just inside an element's top left corner, in the screenshot's device pixels.
async fn inside_corner_of(b: &Client, css: &str) -> (u32, u32) {
    let at = b
        .execute(
            "const r = document.querySelector(arguments[0]).getBoundingClientRect(); const d = devicePixelRatio;
             return [Math.round((r.left + 8) * d), Math.round((r.top + 8) * d)];",
            vec![json!(css)],
        )
        .await
        .unwrap();
    (at[0].as_u64().unwrap() as u32, at[1].as_u64().unwrap() as u32)
}

/// `[ui] templates`: an override of base.html changes the login page a person sees. The override puts a banner of
/// the operator's logo (a solid magenta SVG, served from `/static/logo` under the unchanged CSP) above the
/// built-in login form: in Chromium the banner is there in the DOM and magenta in the screenshot, the title is
/// the override's, and the login form still works; the same server configuration without the override shows the
/// built-in header and no magenta there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_override_changes_the_login_page_in_the_browser() {
    const MAGENTA: [u8; 3] = [255, 0, 170];
    let logo = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\" preserveAspectRatio=\"none\">\
                <rect width=\"10\" height=\"10\" fill=\"#ff00aa\"/></svg>";
    let config = "[database]\nurl = \"sqlite://{dir}/v.db\"\n\n[ui]\nproduct_name = \"Acme Login\"\n\
                  logo = \"{dir}/logo.svg\"\n";
    let with_override = TempDir::new("vestibule-browser-override");
    std::fs::write(with_override.0.join("logo.svg"), logo).unwrap();
    std::fs::create_dir(with_override.0.join("templates")).unwrap();
    std::fs::write(
        with_override.0.join("templates/base.html"),
        "<!doctype html>\n<html lang=\"{{ ui.lang }}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{% block title %}{% endblock %} — {{ ui.product_name }} portal</title>\n\
         <link rel=\"stylesheet\" href=\"{{ mount }}/static/vestibule.css\">\n</head>\n<body>\n\
         <header id=\"acme-banner\"><img src=\"{{ mount }}/static/logo\" alt=\"{{ ui.product_name }}\" width=\"600\" height=\"80\"></header>\n\
         <main class=\"card\">{% block content %}{% endblock %}</main>\n</body>\n</html>\n",
    )
    .unwrap();
    let plain = TempDir::new("vestibule-browser-plain");
    std::fs::write(plain.0.join("logo.svg"), logo).unwrap();
    let overridden = Server::start(
        Path::new(BIN),
        &with_override.0,
        &format!("{config}templates = \"{{dir}}/templates\"\n"),
    );
    overridden.add_user("alice", "alice@example.org", PASSWORD);
    let builtin = Server::start(Path::new(BIN), &plain.0, config);
    let chrome = Chrome::start().await;
    let b = chrome.client();

    b.goto(&format!("{}/login", overridden.base)).await.unwrap();
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#acme-banner img"))
        .await
        .unwrap();
    assert_eq!(b.title().await.unwrap(), "Sign in — Acme Login portal");
    let shown = b
        .execute(
            "const i = document.querySelector('#acme-banner img');
             return { complete: i.complete, width: i.naturalWidth, brand: document.querySelectorAll('header.brand').length };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(shown["complete"], true, "{shown}");
    assert!(
        shown["width"].as_u64().unwrap() > 0,
        "the logo loaded under the CSP: {shown}"
    );
    assert_eq!(shown["brand"], 0, "the built-in header is replaced: {shown}");
    let (x, y) = inside_corner_of(b, "#acme-banner img").await;
    let png = b.screenshot().await.unwrap();
    let _ = std::fs::write("/tmp/vestibule-login-override.png", &png);
    assert_eq!(pixel(&png, x, y), MAGENTA, "the override's banner in the screenshot");

    // The built-in login form inside the operator's frame still signs in.
    b.find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    b.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    b.find(Locator::Css("form.source button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let account = url::Url::parse(&format!("{}/account", overridden.base)).unwrap();
    b.wait().at_most(WAIT).for_url(&account).await.unwrap();
    b.find(Locator::Css("#acme-banner")).await.unwrap();

    // The same configuration without the override: the built-in frame, and no magenta where the banner was.
    b.goto(&format!("{}/login", builtin.base)).await.unwrap();
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("header.brand img"))
        .await
        .unwrap();
    assert_eq!(b.title().await.unwrap(), "Sign in · Acme Login");
    assert!(b.find(Locator::Css("#acme-banner")).await.is_err());
    let png = b.screenshot().await.unwrap();
    assert_ne!(pixel(&png, x, y), MAGENTA, "the built-in page differs there");
    // And the built-in header shows the same logo, magenta too: the pixel check sees what it looks for.
    let (lx, ly) = inside_corner_of(b, "header.brand img").await;
    assert_eq!(pixel(&png, lx, ly), MAGENTA);

    chrome.finish().await;
    drop((overridden, builtin));
    drop((with_override, plain));
}
