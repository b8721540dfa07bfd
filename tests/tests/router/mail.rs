//! The routes around mail, driven with `oneshot` over a broker with a local password source and an in-memory
//! mailer: a reset link moves its token out of the URL, `/me` and `/verify` on an address nobody verified, and a
//! mail queue without room.

use std::sync::{Arc, Mutex};

use axum::Router;
use http::StatusCode;
use vestibule::{Broker, Mail, MailError, Mailer, Message};
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
