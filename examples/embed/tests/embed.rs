//! The example app end to end, as a browser uses it: the app's router (`example_embed::app`, what
//! `cargo run -p example-embed` serves) on a free loopback port over a fresh SQLite file.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use example_embed::{DEMO_PASSWORD, DEMO_USER};
use vestibule::{Broker, GroupChange};
use vestibule_core::AccountId;
use vestibule_store::Store;
use vestibule_tests::browser::Browser;
use vestibule_tests::server::TempDir;

/// The app serving on 127.0.0.1:PORT; returns its URL. The folder holds the database and must outlive the test.
async fn serve(dir: &TempDir) -> String {
    serve_with_broker(dir).await.0
}

/// [`serve`], and the app's broker.
async fn serve_with_broker(dir: &TempDir) -> (String, Arc<Broker>) {
    let store = Store::connect(&format!("sqlite://{}/embed.db", dir.0.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (app, broker) = example_embed::app_and_broker(store, &base).await.unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    (base, broker)
}

#[tokio::test]
async fn the_demo_user_changes_the_password_from_the_account_page() {
    let dir = TempDir::new("example-embed");
    let base = serve(&dir).await;
    // The broker's pages are under /auth; the app's own pages are at the root.
    let mut b = Browser::new(&format!("{base}/auth"));
    let res = b.sign_in("local", DEMO_USER, DEMO_PASSWORD, "/").await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(b.get(&format!("{base}/")).await.body.contains("Hello, Demo User"));

    let account = b.get("/account").await;
    assert_eq!(account.status, 200, "{}", account.body);
    assert!(account.body.contains("Change password"), "{}", account.body);
    let token = account.csrf_token().unwrap();
    let res = b
        .post(
            "/account/password",
            &[
                ("csrf_token", &token),
                ("current_password", DEMO_PASSWORD),
                ("new_password", "a new demo password"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/auth/account?done=password"));
    assert_eq!(
        b.get_json(&format!("{base}/api/whoami")).await.status,
        200,
        "this session stays"
    );

    let mut old = Browser::new(&format!("{base}/auth"));
    assert_eq!(old.sign_in("local", DEMO_USER, DEMO_PASSWORD, "/").await.status, 401);
    let mut new = Browser::new(&format!("{base}/auth"));
    let res = new.sign_in("local", DEMO_USER, "a new demo password", "/").await;
    assert_eq!(res.status, 303, "{}", res.body);
    let me = new.get_json(&format!("{base}/api/whoami")).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["name"], "Demo User");
    assert_eq!(
        me.json()["app_user"],
        1,
        "the app's own user row, made by the account_created hook"
    );
}

#[tokio::test]
async fn the_admin_page_is_for_the_admins_group_and_the_apps_forms_check_csrf() {
    let dir = TempDir::new("example-embed");
    let (base, broker) = serve_with_broker(&dir).await;
    let mut b = Browser::new(&format!("{base}/auth"));
    assert_eq!(b.sign_in("local", DEMO_USER, DEMO_PASSWORD, "/").await.status, 303);

    // Not in `admins`: a 403 page for the browser, 403 JSON for an API client.
    let page = b.get(&format!("{base}/admin")).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("Not allowed"), "{}", page.body);
    let api = b.get_json(&format!("{base}/admin")).await;
    assert_eq!(api.status, 403);
    assert_eq!(api.json()["error"], "forbidden");

    // An operator assigns the group (what `vestibule user groups demo --add admins` does): the next request sees it.
    let me = b.get_json(&format!("{base}/api/whoami")).await.json();
    let id = AccountId::new(me["account"].as_str().unwrap()).unwrap();
    broker
        .change_assigned_groups(&id, &GroupChange::Add(vec!["admins".into()]), "example test")
        .await
        .unwrap();
    let page = b.get(&format!("{base}/admin")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Welcome, administrator Demo User"), "{}", page.body);

    // The app's own form: a forged post (no token, or a made-up one) is refused; the page's token is taken.
    let form = b.get(&format!("{base}/feedback")).await;
    let token = form.csrf_token().unwrap();
    let forged = b.post(&format!("{base}/feedback"), &[("message", "forged")]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let wrong = b
        .post(
            &format!("{base}/feedback"),
            &[("csrf_token", "x"), ("message", "forged")],
        )
        .await;
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    let sent = b
        .post(
            &format!("{base}/feedback"),
            &[("csrf_token", &token), ("message", "hello")],
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(sent.body.contains("5 characters received"), "{}", sent.body);

    // The app's own logout button posts the token to the broker's /auth/logout, and signs out.
    let home = b.get(&format!("{base}/")).await;
    assert!(home.body.contains("action=\"/auth/logout\""), "{}", home.body);
    let token = home.csrf_token().unwrap();
    let out = b.post("/logout", &[("csrf_token", &token)]).await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(b.get_json(&format!("{base}/api/whoami")).await.status, 401);
    assert!(b.get(&format!("{base}/")).await.body.contains("Hello, stranger"));
}

/// The app with its broker built from a TOML file (`example_embed::app_from_config`): the file's local source signs
/// in an account created in the file's database, the file's `[ui]` names the pages, and the app's hooks run.
#[tokio::test]
async fn the_broker_can_come_from_the_servers_toml_file() {
    let dir = TempDir::new("example-embed");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let text = format!(
        "[server]\npublic_url = \"{base}/auth\"\n\
         [database]\nurl = \"sqlite://{dir}/toml.db\"\n\
         [email]\noutbox_dir = \"{dir}/outbox\"\n\
         [ui]\nproduct_name = \"Acme Sign-in\"\n\
         [[sources]]\nkind = \"local\"\nid = \"staff\"\n",
        dir = dir.0.display()
    );
    let (app, broker) = example_embed::app_from_config(&text).await.unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    let hash = vestibule_local::PasswordHasher::new(Default::default())
        .unwrap()
        .hash("a toml password".to_owned().into())
        .await
        .unwrap();
    broker
        .create_local_account(
            &vestibule_store::NewLocalAccount {
                source: vestibule_core::SourceId::new("staff").unwrap(),
                username: "tom".into(),
                display_name: Some("Tom".into()),
                email: None,
                email_verified: false,
                password_hash: hash.into(),
            },
            "test",
        )
        .await
        .unwrap();

    let mut b = Browser::new(&format!("{base}/auth"));
    let login = b.get("/login").await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(login.body.contains("Acme Sign-in"), "{}", login.body);
    assert_eq!(b.get_json(&format!("{base}/api/whoami")).await.status, 401);
    assert_eq!(b.sign_in("staff", "tom", "wrong", "/").await.status, 401);
    let res = b.sign_in("staff", "tom", "a toml password", "/").await;
    assert_eq!(res.status, 303, "{}", res.body);
    let me = b.get_json(&format!("{base}/api/whoami")).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["name"], "Tom");
    assert_eq!(
        me.json()["app_user"],
        1,
        "the app's hooks run on the broker built from the file"
    );
}
