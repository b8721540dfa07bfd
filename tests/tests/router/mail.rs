//! The routes around mail, driven with `oneshot` over a broker with a local password source and an in-memory
//! mailer: a reset link moves its token out of the URL, `/me` and `/verify` on an address nobody verified, and a
//! mail queue without room.

use std::sync::{Arc, Mutex};

use axum::Router;
use http::StatusCode;
use vestibule::{Broker, ClientInfo, Mail, MailError, Mailer, Message};
use vestibule_axum::{HttpSettings, Vestibule};
use vestibule_core::{CredentialRepository, ExternalIdentity, PasswordChanger, SourceId, Subject};
use vestibule_local::{Argon2Settings, LocalConfig, LocalSource, PasswordHasher, PasswordPolicy};
use vestibule_store::{NewLocalAccount, Store};
use vestibule_tests::fakes::PasswordFake;

use super::{answer, get_req, post_req, Res};

/// Keeps what it is given, or, when `full`, has no room and takes nothing.
#[derive(Debug, Default)]
struct Outbox {
    mails: Mutex<Vec<Mail>>,
    full: bool,
}

impl Mailer for Outbox {
    fn queue(&self, mail: Mail) -> Result<(), MailError> {
        if self.full {
            return Err(MailError::QueueFull);
        }
        self.mails.lock().unwrap().push(mail);
        Ok(())
    }
    fn has_room(&self) -> bool {
        !self.full
    }
}

impl Outbox {
    fn take(&self) -> Vec<Mail> {
        std::mem::take(&mut *self.mails.lock().unwrap())
    }
}

struct MailApp {
    router: Router,
    broker: Arc<Broker>,
    outbox: Arc<Outbox>,
    _dir: vestibule_tests::server::TempDir,
}

impl MailApp {
    async fn send(&self, req: http::Request<axum::body::Body>) -> Res {
        let (status, headers, body) = answer(&self.router, req).await;
        Res { status, headers, body }
    }
}

/// The broker at `https://app.example.com/auth` (so cookies are `Secure` and prefixed): a local source with
/// "ann" (`ann@example.org`, verified, password "old password"), a directory `dir` whose "una" asserts
/// `ceo@corp.example` as verified though nothing lets `dir` vouch for that domain, and a directory `corp` that is
/// authoritative for `corp.example`, with "vic" (`vic@corp.example`). Requests get an id (`X-Request-Id`, and the
/// reference on error pages).
async fn mail_app(full: bool) -> MailApp {
    let dir = vestibule_tests::server::TempDir::new("vestibule-router-mail");
    let store = Store::connect(&format!("sqlite://{}/m.db", dir.0.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let hasher = Arc::new(
        PasswordHasher::new(Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap(),
    );
    let config = LocalConfig {
        id: SourceId::new("local").unwrap(),
        display_name: None,
        argon2: Default::default(),
        password: PasswordPolicy::default(),
    };
    let repo: Arc<dyn CredentialRepository> = Arc::new(store.clone());
    let local = Arc::new(LocalSource::new(&config, repo, hasher.clone()));
    let person = |source: &str, subject: &str, login: &str, email: &str| {
        ExternalIdentity::new(SourceId::new(source).unwrap(), Subject::new(subject).unwrap())
            .with_login(login)
            .with_email(email, true)
    };
    let unvouched = PasswordFake::new("dir").user(
        "una",
        "una's password",
        person("dir", "una-1", "una", "ceo@corp.example"),
    );
    let corp = PasswordFake::new("corp").user(
        "vic",
        "vic's password",
        person("corp", "vic-1", "vic", "vic@corp.example"),
    );
    let outbox = Arc::new(Outbox {
        full,
        ..Outbox::default()
    });
    let broker = Broker::builder(store.clone(), "https://app.example.com/auth")
        .source(local.clone())
        .source(Arc::new(unvouched))
        .source_with_policy(
            Arc::new(corp),
            vestibule::SourcePolicy {
                authoritative_email_domains: vec!["corp.example".into()],
                ..Default::default()
            },
        )
        .password_changer(local as Arc<dyn PasswordChanger>)
        .mailer(outbox.clone())
        .build()
        .await
        .unwrap();
    let broker = Arc::new(broker);
    broker
        .create_local_account(
            &NewLocalAccount {
                source: SourceId::new("local").unwrap(),
                username: "ann".into(),
                display_name: Some("Ann".into()),
                email: Some("ann@example.org".into()),
                email_verified: true,
                password_hash: hasher.hash("old password".into()).await.unwrap().into(),
            },
            "test",
        )
        .await
        .unwrap();
    let settings = HttpSettings {
        mount: "/auth".into(),
        ..HttpSettings::default()
    };
    let auth = Vestibule::new(broker.clone(), settings);
    let router = Router::new()
        .nest("/auth", vestibule_axum::router(auth.clone()))
        .layer(auth.layer())
        .layer(axum::middleware::from_fn(vestibule_axum::with_request_id));
    MailApp {
        router,
        broker,
        outbox,
        _dir: dir,
    }
}

/// Signs in at a password source; returns the session cookie pair.
async fn sign_in(app: &MailApp, source: &str, username: &str, password: &str) -> String {
    let page = app.send(get_req("/auth/login", "", "text/html")).await;
    let pre = page.cookie_pair("__Host-vestibule-csrf");
    let form = format!(
        "csrf_token={}&username={username}&password={}",
        page.csrf(),
        password.replace(' ', "+").replace('\'', "%27")
    );
    let res = app.send(post_req(&format!("/auth/login/{source}"), &pre, &form)).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    res.cookie_pair("__Host-vestibule-session")
}

fn me(res: &Res) -> serde_json::Value {
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    serde_json::from_str(&res.body).unwrap()
}

/// An identity provider or directory may assert any address as verified; unless the operator lets that source
/// vouch for its domain, the account's address is not verified, and what the broker passes on says so: `/me`
/// flags it, `/verify` leaves `X-Vestibule-Email` out (an app behind the proxy must not take `ceo@corp.example`
/// from an account that merely claims it). Once the address is confirmed by mail, both say so at once.
#[tokio::test]
async fn an_unverified_address_is_flagged_in_me_and_left_out_of_verify() {
    let app = mail_app(false).await;
    let una = sign_in(&app, "dir", "una", "una's password").await;
    let body = me(&app.send(get_req("/auth/me", &una, "application/json")).await);
    assert_eq!(
        (&body["email"], &body["email_verified"]),
        (&serde_json::json!("ceo@corp.example"), &serde_json::json!(false)),
        "{body}"
    );
    let verify = app.send(get_req("/auth/verify", &una, "text/html")).await;
    assert_eq!(verify.status, StatusCode::OK);
    assert!(!verify.header("x-vestibule-user").is_empty());
    assert!(
        verify.headers.get("x-vestibule-email").is_none(),
        "an unverified address passed on: {:?}",
        verify.headers
    );

    // A source that may vouch for the domain: verified, and passed on.
    let vic = sign_in(&app, "corp", "vic", "vic's password").await;
    let body = me(&app.send(get_req("/auth/me", &vic, "application/json")).await);
    assert_eq!(body["email_verified"], serde_json::json!(true), "{body}");
    let verify = app.send(get_req("/auth/verify", &vic, "text/html")).await;
    assert_eq!(verify.header("x-vestibule-email"), "vic@corp.example");

    // Una confirms the address from its mailbox (entering it again on the account page mails a link).
    let account = app.send(get_req("/auth/account", &una, "text/html")).await;
    let asked = app
        .send(post_req(
            "/auth/account/email",
            &una,
            &format!("csrf_token={}&email=ceo%40corp.example", account.csrf()),
        ))
        .await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.body);
    let link = match app.outbox.take().as_slice() {
        [Mail {
            message: Message::VerifyEmail { link, .. },
            ..
        }] => link.expose().to_owned(),
        other => panic!("{other:?}"),
    };
    let path = link.strip_prefix("https://app.example.com").unwrap();
    assert_eq!(app.send(get_req(path, "", "text/html")).await.status, StatusCode::OK);
    let body = me(&app.send(get_req("/auth/me", &una, "application/json")).await);
    assert_eq!(body["email_verified"], serde_json::json!(true), "{body}");
    let verify = app.send(get_req("/auth/verify", &una, "text/html")).await;
    assert_eq!(verify.header("x-vestibule-email"), "ceo@corp.example");
}

/// A reset link's token for ann, asked through the broker (the route answers before the lookup runs).
async fn reset_token(app: &MailApp) -> String {
    let client = ClientInfo {
        ip: Some("192.0.2.7".into()),
        user_agent: None,
    };
    // Notices mailed before are not what this is about.
    app.outbox.take();
    app.broker
        .request_password_reset("ann", &client)
        .await
        .unwrap()
        .delivered()
        .await;
    let mails = app.outbox.take();
    let [Mail {
        message: Message::PasswordReset { link, .. },
        ..
    }] = mails.as_slice()
    else {
        panic!("{mails:?}")
    };
    link.expose()
        .strip_prefix("https://app.example.com/auth/reset/")
        .unwrap()
        .to_owned()
}

/// The reset cookie's `Set-Cookie`, if the response has one.
fn reset_cookie(res: &Res) -> Option<String> {
    res.cookie("__Secure-vestibule-reset")
}

/// `GET /reset/{token}` checks the token, moves it into a short-lived cookie only the reset page receives, and
/// sends the browser to a URL without it: the token is out of the address bar (and the history, and any
/// `Referer`) before the page is shown. The form there posts to the token-free URL; `POST /reset/{token}` still
/// works for a client that posts to the link itself.
#[tokio::test]
async fn a_reset_link_moves_its_token_out_of_the_url() {
    let app = mail_app(false).await;
    let token = reset_token(&app).await;

    let opened = app
        .send(get_req(&format!("/auth/reset/{token}"), "", "text/html"))
        .await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER, "{}", opened.body);
    assert_eq!(opened.header("location"), "/auth/reset-password");
    assert_eq!(opened.header("referrer-policy"), "no-referrer");
    assert_eq!(opened.header("cache-control"), "no-store");
    let cookie = reset_cookie(&opened).expect("the token moves into a cookie");
    let max_age: i64 = cookie
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1800).contains(&max_age), "no longer than the link: {cookie}");
    for attribute in [
        format!("__Secure-vestibule-reset={token}"),
        "Path=/auth/reset-password".into(),
        "HttpOnly".into(),
        "SameSite=Strict".into(),
        "Secure".into(),
    ] {
        assert!(cookie.split("; ").any(|a| a == attribute), "{attribute} in {cookie}");
    }
    let reset = cookie.split(';').next().unwrap().to_owned();

    let form = app.send(get_req("/auth/reset-password", &reset, "text/html")).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(!form.body.contains(&token), "the page carries no token");
    assert!(form.body.contains("action=\"/auth/reset-password\""), "{}", form.body);
    assert_eq!(form.header("referrer-policy"), "no-referrer");
    let cookies = format!("{reset}; {}", form.cookie_pair("__Host-vestibule-csrf"));
    let post = |password: &str, cookies: &str| {
        post_req(
            "/auth/reset-password",
            cookies,
            &format!("csrf_token={}&new_password={}", form.csrf(), password.replace(' ', "+")),
        )
    };

    // A password the policy refuses: the form again, the link (and its cookie) still good.
    let short = app.send(post("short", &cookies)).await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST, "{}", short.body);
    assert!(short.body.contains("at least 8 characters"), "{}", short.body);
    assert!(!short.body.contains(&token));
    assert!(reset_cookie(&short).is_none_or(|c| !c.contains("Max-Age=0")));
    let done = app.send(post("brand new password", &cookies)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Password set"), "{}", done.body);
    assert!(
        reset_cookie(&done).is_some_and(|c| c.contains("Max-Age=0")),
        "the used token's cookie is cleared: {:?}",
        done.headers
    );
    // Used: the same cookie opens nothing; no cookie at all opens nothing.
    let again = app.send(post("another new password", &cookies)).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    let csrf_only = form.cookie_pair("__Host-vestibule-csrf");
    let without = app.send(post("another new password", &csrf_only)).await;
    assert_eq!(without.status, StatusCode::BAD_REQUEST, "{}", without.body);
    let ann = ClientInfo::default();
    let local = SourceId::new("local").unwrap();
    assert!(app
        .broker
        .login_password(&local, "ann", &"brand new password".into(), &ann, None)
        .await
        .is_ok());

    // An unknown, used or malformed link is refused where it is opened, and plants no cookie.
    for bad in [token.clone(), "A".repeat(43), "not-a-token".into()] {
        let res = app.send(get_req(&format!("/auth/reset/{bad}"), "", "text/html")).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{bad}: {}", res.body);
        assert!(reset_cookie(&res).is_none(), "{bad}");
    }

    // The contract's `POST /reset/{token}` sets the password without the cookie.
    let token = reset_token(&app).await;
    let page = app.send(get_req("/auth/reset", "", "text/html")).await;
    let res = app
        .send(post_req(
            &format!("/auth/reset/{token}"),
            &page.cookie_pair("__Host-vestibule-csrf"),
            &format!("csrf_token={}&new_password=the+newest+password", page.csrf()),
        ))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(app
        .broker
        .login_password(&local, "ann", &"the newest password".into(), &ann, None)
        .await
        .is_ok());
}

/// A queue without room: every reset request is refused with 503, honestly, and with the same page whatever was
/// asked for (the page's reference, the request's own id, aside), so the refusal tells nothing about accounts.
#[tokio::test]
async fn a_full_mail_queue_refuses_every_reset_request_alike() {
    let app = mail_app(true).await;
    let page = app.send(get_req("/auth/reset", "", "text/html")).await;
    assert_eq!(page.status, StatusCode::OK);
    let pre = page.cookie_pair("__Host-vestibule-csrf");
    let mut bodies = Vec::new();
    for login in ["ann", "ann@example.org", "nobody", "nobody@example.org", ""] {
        let res = app
            .send(post_req(
                "/auth/reset",
                &pre,
                &format!("csrf_token={}&login={}", page.csrf(), login.replace('@', "%40")),
            ))
            .await;
        assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{login}: {}", res.body);
        let id = res.header("x-request-id").to_owned();
        assert!(!id.is_empty());
        bodies.push(res.body.replace(&id, "REFERENCE"));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:#?}");
    assert!(app.outbox.take().is_empty());
}
