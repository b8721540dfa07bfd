//! The admin API through the broker's router, over a real SQLite store: an administrator's token (created on the
//! account page) on every endpoint, JSON in and out; what is not an administrator's token refused with stable
//! codes (no token, a bad one, a session cookie, a token without the scope, an owner who left the admin group, a
//! disabled owner); bad tokens throttled per address; audit paging over more rows than a page; and the OpenAPI
//! document against the router, route by route.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http::{Request, StatusCode};
use serde_json::{json, Value};
use vestibule::{AdminSettings, Broker};
use vestibule_axum::{HttpSettings, Vestibule};
use vestibule_core::{CredentialRepository, ExternalIdentity, SourceId, Subject};
use vestibule_local::{Argon2Settings, LocalConfig, LocalSource, PasswordHasher, PasswordPolicy};
use vestibule_store::Store;
use vestibule_tests::fakes::PasswordFake;
use vestibule_tests::server::TempDir;

const API: &str = "/auth/admin/api";

fn person(subject: &str, groups: &[&str]) -> ExternalIdentity {
    ExternalIdentity::new(SourceId::new("dir").unwrap(), Subject::new(subject).unwrap())
        .with_groups(groups.iter().map(|g| g.to_string()).collect())
}

struct AdminApp {
    router: Router,
    broker: Arc<Broker>,
    store: Store,
    directory: Arc<PasswordFake>,
    _dir: TempDir,
}

/// A directory where "root" is in `admins` (the admin group) and "ann" in `staff`, and a local source to create
/// accounts in; the broker's routes under `/auth`, with the app's own session layer on top (as an embedding app
/// applies it).
async fn admin_app() -> AdminApp {
    let dir = TempDir::new("vestibule-admin-api");
    let store = Store::connect(&format!("sqlite://{}/a.db", dir.0.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let directory = Arc::new(
        PasswordFake::new("dir")
            .user("root", "root password", person("root-1", &["admins"]))
            .user("ann", "ann password", person("ann-1", &["staff"])),
    );
    let local_config = LocalConfig {
        id: SourceId::new("local").unwrap(),
        display_name: None,
        // Cheap hashes: these tests are about the API, not argon2.
        argon2: Argon2Settings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        password: PasswordPolicy::default(),
    };
    let repo: Arc<dyn CredentialRepository> = Arc::new(store.clone());
    let local = Arc::new(LocalSource::new(
        &local_config,
        repo,
        Arc::new(PasswordHasher::new(local_config.argon2).unwrap()),
    ));
    let broker = Arc::new(
        Broker::builder(store.clone(), "https://app.example.com/auth")
            .source(directory.clone())
            .source(local.clone())
            .password_changer(local)
            .admin(AdminSettings {
                groups: vec!["admins".into()],
            })
            .build()
            .await
            .unwrap(),
    );
    let auth = Vestibule::new(broker.clone(), HttpSettings::default());
    let router = auth.nest_into(Router::new()).layer(auth.layer());
    AdminApp {
        router,
        broker,
        store,
        directory,
        _dir: dir,
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {} {}", self.status, self.body))
    }
    /// The stable error code of an error answer (checking its shape on the way).
    fn code(&self) -> String {
        let v = self.json();
        assert!(v["error"]["message"].is_string(), "{}", self.body);
        v["error"]["code"].as_str().unwrap().to_owned()
    }
    /// The status and code of an error answer, to compare with the expected pair.
    fn refusal(&self) -> (u16, String) {
        (self.status.as_u16(), self.code())
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// A request from 192.0.2.7 (the address throttling counts), with optional bearer token, cookie and JSON body.
fn request(method: &str, path: &str, bearer: Option<&str>, cookie: &str, body: Option<&str>) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(path);
    if let Some(t) = bearer {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    if !cookie.is_empty() {
        r = r.header("cookie", cookie);
    }
    if body.is_some() {
        r = r.header("content-type", "application/json");
    }
    let mut req = r.body(Body::from(body.unwrap_or("").to_owned())).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 7], 40000))));
    req
}

async fn call(app: &AdminApp, req: Request<Body>) -> Answer {
    let (status, headers, body) = super::answer(&app.router, req).await;
    Answer { status, headers, body }
}

async fn api(app: &AdminApp, method: &str, path: &str, token: &str, body: Option<Value>) -> Answer {
    let body = body.map(|b| b.to_string());
    api_raw(app, method, path, token, body.as_deref()).await
}

/// As [`api`], with the body as bytes (which need not be JSON).
async fn api_raw(app: &AdminApp, method: &str, path: &str, token: &str, body: Option<&str>) -> Answer {
    call(app, request(method, &format!("{API}{path}"), Some(token), "", body)).await
}

fn cookie_pair(res: &Answer, name: &str) -> String {
    res.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn csrf(body: &str) -> String {
    body.split("name=\"csrf_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// Signs `login` in through the directory's form; the session cookie pair.
async fn sign_in(app: &AdminApp, login: &str) -> String {
    let page = call(app, request("GET", "/auth/login", None, "", None)).await;
    let pre = cookie_pair(&page, "__Host-vestibule-csrf");
    let mut req = request("POST", "/auth/login/dir", None, &pre, None);
    *req.body_mut() = Body::from(format!(
        "csrf_token={}&username={login}&password={login}+password",
        csrf(&page.body)
    ));
    req.headers_mut()
        .insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
    let res = call(app, req).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    cookie_pair(&res, "__Host-vestibule-session")
}

/// Creates a token on the account page, as its owner would: the page's answer.
async fn token_form(app: &AdminApp, session: &str, scopes: &str) -> Answer {
    let page = call(app, request("GET", "/auth/account", None, session, None)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let mut req = request("POST", "/auth/account/tokens", None, session, None);
    *req.body_mut() = Body::from(format!(
        "csrf_token={}&name=ops&expires_in_days=7&scopes={}",
        csrf(&page.body),
        scopes.replace(' ', "+")
    ));
    req.headers_mut()
        .insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
    call(app, req).await
}

/// A token with `scopes` for `login`, created on the account page.
async fn token_of(app: &AdminApp, login: &str, scopes: &str) -> String {
    let session = sign_in(app, login).await;
    let page = token_form(app, &session, scopes).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    vestibule_tests::browser::shown_token(&page.body).unwrap()
}

#[tokio::test]
async fn an_administrator_token_reaches_every_endpoint_with_json_in_and_out() {
    let app = admin_app().await;
    // Someone outside the admin group is refused on the account page, in words that say why.
    let ann = sign_in(&app, "ann").await;
    let refused = token_form(&app, &ann, "admin").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("Not an administrator"), "{}", refused.body);

    let root = token_of(&app, "root", "admin").await;
    let root_id = app.store.recent_audit(1).await.unwrap().remove(0).account_id.unwrap();
    let token_id = app
        .store
        .tokens_of(&vestibule_core::AccountId::new(root_id.as_str()).unwrap())
        .await
        .unwrap()[0]
        .id
        .clone();
    let by = format!("api:{token_id} by {root_id}");

    // Create.
    let created = api(
        &app,
        "POST",
        "/accounts",
        &root,
        Some(json!({"username": "bob", "password": "correct horse battery", "email": "bob@example.org", "email_verified": true})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.header("content-type"), "application/json");
    let bob = created.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(created.json()["username"], "bob");
    assert_eq!(created.json()["confirmation_sent"], false);
    let row = app.store.recent_audit(1).await.unwrap().remove(0);
    assert_eq!(
        (row.event.as_str(), row.account_id.as_deref()),
        ("account_created", Some(bob.as_str()))
    );
    assert_eq!(row.detail.as_deref(), Some(by.as_str()));
    // Bob can sign in with that password: it was hashed by the local source.
    let signed = app
        .broker
        .login_password(
            &SourceId::new("local").unwrap(),
            "bob",
            &"correct horse battery".into(),
            &Default::default(),
            None,
        )
        .await;
    assert!(signed.is_ok(), "{signed:?}");

    // Refusals of a create, each with its code.
    for (body, status, code) in [
        (
            json!({"username": "BOB", "password": "correct horse battery"}),
            409,
            "conflict",
        ),
        (json!({"username": "eve", "password": "short"}), 400, "invalid_request"),
        (
            json!({"username": "e ve", "password": "correct horse battery"}),
            400,
            "invalid_request",
        ),
        (
            json!({"username": "eve", "password": "correct horse battery", "role": "root"}),
            400,
            "invalid_request",
        ),
        (json!({"username": "eve"}), 400, "invalid_request"),
        (json!(["eve"]), 400, "invalid_request"),
    ] {
        let res = api(&app, "POST", "/accounts", &root, Some(body.clone())).await;
        assert_eq!(res.refusal(), (status, code.to_owned()), "{body}: {}", res.body);
    }
    let not_json = call(
        &app,
        request("POST", &format!("{API}/accounts"), Some(&root), "", Some("{")),
    )
    .await;
    assert_eq!(
        (not_json.status, not_json.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );

    // Show, by every form of target.
    for target in [
        bob.clone(),
        "bob".into(),
        "bob@example.org".into(),
        format!("local:{bob}"),
        "BOB@Example.org".into(),
    ] {
        let shown = api(&app, "GET", &format!("/accounts/{}", urlencode(&target)), &root, None).await;
        assert_eq!(shown.status, StatusCode::OK, "{target}: {}", shown.body);
        let v = shown.json();
        assert_eq!(v["id"], bob.as_str(), "{target}");
        assert_eq!(v["email"], "bob@example.org");
        assert_eq!(v["email_verified"], true);
        assert_eq!(v["disabled"], false);
        assert_eq!(v["identities"][0]["source"], "local");
        assert_eq!(v["identities"][0]["login"], "bob");
    }
    let root_shown = api(&app, "GET", "/accounts/dir:root-1", &root, None).await.json();
    assert_eq!(root_shown["groups"], json!(["admins"]));
    // `sessions` is the list of the account's sessions: root's one sign-in.
    assert_eq!(root_shown["sessions"].as_array().unwrap().len(), 1);
    let missing = api(&app, "GET", "/accounts/nobody%40example.org", &root, None).await;
    assert_eq!(
        (missing.status, missing.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    // An address two accounts share names neither: both are offered.
    let carol = api(
        &app,
        "POST",
        "/accounts",
        &root,
        Some(json!({"username": "carol", "password": "correct horse battery", "email": "bob@example.org"})),
    )
    .await
    .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let two = api(&app, "GET", "/accounts/bob%40example.org", &root, None).await;
    assert_eq!((two.status, two.code().as_str()), (StatusCode::CONFLICT, "ambiguous"));
    let mut candidates: Vec<String> = serde_json::from_value(two.json()["error"]["candidates"].clone()).unwrap();
    candidates.sort();
    let mut expected = vec![bob.clone(), carol];
    expected.sort();
    assert_eq!(candidates, expected);

    // Disable and enable.
    let disabled = api(&app, "POST", &format!("/accounts/{bob}/disable"), &root, None).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    // Bob's one session (the sign-in above) ends with it.
    assert_eq!(
        disabled.json(),
        json!({"id": bob, "disabled": true, "sessions_ended": 1})
    );
    assert_eq!(
        api(&app, "GET", &format!("/accounts/{bob}"), &root, None).await.json()["disabled"],
        true
    );
    let row = app.store.recent_audit(1).await.unwrap().remove(0);
    assert_eq!(
        (row.event.as_str(), row.detail.as_deref()),
        ("account_disabled", Some(by.as_str()))
    );
    let enabled = api(&app, "POST", "/accounts/bob/enable", &root, None).await;
    assert_eq!(
        enabled.json(),
        json!({"id": bob, "disabled": false, "sessions_ended": 0})
    );
    let row = app.store.recent_audit(1).await.unwrap().remove(0);
    assert_eq!(
        (row.event.as_str(), row.detail.as_deref()),
        ("account_enabled", Some(by.as_str()))
    );
    let gone = api(&app, "POST", "/accounts/nobody/disable", &root, None).await;
    assert_eq!(gone.code(), "not_found");

    // The audit log, filtered as the CLI filters.
    let page = api(&app, "GET", "/audit?account=bob&limit=10", &root, None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let events: Vec<String> = page.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        events,
        [
            "account_enabled",
            "account_disabled",
            "login_success",
            "account_created"
        ]
    );
    assert_eq!(page.json()["next"], Value::Null);
    let created_only = api(&app, "GET", "/audit?event=account_created", &root, None)
        .await
        .json();
    assert!(created_only["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["event"] == "account_created"));
    assert_eq!(
        created_only["events"].as_array().unwrap().len(),
        4,
        "root, ann, bob, carol"
    );
    let from_here = api(&app, "GET", "/audit?ip=192.0.2.7&event=token_created", &root, None)
        .await
        .json();
    assert_eq!(from_here["events"][0]["detail"], format!("{token_id} (scope admin)"));
    let later = api(&app, "GET", "/audit?since=4102444800", &root, None).await.json();
    assert_eq!(later["events"], json!([]));
    for (query, code) in [
        ("event=nope", "invalid_request"),
        ("limit=0", "invalid_request"),
        ("limit=1001", "invalid_request"),
        ("limit=ten", "invalid_request"),
        ("account=nobody", "not_found"),
        ("account=bob%40example.org", "ambiguous"),
    ] {
        let res = api(&app, "GET", &format!("/audit?{query}"), &root, None).await;
        assert_eq!(res.code(), code, "{query}: {}", res.body);
    }
}

/// The newest audit row: its event and detail.
async fn last_event(app: &AdminApp) -> (String, String) {
    let row = app.store.recent_audit(1).await.unwrap().remove(0);
    (row.event, row.detail.unwrap_or_default())
}

fn ids_of(page: &Value) -> Vec<String> {
    page["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_operator_actions_of_the_cli_are_endpoints_with_their_refusals() {
    let app = admin_app().await;
    let root = token_of(&app, "root", "admin").await;
    let root_id = api(&app, "GET", "/accounts/dir:root-1", &root, None).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let root_account = vestibule_core::AccountId::new(root_id.as_str()).unwrap();
    let token_id = app.store.tokens_of(&root_account).await.unwrap()[0].id.clone();
    let by = format!("api:{token_id} by {root_id}");
    let bob = create(&app, &root, "bob").await;
    // Carol and dave share an address: a target naming it is ambiguous (below).
    let mut twins = Vec::new();
    for name in ["carol", "dave"] {
        let res = api(
            &app,
            "POST",
            "/accounts",
            &root,
            Some(json!({"username": name, "password": "correct horse battery", "email": "twins@example.org"})),
        )
        .await;
        twins.push(res.json()["id"].as_str().unwrap().to_owned());
    }
    let [carol, dave] = [twins[0].clone(), twins[1].clone()];

    // List: every account once, in id order, in the shape `show` starts with.
    let page = api(&app, "GET", "/accounts", &root, None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let mut expected = vec![root_id.clone(), bob.clone(), carol.clone(), dave.clone()];
    expected.sort();
    assert_eq!(ids_of(&page.json()), expected);
    assert_eq!(page.json()["next"], Value::Null);
    let listed = page.json()["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == bob.as_str())
        .cloned()
        .unwrap();
    assert_eq!(listed["identities"][0]["login"], "bob");
    assert_eq!(
        (listed["groups"].clone(), listed["assigned_groups"].clone()),
        (json!([]), json!([]))
    );
    let searched = api(&app, "GET", "/accounts?search=CAR", &root, None).await.json();
    assert_eq!(ids_of(&searched), vec![carol.clone()]);
    let wildcard = api(&app, "GET", "/accounts?search=%25", &root, None).await.json();
    assert_eq!(ids_of(&wildcard), Vec::<String>::new(), "`%` is taken literally");
    // Pages of one walk every account once.
    let mut walked = Vec::new();
    let mut query = "/accounts?limit=1".to_owned();
    loop {
        let page = api(&app, "GET", &query, &root, None).await.json();
        let ids = ids_of(&page);
        assert_eq!(ids.len(), 1, "{page}");
        walked.extend(ids);
        match page["next"].as_str() {
            Some(next) => query = format!("/accounts?limit=1&after={next}"),
            None => break,
        }
    }
    assert_eq!(walked, expected);
    for query in ["limit=0", "limit=1001", "limit=x", "after=not%20an%20id"] {
        let res = api(&app, "GET", &format!("/accounts?{query}"), &root, None).await;
        assert_eq!(
            (res.status, res.code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{query}: {}",
            res.body
        );
    }

    // Show: the full picture, never a secret.
    let ann_session = sign_in(&app, "ann").await;
    let ann_token = token_of(&app, "ann", "read").await;
    let shown = api(&app, "GET", "/accounts/dir:ann-1", &root, None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let ann = shown.json();
    let ann_id = ann["id"].as_str().unwrap().to_owned();
    let sessions = ann["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "two sign-ins: {ann}");
    assert_eq!(sessions[0]["id"].as_str().unwrap().len(), 16);
    assert_eq!(sessions[0]["ip"], "192.0.2.7");
    assert_eq!(sessions[0]["source"], "dir");
    assert!(sessions[0]["last_seen_at"].as_i64().unwrap() >= sessions[0]["created_at"].as_i64().unwrap());
    assert_eq!(ann["tokens"][0]["name"], "ops");
    assert_eq!(ann["tokens"][0]["scopes"], json!(["read"]));
    assert!(ann["tokens"][0]["last_used_at"].is_null());
    assert_eq!(
        ann["factors"],
        json!({"totp": false, "passkeys": [], "recovery_codes_left": 0})
    );
    assert_eq!(ann["groups"], json!(["staff"]));
    assert_eq!(ann["recent_audit"][0]["event"], "token_created");
    let session_value = ann_session.split_once('=').unwrap().1;
    let token_secret = ann_token.strip_prefix("vst_").unwrap();
    assert!(
        !shown.body.contains(session_value) && !shown.body.contains(token_secret),
        "a secret in {}",
        shown.body
    );

    // Groups: read, set, and what refuses a change.
    let groups = api(&app, "GET", &format!("/accounts/{bob}/groups"), &root, None).await;
    assert_eq!(groups.json(), json!({"id": bob, "assigned_groups": [], "groups": []}));
    let set = api(
        &app,
        "PUT",
        "/accounts/bob/groups",
        &root,
        Some(json!({"groups": ["ops", "dev", "ops"]})),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.json(), json!({"id": bob, "before": [], "after": ["dev", "ops"]}));
    assert_eq!(
        last_event(&app).await,
        ("groups_changed".into(), format!("{by}; before []; after [dev,ops]"))
    );
    assert_eq!(
        api(&app, "GET", "/accounts/bob/groups", &root, None).await.json(),
        json!({"id": bob, "assigned_groups": ["dev", "ops"], "groups": ["dev", "ops"]})
    );
    assert_eq!(
        api(&app, "GET", "/accounts/bob", &root, None).await.json()["assigned_groups"],
        json!(["dev", "ops"])
    );
    for (target, body, status, code) in [
        ("bob", json!({"groups": ["ops", "a,b"]}), 400, "invalid_request"),
        ("bob", json!({"groups": ["cn=admins,dc=x"]}), 400, "invalid_request"),
        ("bob", json!({"group": ["ops"]}), 400, "invalid_request"),
        ("bob", json!({}), 400, "invalid_request"),
        ("dir:ann-1", json!({"groups": ["ops"]}), 409, "not_local"),
        ("nobody", json!({"groups": ["ops"]}), 404, "not_found"),
    ] {
        let res = api(
            &app,
            "PUT",
            &format!("/accounts/{target}/groups"),
            &root,
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            res.refusal(),
            (status, code.to_owned()),
            "{target} {body}: {}",
            res.body
        );
    }
    assert_eq!(
        api(&app, "GET", "/accounts/bob/groups", &root, None).await.json()["assigned_groups"],
        json!(["dev", "ops"]),
        "a refused change changed nothing"
    );

    // Unlink: one way in goes; the last one stays.
    let bob_account = vestibule_core::AccountId::new(bob.as_str()).unwrap();
    app.store
        .link_identity(&person("bob-dir", &[]), &bob_account, vestibule_core::Timestamp(0))
        .await
        .unwrap();
    for (body, status, code) in [
        (json!({"source": "dir", "subject": "nobody"}), 404, "not_found"),
        (json!({"source": "dir"}), 400, "invalid_request"),
        (
            json!({"source": "dir", "subject": "bob-dir", "x": 1}),
            400,
            "invalid_request",
        ),
    ] {
        let res = api(&app, "POST", "/accounts/bob/unlink", &root, Some(body.clone())).await;
        assert_eq!(res.refusal(), (status, code.to_owned()), "{body}: {}", res.body);
    }
    let unlinked = api(
        &app,
        "POST",
        "/accounts/bob/unlink",
        &root,
        Some(json!({"source": "dir", "subject": "bob-dir"})),
    )
    .await;
    assert_eq!(unlinked.status, StatusCode::OK, "{}", unlinked.body);
    assert_eq!(
        unlinked.json(),
        json!({"id": bob, "source": "dir", "subject": "bob-dir", "ended": 0})
    );
    assert_eq!(last_event(&app).await, ("identity_unlinked".into(), by.clone()));
    let last = api(
        &app,
        "POST",
        "/accounts/bob/unlink",
        &root,
        Some(json!({"source": "local", "subject": bob})),
    )
    .await;
    assert_eq!(
        (last.status, last.code().as_str()),
        (StatusCode::CONFLICT, "last_identity"),
        "{}",
        last.body
    );
    assert_eq!(app.store.identities_of(&bob_account).await.unwrap().len(), 1);

    // End sessions: without a body sessions only, then tokens too.
    let me = |cookie: String| call(&app, request("GET", "/auth/me", None, &cookie, None));
    assert_eq!(me(ann_session.clone()).await.status, StatusCode::OK);
    let no_body = api_raw(&app, "POST", "/accounts/dir:ann-1/end-sessions", &root, None).await;
    assert_eq!(no_body.status, StatusCode::OK, "{}", no_body.body);
    assert_eq!(
        no_body.json(),
        json!({"id": ann_id, "sessions_ended": 2, "tokens_revoked": 0})
    );
    assert_eq!(me(ann_session.clone()).await.status, StatusCode::UNAUTHORIZED);
    assert!(app.broker.bearer(&ann_token).await.unwrap().is_some(), "tokens stay");
    assert_eq!(
        last_event(&app).await,
        ("sessions_revoked".into(), format!("{by}; all sessions"))
    );
    let with_tokens = api(
        &app,
        "POST",
        "/accounts/dir:ann-1/end-sessions",
        &root,
        Some(json!({"tokens": true})),
    )
    .await;
    assert_eq!(
        with_tokens.json(),
        json!({"id": ann_id, "sessions_ended": 0, "tokens_revoked": 1})
    );
    assert!(app.broker.bearer(&ann_token).await.unwrap().is_none());
    // A `null` body, which the document allows, is no body.
    let null = api(
        &app,
        "POST",
        "/accounts/dir:ann-1/end-sessions",
        &root,
        Some(Value::Null),
    )
    .await;
    assert_eq!(null.status, StatusCode::OK, "{}", null.body);
    for body in ["{\"tokens\": \"yes\"}", "{\"all\": true}", "{"] {
        let res = api_raw(&app, "POST", "/accounts/dir:ann-1/end-sessions", &root, Some(body)).await;
        assert_eq!(res.code(), "invalid_request", "{body}: {}", res.body);
    }

    // Delete: what goes is answered, and the account's session and token stop working at once.
    let ann_session = sign_in(&app, "ann").await;
    let ann_token = token_of(&app, "ann", "read").await;
    assert_eq!(me(ann_session.clone()).await.status, StatusCode::OK);
    let deleted = api(&app, "DELETE", "/accounts/dir:ann-1", &root, None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let removed = deleted.json()["removed"].clone();
    assert_eq!(deleted.json()["id"], ann_id.as_str());
    assert_eq!(removed["identities"], 1, "{removed}");
    assert_eq!(removed["sessions"], 2, "{removed}");
    assert_eq!(removed["accounts"], 1, "{removed}");
    assert_eq!(me(ann_session).await.status, StatusCode::UNAUTHORIZED);
    let by_token = call(&app, request("GET", "/auth/me", Some(&ann_token), "", None)).await;
    assert_eq!(by_token.status, StatusCode::UNAUTHORIZED, "{}", by_token.body);
    let (event, detail) = last_event(&app).await;
    assert_eq!(event, "account_deleted");
    assert!(detail.starts_with(&format!("{by}; ")), "{detail}");
    assert_eq!(
        api(&app, "GET", "/accounts/dir:ann-1", &root, None).await.code(),
        "not_found"
    );

    // Every endpoint on a target: not found, and ambiguous for the address carol and dave share.
    for (method, path, body) in [
        ("GET", "", None),
        ("DELETE", "", None),
        ("POST", "/unlink", Some(json!({"source": "dir", "subject": "x"}))),
        ("POST", "/end-sessions", Some(json!({}))),
        ("GET", "/groups", None),
        ("PUT", "/groups", Some(json!({"groups": []}))),
    ] {
        for (target, status, code) in [("nobody", 404, "not_found"), ("twins%40example.org", 409, "ambiguous")] {
            let res = api(&app, method, &format!("/accounts/{target}{path}"), &root, body.clone()).await;
            assert_eq!(
                res.refusal(),
                (status, code.to_owned()),
                "{method} {target}{path}: {}",
                res.body
            );
        }
    }
    let ids = ids_of(&api(&app, "GET", "/accounts", &root, None).await.json());
    assert!(
        ids.contains(&carol) && ids.contains(&dave),
        "an ambiguous delete deleted"
    );
}

#[tokio::test]
async fn what_is_not_a_current_administrator_token_is_refused() {
    let app = admin_app().await;
    let root_session = sign_in(&app, "root").await;
    let admin = token_of(&app, "root", "admin").await;
    let read = token_of(&app, "root", "read").await;
    assert_eq!(
        api(&app, "GET", "/accounts/dir:root-1", &admin, None).await.status,
        StatusCode::OK
    );

    // The cookie is a live administrator's session: it is the API's rule that refuses it below, not its state.
    let me = call(&app, request("GET", "/auth/me", None, &root_session, None)).await;
    assert_eq!(
        (me.status, me.json()["groups"].clone()),
        (StatusCode::OK, json!(["admins"]))
    );
    // No token, a wrong one, a session cookie alone (an administrator's, fresh): 401, asking for a bearer.
    for (bearer, cookie) in [
        (None, ""),
        (Some("vst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), ""),
        (None, root_session.as_str()),
    ] {
        let res = call(
            &app,
            request("GET", &format!("{API}/accounts/dir:root-1"), bearer, cookie, None),
        )
        .await;
        assert_eq!(
            (res.status, res.code().as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{bearer:?} {cookie}"
        );
        assert_eq!(res.header("www-authenticate"), "Bearer");
    }
    // A cookie does not make a token without the scope an admin one either.
    sign_in(&app, "ann").await;
    let res = call(
        &app,
        request(
            "POST",
            &format!("{API}/accounts/dir:ann-1/disable"),
            Some(&read),
            &root_session,
            None,
        ),
    )
    .await;
    assert_eq!((res.status, res.code().as_str()), (StatusCode::FORBIDDEN, "forbidden"));
    assert_eq!(
        api(&app, "GET", "/accounts/dir:ann-1", &admin, None).await.json()["disabled"],
        false
    );

    // The owner leaves the admin group (the directory says so at the next sign-in): the token stops working for the
    // admin API at once, though it is still a valid token elsewhere.
    app.directory.put("root", "root password", person("root-1", &["staff"]));
    sign_in(&app, "root").await;
    let res = api(&app, "GET", "/accounts/dir:root-1", &admin, None).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{}",
        res.body
    );
    assert!(res.json()["error"]["message"].as_str().unwrap().contains("admin group"));
    assert!(app.broker.bearer(&admin).await.unwrap().is_some());
    app.directory
        .put("root", "root password", person("root-1", &["admins"]));
    sign_in(&app, "root").await;
    assert_eq!(
        api(&app, "GET", "/accounts/dir:root-1", &admin, None).await.status,
        StatusCode::OK
    );

    // A disabled owner: 401 (every token of the account ended with it).
    let root_id = api(&app, "GET", "/accounts/dir:root-1", &admin, None).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.broker
        .set_account_disabled_by_operator(&vestibule_core::AccountId::new(root_id.as_str()).unwrap(), true, "test")
        .await
        .unwrap();
    let res = api(&app, "GET", "/accounts/dir:root-1", &admin, None).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
}

#[tokio::test]
async fn bad_tokens_are_throttled_per_address_like_every_bearer_failure() {
    let app = admin_app().await;
    let admin = token_of(&app, "root", "admin").await;
    let mut throttled = None;
    for i in 0..100 {
        let res = api(&app, "GET", "/audit", &format!("vst_{i:0>43}"), None).await;
        if res.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some((i, res));
            break;
        }
        assert_eq!(res.code(), "unauthorized", "{i}");
    }
    let (i, res) = throttled.expect("bad tokens are throttled");
    assert!(i >= 10, "not before a burst of failures: {i}");
    assert_eq!(res.code(), "too_many_requests");
    assert!(res.header("retry-after").parse::<u32>().unwrap() > 0);
    // From that address even the right token is not looked up until the wait is over.
    let res = api(&app, "GET", "/audit", &admin, None).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
    );
}

#[tokio::test]
async fn audit_pages_cover_every_row_once() {
    let app = admin_app().await;
    let admin = token_of(&app, "root", "admin").await;
    for n in 0..9 {
        let res = api(
            &app,
            "POST",
            "/accounts",
            &admin,
            Some(json!({"username": format!("user{n}"), "password": "correct horse battery"})),
        )
        .await;
        assert_eq!(res.status, StatusCode::CREATED);
    }
    let all: Vec<i64> = api(&app, "GET", "/audit?limit=1000", &admin, None).await.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(all.len() >= 12, "more rows than a few pages: {}", all.len());
    let mut walked = Vec::new();
    let mut query = "/audit?limit=5".to_owned();
    let mut pages = 0;
    loop {
        let page = api(&app, "GET", &query, &admin, None).await.json();
        let ids: Vec<i64> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        assert!(ids.len() <= 5);
        walked.extend(ids);
        pages += 1;
        match page["next"].as_i64() {
            Some(next) => query = format!("/audit?limit=5&before={next}"),
            None => break,
        }
    }
    assert_eq!(walked, all, "newest first, each row once");
    assert_eq!(pages, all.len().div_ceil(5));
    // The filters hold across pages.
    let first = api(&app, "GET", "/audit?event=account_created&limit=5", &admin, None)
        .await
        .json();
    let next = first["next"].as_i64().unwrap();
    let second = api(
        &app,
        "GET",
        &format!("/audit?event=account_created&limit=5&before={next}"),
        &admin,
        None,
    )
    .await
    .json();
    let count = |p: &Value| p["events"].as_array().unwrap().len();
    assert_eq!((count(&first), count(&second)), (5, 5), "root and nine users");
    assert_eq!(second["next"], Value::Null);
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[tokio::test]
async fn the_document_and_the_router_list_the_same_routes() {
    let app = admin_app().await;
    let admin = token_of(&app, "root", "admin").await;
    let bob = create(&app, &admin, "bob").await;
    let mut fresh = 0;
    // Public, without a token.
    let doc = call(&app, request("GET", &format!("{API}/openapi.json"), None, "", None)).await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    assert_eq!(doc["servers"][0]["url"], "https://app.example.com/auth");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // The codes clients may branch on, and only those.
    assert_eq!(
        doc["components"]["schemas"]["ErrorCode"]["enum"],
        json!([
            "invalid_request",
            "unauthorized",
            "forbidden",
            "not_found",
            "method_not_allowed",
            "ambiguous",
            "conflict",
            "last_identity",
            "not_local",
            "too_many_requests",
            "unavailable",
            "internal"
        ])
    );
    // The body of end-sessions may be left out, and the document says so.
    let end = &doc["paths"]["/admin/api/accounts/{target}/end-sessions"]["post"]["requestBody"];
    assert_ne!(end["required"], true, "{end}");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 9, "{:?}", paths.keys());
    for (path, item) in paths {
        assert!(path.starts_with("/admin/api/"), "{path}");
        for method in METHODS {
            // A deletion takes its account with it: each gets its own, so that bob is there for every other call.
            let target = if method == "DELETE" {
                fresh += 1;
                create(&app, &admin, &format!("fresh{fresh}")).await
            } else {
                bob.clone()
            };
            let concrete = path.replace("{target}", &target);
            let documented = item.get(method.to_ascii_lowercase()).cloned();
            // A body that parses, so that a documented POST is not refused for its body alone.
            let body = (method != "GET").then_some("{}");
            let res = call(
                &app,
                request(method, &format!("/auth{concrete}"), Some(&admin), "", body),
            )
            .await;
            match documented {
                Some(op) => {
                    assert!(
                        ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&res.status),
                        "{method} {path} is documented but not served: {} {}",
                        res.status,
                        res.body
                    );
                    // Every answer the route gave is one the document lists for it.
                    let listed = op["responses"].as_object().unwrap();
                    assert!(
                        listed.contains_key(res.status.as_str()),
                        "{method} {path} answered {} which the document does not list",
                        res.status
                    );
                    if op.get("security") != Some(&json!([{}])) {
                        for refusal in ["401", "403", "429", "500", "503"] {
                            assert!(listed.contains_key(refusal), "{method} {path} lacks {refusal}");
                        }
                    }
                }
                None => assert_eq!(
                    (res.status, res.code().as_str()),
                    (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
                    "{method} {path} is served but not documented"
                ),
            }
        }
    }
    // Paths the document does not have are not served, whatever the method.
    for path in [
        "/accounts",
        "/accounts/x/delete",
        "/users",
        "/audit/1",
        "/openapi.yaml",
        "",
        "/",
    ] {
        let documented = paths.contains_key(&format!("/admin/api{path}"));
        for method in METHODS {
            let res = call(&app, request(method, &format!("{API}{path}"), Some(&admin), "", None)).await;
            let served = res.status != StatusCode::NOT_FOUND && res.status != StatusCode::METHOD_NOT_ALLOWED;
            let documented_here = documented
                && paths[&format!("/admin/api{path}")]
                    .get(method.to_ascii_lowercase())
                    .is_some();
            assert_eq!(
                served, documented_here,
                "{method} {API}{path}: {} {}",
                res.status, res.body
            );
            assert!(
                res.headers.get("content-type").is_some_and(|c| c == "application/json"),
                "{method} {path}"
            );
        }
    }
    // The document served is the one the crate builds (plus the deployment's server URL).
    let built = serde_json::to_value(vestibule_axum::admin_openapi()).unwrap();
    assert_eq!(built["paths"], doc["paths"]);
}

/// Creates the local account `username` through the API; its id.
async fn create(app: &AdminApp, token: &str, username: &str) -> String {
    let res = api(
        app,
        "POST",
        "/accounts",
        token,
        Some(json!({"username": username, "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    res.json()["id"].as_str().unwrap().to_owned()
}

fn urlencode(s: &str) -> String {
    vestibule_tests::browser::urlencode(s)
}
