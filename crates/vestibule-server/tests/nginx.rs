//! End-to-end behind a real nginx (Debian's package): nginx's `auth_request` asks the real `vestibule` binary's
//! `GET /verify` about every request to a protected app, passes who is signed in to the app in `X-Vestibule-*`
//! headers, and sends everyone else to vestibule's login page on the same origin. What is checked is what a user
//! (or an attacker) sees through nginx, and what the app behind it receives.
//!
//! The nginx config is `tests/nginx/nginx.conf.in`, rendered with free loopback ports and a temp folder for every
//! file nginx writes. nginx comes from `tests/nginx/install.sh` (run by `scripts/test`). The test never skips:
//! when nginx is missing it fails and says so.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::{Json, Router};
use reqwest::StatusCode;
use serde_json::{json, Value};
use vestibule_tests::browser::{Browser, Page};
use vestibule_tests::net::RefusingPort;
use vestibule_tests::server::{Server, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vestibule");
const NGINX: &str = "/usr/sbin/nginx";
const TEMPLATE: &str = include_str!("../../../tests/nginx/nginx.conf.in");
const PASSWORD: &str = "correct horse battery";
/// The longest nginx may take to start or to stop.
const WAIT: Duration = Duration::from_secs(20);

/// The protected app: answers any path with the `X-Vestibule-*` request headers it received (under any spelling,
/// every value of each), and counts its requests.
struct Upstream {
    port: u16,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start() -> Upstream {
        let hits = Arc::new(AtomicUsize::new(0));
        let app = Router::new().fallback(echo).with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Upstream { port, hits, task }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo(State(hits): State<Arc<AtomicUsize>>, uri: Uri, headers: HeaderMap) -> Json<Value> {
    hits.fetch_add(1, Ordering::SeqCst);
    let mut seen = serde_json::Map::new();
    for (name, value) in &headers {
        // `X_Vestibule_User` would reach a CGI-style app as the same variable as `X-Vestibule-User`.
        if name.as_str().replace('_', "-").starts_with("x-vestibule-") {
            let values = seen.entry(name.as_str()).or_insert_with(|| json!([]));
            values
                .as_array_mut()
                .unwrap()
                .push(json!(value.to_str().unwrap_or("<not visible ASCII>")));
        }
    }
    Json(json!({ "path": uri.to_string(), "headers": seen }))
}

/// `nginx -p DIR -c DIR/nginx.conf` in the foreground, as the leader of its own process group (its workers stay in
/// it). Dropping it asks the master for a fast shutdown, then kills whatever of the group is left.
struct Nginx {
    child: Child,
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    base: String,
}

impl Nginx {
    /// Starts nginx listening on `listen`; `Err` (with its logs) when the port was taken, so the caller can try
    /// again on another.
    async fn start(dir: &Path, listen: u16, vestibule: u16, upstream: u16) -> Result<Nginx, String> {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: the nginx auth_request test needs Debian's nginx. Run `scripts/test` (which runs \
             tests/nginx/install.sh), or run tests/nginx/install.sh as root once."
        );
        let prefix = dir.display().to_string();
        assert!(!prefix.contains(char::is_whitespace) && !prefix.contains(';'));
        let conf = TEMPLATE
            .replace("@PREFIX@", &prefix)
            .replace("@LISTEN_PORT@", &listen.to_string())
            .replace("@VESTIBULE_PORT@", &vestibule.to_string())
            .replace("@UPSTREAM_PORT@", &upstream.to_string());
        assert!(
            !conf.contains('@') || !conf.contains("_PORT@"),
            "a placeholder is left:\n{conf}"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let error_log = dir.join("error.log");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir)
            // Where nginx logs before it has read the config (Debian's build would say stderr).
            .arg("-e")
            .arg(&error_log)
            .arg("-c")
            .arg(&conf_path)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {NGINX}: {e} (run tests/nginx/install.sh)"));
        let mut nginx = Nginx {
            child,
            dir: dir.to_owned(),
            base: format!("http://127.0.0.1:{listen}"),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let logs = nginx.logs();
                if logs.contains("Address already in use") {
                    return Err(logs);
                }
                panic!("nginx exited before listening ({status}):\n{logs}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", listen)).await.is_ok() {
                return Ok(nginx);
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within {WAIT:?}:\n{}",
                nginx.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// nginx's own logs, for failure messages.
    fn logs(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
                format!("--- {f}\n{text}")
            })
            .collect()
    }

    /// Every process of nginx's group (the master and its workers).
    fn pids(&self) -> BTreeSet<u32> {
        let out = Command::new("pgrep")
            .args(["-g", &self.child.id().to_string()])
            .output()
            .expect("pgrep (procps) runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        // Fast shutdown: the master stops its workers, then exits.
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + WAIT;
        while !matches!(self.child.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group (that id is ours), then reap the master.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET through nginx with exactly these cookies and extra headers (repeated names are sent repeatedly).
async fn raw_get(base: &str, path: &str, cookies: Option<&Browser>, headers: &[(&str, &str)]) -> Page {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut req = client.get(format!("{base}{path}")).header("accept", "application/json");
    if let Some(b) = cookies {
        let line = b
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        req = req.header("cookie", line);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap_or_default();
    Page { status, headers, body }
}

/// What a client forges to pass for someone else, under several spellings and twice over.
const FORGED: &[(&str, &str)] = &[
    ("X-Vestibule-User", "admin"),
    ("x-vestibule-user", "root"),
    ("X-Vestibule-Name", "Administrator"),
    ("X-Vestibule-Email", "admin@example.org"),
    ("X-Vestibule-Groups", "admins,wheel"),
    ("X-Vestibule-Scopes", "admin"),
    ("X_Vestibule_User", "admin"),
    ("X_Vestibule_Groups", "admins"),
];

/// The app's view of one request that reached it.
fn upstream_saw(page: &Page) -> Value {
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.json()
}

/// A refusal as a browser sees it: to the login page, with the way back.
fn assert_sent_to_login(page: &Page, path: &str) {
    assert_eq!(page.status, StatusCode::FOUND, "{path}: {}", page.body);
    assert_eq!(page.location(), Some(format!("/login?next={path}").as_str()));
    assert!(page.header("x-vestibule-user").is_none());
}

#[tokio::test]
async fn nginx_auth_request_protects_an_app_and_signs_in_through_vestibule() {
    assert!(
        Path::new(NGINX).exists(),
        "{NGINX} is missing: the nginx auth_request test needs Debian's nginx. Run `scripts/test` (which runs \
         tests/nginx/install.sh), or run tests/nginx/install.sh as root once."
    );
    let started = Instant::now();
    let dir = TempDir::new("vestibule-nginx");
    let nginx_dir = dir.0.join("nginx");
    std::fs::create_dir_all(&nginx_dir).unwrap();

    // vestibule's public URL is nginx's: users only ever talk to nginx. So nginx's port is needed before either
    // starts, and nginx binds the port in its config itself (it cannot be handed a listener). The port is held
    // (bound, not listening) while vestibule starts and released just before nginx starts; should another process
    // take it in that instant, nginx reports the port in use and the setup starts again on a fresh port.
    let upstream = Upstream::start().await;
    let mut attempts = 0;
    let (mut server, nginx) = loop {
        attempts += 1;
        let reserved = RefusingPort::new();
        let listen = reserved.port();
        let config = format!(
            "[server]\npublic_url = \"http://127.0.0.1:{listen}\"\n[database]\nurl = \"sqlite://{{dir}}/v.db\"\n\
             [session]\nremember_grace_secs = 1\n"
        );
        // A fresh folder (and database) per attempt.
        let vestibule_dir = dir.0.join(format!("vestibule-{attempts}"));
        std::fs::create_dir_all(&vestibule_dir).unwrap();
        let server = Server::start(Path::new(BIN), &vestibule_dir, &config);
        let vestibule_port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
        match Nginx::start(&nginx_dir, reserved.release(), vestibule_port, upstream.port).await {
            Ok(nginx) => break (server, nginx),
            Err(logs) if attempts < 3 => eprintln!("nginx's port was taken, trying another:\n{logs}"),
            Err(logs) => panic!("nginx could not bind a port in 3 attempts:\n{logs}"),
        }
    };
    server.add_user("alice", "alice@example.org", PASSWORD);
    let base = nginx.base.clone();

    // The verify location is internal: a client cannot call it through nginx.
    assert_eq!(raw_get(&base, "/_vestibule_verify", None, &[]).await.status, 404);
    // A worker has answered, so the group now holds the master and its worker.
    let ours = nginx.pids();
    assert!(ours.len() >= 2, "a master and a worker: {ours:?}");

    // (1) No session: to the login page, and the app never sees the request.
    let mut b = Browser::new(&base);
    let res = b.get("/app/x").await;
    assert_sent_to_login(&res, "/app/x");
    let mut stranger = Browser::new(&base);
    stranger.cookies.insert("vestibule-session".into(), "A".repeat(43));
    assert_sent_to_login(&stranger.get("/app/x").await, "/app/x");
    // (2) Forged identity headers without a session change nothing.
    assert_sent_to_login(&raw_get(&base, "/app/x", None, FORGED).await, "/app/x");
    assert_eq!(upstream.hits(), 0, "the app was reached without a session");

    // (3) Sign in through nginx, the way a browser follows the redirect.
    let login = b.get(res.location().unwrap()).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(
        vestibule_tests::browser::hidden_value(&login.body, "next").as_deref(),
        Some("/app/x"),
        "the login form keeps the way back"
    );
    let token = login.csrf_token().expect("csrf token on the login page");
    let signed_in = b
        .post(
            "/login/local",
            &[
                ("csrf_token", &token),
                ("username", "alice"),
                ("password", PASSWORD),
                ("next", "/app/x"),
            ],
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.body);
    assert_eq!(signed_in.location(), Some("/app/x"));
    assert!(
        b.cookies.contains_key("vestibule-session"),
        "{:?}",
        signed_in.set_cookies()
    );
    let me = b.get_json("/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let me = me.json();
    let id = me["id"].as_str().unwrap().to_owned();
    assert_eq!(me["email"], "alice@example.org");
    // `user add` without `--email-verified`: the address waits for its confirmation link.
    assert_eq!(me["email_verified"], false);

    let saw = upstream_saw(&b.get_json("/app/x").await);
    assert_eq!(saw["path"], "/app/x");
    // No groups: vestibule answers an empty X-Vestibule-Groups and nginx sends no header with an empty value. No
    // X-Vestibule-Email either: vestibule passes on only a verified address.
    assert_eq!(
        saw["headers"],
        json!({
            "x-vestibule-user": [id],
            "x-vestibule-name": [me["display_name"]],
        })
    );
    assert_eq!(upstream.hits(), 1);

    // (2) With a session, forged headers are replaced by vestibule's answer (or removed), never passed along: a
    // forged X-Vestibule-Email is removed too when vestibule sends none (the address is not verified).
    let saw = upstream_saw(&raw_get(&base, "/app/x", Some(&b), FORGED).await);
    assert_eq!(
        saw["headers"],
        json!({
            "x-vestibule-user": [id],
            "x-vestibule-name": [me["display_name"]],
        }),
        "the app saw a forged header"
    );
    assert_eq!(upstream.hits(), 2);

    // A second signed-in browser, for the end.
    let mut other = Browser::new(&base);
    assert_eq!(
        other.sign_in("local", "alice", PASSWORD, "/app/y").await.location(),
        Some("/app/y")
    );
    assert_eq!(
        upstream_saw(&other.get("/app/y").await)["headers"]["x-vestibule-user"],
        json!([id])
    );
    assert_eq!(upstream.hits(), 3);

    // (5) Remember me behind auth_request: /verify never restores or rotates (nginx would drop its Set-Cookie and
    // the browser would keep a token the broker had replaced: theft, and everything revoked, after the grace).
    let mut rem = Browser::new(&base);
    let page = rem.get("/login?next=/app/z").await;
    let token = page.csrf_token().unwrap();
    let signed_in = rem
        .post(
            "/login/local",
            &[
                ("csrf_token", &token),
                ("username", "alice"),
                ("password", PASSWORD),
                ("next", "/app/z"),
                ("remember_me", "on"),
            ],
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.body);
    rem.cookies.remove("vestibule-session");
    assert!(rem.cookies.contains_key("vestibule-remember"));
    for _ in 0..10 {
        let res = raw_get(&base, "/app/z", Some(&rem), &[]).await;
        assert_sent_to_login(&res, "/app/z");
        assert!(res.set_cookies().is_empty(), "{:?}", res.set_cookies());
    }
    std::thread::sleep(Duration::from_millis(1100));
    // The browser follows nginx to the login page: restored there, on vestibule's own responses, and sent back.
    let back = rem.get("/login?next=/app/z").await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert_eq!(back.location(), Some("/app/z"));
    assert_eq!(
        upstream_saw(&rem.get("/app/z").await)["headers"]["x-vestibule-user"],
        json!([id])
    );
    // Past the grace window the browser's (rotated) cookie is still the live one: no theft, the other browsers
    // are still signed in.
    std::thread::sleep(Duration::from_millis(1100));
    rem.cookies.remove("vestibule-session");
    let again = rem.get("/login?next=/app/z").await;
    assert_eq!(again.location(), Some("/app/z"), "{}", again.body);
    assert_eq!(
        upstream_saw(&other.get("/app/y").await)["headers"]["x-vestibule-user"],
        json!([id])
    );
    assert_eq!(upstream.hits(), 5);

    // (4) Sign out through nginx; the same cookie replayed is refused at nginx.
    let stolen = b.cookies.clone();
    let account = b.get("/account").await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    let token = account.csrf_token().unwrap();
    let out = b.post("/logout", &[("csrf_token", &token)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert_eq!(out.location(), Some("/login"));
    assert_sent_to_login(&b.get("/app/x").await, "/app/x");
    let mut replay = Browser::new(&base);
    replay.cookies = stolen;
    assert_sent_to_login(&replay.get("/app/x").await, "/app/x");
    assert_sent_to_login(&raw_get(&base, "/app/x", Some(&replay), FORGED).await, "/app/x");
    assert_eq!(upstream.hits(), 5, "the app was reached with a signed-out session");
    // The other browser's session is untouched.
    assert_eq!(
        upstream_saw(&other.get("/app/y").await)["headers"]["x-vestibule-user"],
        json!([id])
    );
    assert_eq!(upstream.hits(), 6);

    // With vestibule down, nginx fails closed: an error, not the app.
    server.stop();
    let res = other.get("/app/y").await;
    assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", res.body);
    assert_eq!(upstream.hits(), 6, "the app was reached while vestibule was down");

    // No nginx of ours is left running.
    drop(nginx);
    let out = Command::new("pgrep").args(["-a", "nginx"]).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let left: Vec<&str> = listing
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| ours.contains(&p))
        })
        .collect();
    assert!(left.is_empty(), "nginx processes left behind: {left:?}");
    eprintln!("nginx test took {:?}", started.elapsed());
}
