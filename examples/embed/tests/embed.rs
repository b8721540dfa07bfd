//! The example app end to end, as a browser uses it: the app's router (`example_embed::app`, what
//! `cargo run -p example-embed` serves) on a free loopback port over a fresh SQLite file.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use example_embed::{DEMO_PASSWORD, DEMO_USER};
use vestibule_store::Store;
use vestibule_tests::browser::Browser;
use vestibule_tests::server::TempDir;

/// The app serving on 127.0.0.1:PORT; returns its URL. The folder holds the database and must outlive the test.
async fn serve(dir: &TempDir) -> String {
    let store = Store::connect(&format!("sqlite://{}/embed.db", dir.0.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = example_embed::app(store, &base).await.unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    base
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
}
