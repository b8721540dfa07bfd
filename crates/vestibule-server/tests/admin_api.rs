//! The admin API of the real `vestibule` binary on PostgreSQL, with `[admin] groups` from its TOML: an
//! administrator creates an admin token on the account page and uses it with an HTTP client as `curl` would; what
//! the API changes is what the CLI sees (one set of broker operations); leaving the group closes the API to the
//! token; and the served OpenAPI document passes a real validator (swagger-parser), which does refuse a broken one.

#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use vestibule_tests::browser::Browser;
use vestibule_tests::pg::TempDatabase;
use vestibule_tests::server::{Server, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vestibule");
const PASSWORD: &str = "correct horse battery";

/// Puts the local identity of `account` in `groups`, as `vestibule user groups` (another branch) or a directory's
/// groups would.
async fn set_groups(db: &str, account: &str, groups: &[&str]) {
    let mut conn = PgConnection::connect(db).await.unwrap();
    sqlx::query("UPDATE identities SET groups_json = $1 WHERE account_id = $2")
        .bind(serde_json::to_string(groups).unwrap())
        .bind(account)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// An HTTP client for the API, as a script would use one.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/admin/api{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_works_through_the_api_of_the_real_server() {
    let pg = TempDatabase::create().await;
    let dir = TempDir::new("vestibule-admin-api");
    let server = Server::start(
        std::path::Path::new(BIN),
        &dir.0,
        &format!(
            "[database]\nurl = \"{}\"\n[admin]\ngroups = [\"admins\"]\n[[sources]]\nid = \"local\"\nkind = \"local\"\n",
            pg.url
        ),
    );
    let root = server.add_user("root", "root@example.org", PASSWORD);
    server.add_user("bob", "bob@example.org", PASSWORD);

    // The admin token, made on the account page by its owner (a fresh sign-in).
    let mut b = Browser::new(&server.base);
    assert_eq!(b.sign_in("local", "root", PASSWORD, "/account").await.status, 303);
    // After the sign-in, which records the groups the local source asserts (none, today).
    set_groups(&pg.url, &root, &["admins"]).await;
    let page = b.get("/account").await;
    let csrf = page.csrf_token().unwrap();
    let made = b
        .post(
            "/account/tokens",
            &[
                ("csrf_token", &csrf),
                ("name", "ops"),
                ("expires_in_days", "30"),
                ("scopes", "admin"),
            ],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let token = vestibule_tests::browser::shown_token(&made.body).unwrap();
    let api = Client {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        token,
    };

    let (status, shown) = api
        .send(reqwest::Method::GET, "/accounts/bob%40example.org", None)
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["identities"][0]["login"], "bob");
    let (status, created) = api
        .send(
            reqwest::Method::POST,
            "/accounts",
            Some(json!({"username": "carol", "password": PASSWORD, "email": "carol@example.org", "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, _) = api.send(reqwest::Method::POST, "/accounts/bob/disable", None).await;
    assert_eq!(status, 200);

    // The CLI sees what the API did, and the audit names the token.
    let out = server.cli(&["user", "show", "bob"], None);
    assert!(out.stdout.contains("status: disabled"), "{}", out.stdout);
    let out = server.cli(&["audit", "--event", "account_disabled", "--json"], None);
    let row: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert!(
        row["detail"].as_str().unwrap().starts_with("api:") && row["detail"].as_str().unwrap().ends_with(&root),
        "{row}"
    );
    // Carol signs in with the password given to the API.
    let mut carol = Browser::new(&server.base);
    assert_eq!(carol.sign_in("local", "carol", PASSWORD, "/me").await.status, 303);
    assert_eq!(carol.get_json("/me").await.json()["id"], created["id"]);
    let (status, page) = api.send(reqwest::Method::GET, "/audit?limit=2", None).await;
    assert_eq!((status, page["events"].as_array().unwrap().len()), (200, 2));
    assert!(page["next"].is_i64(), "{page}");

    // Search, groups and a deletion on PostgreSQL, seen by the CLI and by carol's session.
    let (status, listed) = api.send(reqwest::Method::GET, "/accounts?search=CAROL", None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["accounts"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["accounts"][0]["id"], created["id"]);
    let (status, set) = api
        .send(
            reqwest::Method::PUT,
            "/accounts/bob/groups",
            Some(json!({"groups": ["ops"]})),
        )
        .await;
    assert_eq!((status, set["after"].clone()), (200, json!(["ops"])), "{set}");
    let out = server.cli(&["user", "groups", "bob", "--json"], None);
    let groups: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(groups["assigned_groups"], json!(["ops"]), "{}", out.stdout);
    let (status, deleted) = api.send(reqwest::Method::DELETE, "/accounts/carol", None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["removed"]["sessions"], 1, "{deleted}");
    assert_eq!(
        carol.get_json("/me").await.status,
        401,
        "the deleted account's session still works"
    );
    assert!(!server.cli(&["user", "show", "carol"], None).success);

    // Out of the group (in the database, as another node or the CLI would leave it): the next request is refused.
    set_groups(&pg.url, &root, &[]).await;
    let (status, refused) = api.send(reqwest::Method::GET, "/accounts/bob", None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{refused}"
    );

    // The document, served without a token, passes a real validator.
    let doc = reqwest::get(format!("{}/admin/api/openapi.json", server.base))
        .await
        .unwrap();
    assert_eq!(doc.status(), 200);
    let doc: Value = doc.json().await.unwrap();
    assert_eq!(doc["servers"][0]["url"], server.base);
    let valid = vestibule_tests::openapi::validate(&doc.to_string());
    assert!(valid.is_ok(), "{valid:?}");
    // The validator is not a rubber stamp: the same document with a dangling reference is refused.
    let mut broken = doc.clone();
    broken["components"]["schemas"]
        .as_object_mut()
        .unwrap()
        .remove("ErrorBody");
    let refused = vestibule_tests::openapi::validate(&broken.to_string());
    assert!(refused.as_ref().is_err_and(|e| e.contains("ErrorBody")), "{refused:?}");

    drop(server);
    pg.drop_db().await;
}
