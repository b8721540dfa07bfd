//! Running the `vestibule` binary in production (issue #14): structured logs with request ids, the audit in the
//! log, and shutting down without cutting requests off. Real binary, real sockets.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use vestibule_tests::browser::Browser;
use vestibule_tests::server::{series, Server, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vestibule");
const PASSWORD: &str = "correct horse battery";

/// The log's lines as JSON objects; panics on a line that is not one.
fn json_lines(server: &Server) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(server.log_file()).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// Waits until `found` holds for the log's lines (the server writes them as it goes), at most 10 s.
async fn log_until(server: &Server, found: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let lines = json_lines(server);
        if found(&lines) {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the log never showed it: {:#?}", json_lines(server));
}

/// With `[log] format = "json"` every line of the log parses as JSON; a request's lines carry its id (the
/// `X-Request-Id` it was answered with), audit events are among them with their fields, and nothing the person
/// typed as a password is in the log.
#[tokio::test]
async fn json_log_lines_carry_the_request_id_and_the_audit() {
    let dir = TempDir::new("vestibule-ops");
    let server = Server::start_logged(
        Path::new(BIN),
        &dir.0,
        "[database]\nurl = \"sqlite://{dir}/v.db\"\n[log]\nformat = \"json\"\n",
    );
    server.add_user("alice", "alice@example.org", PASSWORD);
    let mut b = Browser::new(&server.base);
    let res = b.sign_in("local", "alice", "a wrong password 42", "/me").await;
    assert_eq!(res.status, 401, "{}", res.body);
    let id = res.header("x-request-id").expect("a request id").to_owned();
    assert_eq!(id.len(), 12, "{id}");
    let lines = log_until(&server, |lines| {
        lines
            .iter()
            .any(|l| l["fields"]["event"] == "login_failure" && l["span"]["request_id"] == id.as_str())
    })
    .await;
    let audit = lines.iter().find(|l| l["fields"]["event"] == "login_failure").unwrap();
    assert_eq!(audit["target"], "vestibule::audit", "{audit}");
    assert_eq!(audit["level"], "INFO", "{audit}");
    assert_eq!(audit["fields"]["source"], "local", "{audit}");
    assert_eq!(audit["fields"]["ip"], "127.0.0.1", "{audit}");
    assert!(audit["timestamp"].is_string(), "{audit}");
    // Another request has another id.
    let other = b.get("/login").await;
    assert_ne!(other.header("x-request-id"), Some(id.as_str()));
    let text = std::fs::read_to_string(server.log_file()).unwrap();
    assert!(!text.contains("a wrong password 42"), "a password in the log");
}

/// An error page's reference is the request id: the line that logged the failure carries the same one.
#[tokio::test]
async fn an_error_pages_reference_is_its_request_id() {
    let dir = TempDir::new("vestibule-ops");
    // An LDAP source whose directory refuses connections: signing in there is a 503 page with a reference.
    let dead = vestibule_tests::net::RefusingPort::new();
    let config = format!(
        "[database]\nurl = \"sqlite://{{dir}}/v.db\"\n[log]\nformat = \"json\"\n\n[[sources]]\nid = \"local\"\n\
         kind = \"local\"\n\n[[sources]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldap://{}\"\n\
         user_dn_template = \"uid={{username}},ou=people,dc=example,dc=com\"\ntimeout_secs = 2\n",
        dead.addr()
    );
    let server = Server::start_logged(Path::new(BIN), &dir.0, &config);
    let mut b = Browser::new(&server.base);
    let res = b.sign_in("corp", "alice", "whatever-password", "/me").await;
    assert_eq!(res.status, 503, "{}", res.body);
    let id = res.header("x-request-id").unwrap().to_owned();
    assert!(
        res.body.contains(&id),
        "the page shows the reference {id}: {}",
        res.body
    );
    let lines = log_until(&server, |lines| {
        lines
            .iter()
            .any(|l| l["fields"]["reference"] == id.as_str() && l["span"]["request_id"] == id.as_str())
    })
    .await;
    assert!(lines
        .iter()
        .any(|l| l["level"] == "ERROR" && l["span"]["request_id"] == id.as_str()));
}

/// An identity provider that answers its discovery document only after `delay`: a slow request to make in-flight
/// when the server is told to stop. Serves any number of connections; returns its issuer URL.
async fn slow_provider(delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let doc = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
    .to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let doc = doc.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{doc}",
                    doc.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    issuer
}

/// SIGTERM while a request is under way: the request finishes with its normal answer, new connections are refused
/// from then on, and the process exits once it is done (well before the grace period).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish_and_refuses_new_ones() {
    let issuer = slow_provider(Duration::from_secs(3)).await;
    let dir = TempDir::new("vestibule-ops");
    std::fs::write(dir.0.join("secret"), "a-client-secret").unwrap();
    let config = format!(
        "[database]\nurl = \"sqlite://{{dir}}/v.db\"\n[server]\nshutdown_grace_secs = 60\n\n[[sources]]\n\
         id = \"local\"\nkind = \"local\"\n\n[[sources]]\nid = \"slow\"\nkind = \"oidc\"\nissuer = \"{issuer}\"\n\
         client_id = \"vestibule\"\nclient_secret_file = \"{{dir}}/secret\"\ntimeout_secs = 20\n"
    );
    let mut server = Server::start(Path::new(BIN), &dir.0, &config);
    let mut b = Browser::new(&server.base);
    let login = b.get("/login").await;
    let token = login.csrf_token().unwrap();
    let base = server.base.clone();
    let slow = tokio::spawn(async move { b.post("/login/slow", &[("csrf_token", &token), ("next", "/me")]).await });
    // The request is waiting on the provider; now the server is told to stop.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No new connection is taken.
    let fresh = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(fresh.is_err(), "a new request was answered after SIGTERM: {fresh:?}");
    // The slow one gets its normal answer: on to the provider.
    let res = slow.await.unwrap();
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(res.location().unwrap().contains("/authorize?"), "{:?}", res.location());
    // And the process is gone soon after, with success.
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("exited after its last request");
    assert!(status.success(), "{status}");
}

/// A loopback port whose connections are held until the test opens it: each is then joined to `forward` (bytes
/// copied both ways) or, without one, closed unanswered. Connections accepted once it is open pass at once. For
/// "a directory call or a mail delivery is under way when the signal comes", without guessing how long to wait.
struct Gate {
    addr: std::net::SocketAddr,
    accepted: tokio::sync::mpsc::UnboundedReceiver<()>,
    open: tokio::sync::watch::Sender<bool>,
}

impl Gate {
    async fn start(forward: Option<std::net::SocketAddr>) -> Gate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (announce, accepted) = tokio::sync::mpsc::unbounded_channel();
        let (open, opened) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let _ = announce.send(());
                let mut opened = opened.clone();
                tokio::spawn(async move {
                    if opened.wait_for(|open| *open).await.is_err() {
                        return;
                    }
                    if let Some(to) = forward {
                        if let Ok(mut out) = tokio::net::TcpStream::connect(to).await {
                            let _ = tokio::io::copy_bidirectional(&mut conn, &mut out).await;
                        }
                    }
                });
            }
        });
        Gate { addr, accepted, open }
    }

    /// Waits (at most 30 s) until a connection has come in.
    async fn connected(&mut self, what: &str) {
        tokio::time::timeout(Duration::from_secs(30), self.accepted.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: no connection within 30 s"))
            .unwrap();
    }

    fn open(&self) {
        self.open.send_replace(true);
    }
}

/// Signals the server to stop and waits until it no longer takes connections (at most 10 s): from then on it
/// has seen the signal.
async fn terminate(server: &Server) {
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let addr = server.base.trim_start_matches("http://").to_owned();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&addr).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("still taking connections 10 s after SIGTERM");
}

/// An LDAP source `corp` whose directory is `addr` (direct bind), with timeouts long enough never to end a held
/// call first.
fn held_directory(addr: std::net::SocketAddr) -> String {
    format!(
        "[[sources]]\nid = \"local\"\nkind = \"local\"\n\n[[sources]]\nid = \"corp\"\nkind = \"ldap\"\n\
         url = \"ldap://{addr}\"\nuser_dn_template = \"uid={{username}},ou=people,dc=example,dc=com\"\n\
         timeout_secs = 120\n"
    )
}

/// SIGTERM with a sign-in waiting on the directory and two reset mails not yet delivered (the mail server's
/// greeting is held): the sign-in gets its normal answer and its audit row, both mails reach the mail server
/// after the signal, and the process exits with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_queued_mail_and_keeps_the_audit() {
    let sink = vestibule_tests::smtp::SmtpSink::start(Default::default());
    let mut smtp = Gate::start(Some(std::net::SocketAddr::from(([127, 0, 0, 1], sink.port)))).await;
    let mut ldap = Gate::start(None).await;
    let dir = TempDir::new("vestibule-ops");
    let config = format!(
        "[database]\nurl = \"sqlite://{{dir}}/v.db\"\n[server]\nrequest_timeout_secs = 300\n\
         [email]\nfrom = \"Vestibule <id@example.org>\"\nsmtp_url = \"smtp://{}?tls=none\"\ntimeout_secs = 120\n\n{}",
        smtp.addr,
        held_directory(ldap.addr)
    );
    let mut server = Server::start(Path::new(BIN), &dir.0, &config);
    for name in ["alice", "bob"] {
        let out = server.cli(
            &[
                "user",
                "add",
                name,
                "--email",
                &format!("{name}@example.org"),
                "--email-verified",
                "--password-stdin",
            ],
            Some(&format!("{PASSWORD}\n")),
        );
        assert!(out.success, "{}", out.stderr);
    }

    // A sign-in whose directory call is under way...
    let mut b = Browser::new(&server.base);
    let in_flight = tokio::spawn(async move { b.sign_in("corp", "carol", "carol-password", "/me").await });
    ldap.connected("the directory").await;
    // ... the first reset mail in delivery (the mail server has not greeted yet), the second queued behind it.
    for (n, name) in ["alice", "bob"].into_iter().enumerate() {
        let mut b = Browser::new(&server.base);
        let token = b.get("/reset").await.csrf_token().unwrap();
        let res = b.post("/reset", &[("csrf_token", &token), ("login", name)]).await;
        assert_eq!(res.status, 200, "{}", res.body);
        if n == 0 {
            smtp.connected("the mail server").await;
        }
    }
    let requested = || {
        let out = server.cli(&["audit", "--event", "password_reset_requested", "--json"], None);
        assert!(out.success, "{}", out.stderr);
        out.stdout.lines().count()
    };
    for _ in 0..200 {
        if requested() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(requested(), 2, "both resets looked up and their mails queued");
    assert!(sink.messages().is_empty(), "nothing delivered before the signal");

    terminate(&server).await;
    // The directory answers (by hanging up): the sign-in ends as it would have, 503 with its page.
    ldap.open();
    let res = in_flight.await.unwrap();
    assert_eq!(res.status, 503, "{}", res.body);
    // Only now can the mail leave.
    smtp.open();
    let status = server
        .wait_exit(Duration::from_secs(60))
        .expect("exited once its request was answered and its mail sent");
    assert!(status.success(), "{status}");
    for name in ["alice", "bob"] {
        let to = format!("{name}@example.org");
        assert_eq!(
            sink.count("Reset your password", &to),
            1,
            "the reset mail to {to} was delivered before the process exited"
        );
    }
    // The in-flight sign-in's audit row was written and survives the exit.
    let out = server.cli(&["audit", "--event", "login_failure", "--json"], None);
    assert!(out.success, "{}", out.stderr);
    let rows: Vec<serde_json::Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1, "{}", out.stdout);
    assert_eq!(rows[0]["source"], "corp", "{}", rows[0]);
    assert!(
        rows[0]["detail"].as_str().unwrap().starts_with("source_unavailable"),
        "{}",
        rows[0]
    );
}

/// A request stuck longer than `shutdown_grace_secs` does not keep the process alive: it is cut off and the
/// process exits, with status 0, long before the request's own timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_stuck_past_the_grace_period_does_not_hold_the_exit() {
    let mut ldap = Gate::start(None).await;
    let dir = TempDir::new("vestibule-ops");
    let config = format!(
        "[database]\nurl = \"sqlite://{{dir}}/v.db\"\n[server]\nshutdown_grace_secs = 1\nrequest_timeout_secs = 300\n\n{}",
        held_directory(ldap.addr)
    );
    let mut server = Server::start(Path::new(BIN), &dir.0, &config);
    let mut b = Browser::new(&server.base);
    let stuck = tokio::spawn(async move {
        let token = b.get("/login").await.csrf_token().unwrap();
        let fields = [
            ("csrf_token", token.as_str()),
            ("username", "carol"),
            ("password", "carol-password"),
        ];
        b.try_post("/login/corp", &fields).await.map(|page| page.status)
    });
    ldap.connected("the directory").await;
    terminate(&server).await;
    // The directory never answers (its calls may take 120 s, the request 300 s); the grace period is 1 s.
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("exited after the grace period, not after the stuck request");
    assert!(status.success(), "{status}");
    let answer = stuck.await.unwrap();
    assert!(
        answer.is_err(),
        "the stuck request was cut off, not answered: {answer:?}"
    );
}

/// A throwaway CA and a certificate for 127.0.0.1 signed by it (tests/ldap/gen-cert.sh), in a folder of `dir`.
fn certificates(dir: &Path, name: &str) -> std::path::PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).unwrap();
    vestibule_tests::server::make_certificates(&out);
    out
}

/// A client that trusts only the CA in `certs` (and verifies host names, as browsers do).
fn client_trusting(certs: &Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs.join("ca.crt")).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// `[server.tls]`: HTTPS on the main port with the configured certificate (a client that verifies it signs in;
/// plain HTTP there gets no answer), `Secure` cookies, the plain listener redirecting to the https URL, and a
/// certificate renewed on disk served to new connections within the reload interval, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_served_directly_with_a_renewed_certificate() {
    let dir = TempDir::new("vestibule-tls");
    let first = certificates(&dir.0, "first");
    let renewed = certificates(&dir.0, "renewed");
    let live = dir.0.join("live");
    std::fs::create_dir_all(&live).unwrap();
    for f in ["server.crt", "server.key"] {
        std::fs::copy(first.join(f), live.join(f)).unwrap();
    }
    let config = format!(
        "[database]\nurl = \"sqlite://{{dir}}/v.db\"\n[server.tls]\ncert_file = \"{0}/server.crt\"\n\
         key_file = \"{0}/server.key\"\nreload_interval_secs = 1\nredirect_http_bind = \"127.0.0.1:0\"\n",
        live.display()
    );
    let server = Server::start(Path::new(BIN), &dir.0, &config);
    server.add_user("alice", "alice@example.org", PASSWORD);
    let https = server.base.replace("http://", "https://");
    let trusts_first = client_trusting(&first);
    let res = trusts_first.get(format!("{https}/login")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("strict-transport-security"));
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        !cookies.is_empty() && cookies.iter().all(|c| c.starts_with("__Host-") && c.contains("Secure")),
        "{cookies:?}"
    );
    // Plain HTTP on the TLS port gets no page.
    let plain = reqwest::Client::new()
        .get(format!("{}/login", server.base))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.map(|r| r.status() != 200).unwrap_or(true),
        "plain http answered on the https port"
    );
    // The redirect listener sends GETs to the same path at the https URL, and refuses anything else.
    let redirect = server.printed("vestibule redirecting http on ");
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_follow
        .get(format!("http://{redirect}/login?next=%2Fme"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 301);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        format!("{https}/login?next=%2Fme"),
        "built from public_url, never from Host"
    );
    let res = no_follow
        .post(format!("http://{redirect}/login/local"))
        .body("username=alice")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Renewal: new files on disk; new connections get the new certificate within the interval.
    let trusts_renewed = client_trusting(&renewed);
    assert!(
        trusts_renewed.get(format!("{https}/healthz")).send().await.is_err(),
        "not yet renewed"
    );
    for f in ["server.key", "server.crt"] {
        std::fs::copy(renewed.join(f), live.join(f)).unwrap();
    }
    let mut served = false;
    for _ in 0..40 {
        if let Ok(r) = client_trusting(&renewed).get(format!("{https}/healthz")).send().await {
            assert_eq!(r.status(), 200);
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(served, "the renewed certificate was never served");
    assert!(
        client_trusting(&first)
            .get(format!("{https}/healthz"))
            .send()
            .await
            .is_err(),
        "the old certificate is still served to new connections"
    );
}

/// A certificate file that does not load stops the start with a message naming the key and the file; an http
/// public_url with `[server.tls]` is refused too.
#[test]
fn a_bad_certificate_or_an_http_public_url_refuses_to_start() {
    let dir = TempDir::new("vestibule-tls");
    std::fs::write(dir.0.join("bad.crt"), "not a certificate").unwrap();
    std::fs::write(dir.0.join("bad.key"), "not a key").unwrap();
    let run = |extra: &str| {
        let config = format!(
            "[database]\nurl = \"sqlite://{0}/v.db\"\n[server]\n{extra}[server.tls]\ncert_file = \"{0}/bad.crt\"\n\
             key_file = \"{0}/bad.key\"\n",
            dir.0.display()
        );
        std::fs::write(dir.0.join("v.toml"), config).unwrap();
        std::process::Command::new(BIN)
            .args(["serve", "--config"])
            .arg(dir.0.join("v.toml"))
            .args(["--bind", "127.0.0.1:0"])
            .output()
            .unwrap()
    };
    let out = run("");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.tls.cert_file") && err.contains("bad.crt"), "{err}");
    let out = run("public_url = \"http://id.example.com\"\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("public_url") && err.contains("https"), "{err}");
}

/// `[metrics] bind`: Prometheus text on its own listener (not on the public one), with the values a scripted
/// sign-in must have left: one failure and one success for `local`, the source call outcomes, the requests by
/// route, one live session, the mail queue and readiness gauges; then a throttled guess, counted by the layer that
/// refused it.
#[tokio::test]
async fn metrics_count_a_scripted_sign_in() {
    let dir = TempDir::new("vestibule-ops");
    let server = Server::start(
        Path::new(BIN),
        &dir.0,
        "[database]\nurl = \"sqlite://{dir}/v.db\"\n[metrics]\nbind = \"127.0.0.1:0\"\n\
         [throttle]\npair_free_failures = 1\n",
    );
    server.add_user("alice", "alice@example.org", PASSWORD);
    let metrics = format!("http://{}/metrics", server.printed("vestibule metrics on "));
    let mut b = Browser::new(&server.base);
    assert_eq!(b.sign_in("local", "alice", "wrong password 1", "/me").await.status, 401);
    assert_eq!(b.sign_in("local", "alice", PASSWORD, "/me").await.status, 303);
    assert_eq!(b.get_json("/verify").await.status, 200);
    let res = reqwest::get(&metrics).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    let at = |name: &str, labels: &[(&str, &str)]| {
        series(&text, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} in:\n{text}"))
    };
    assert_eq!(
        at(
            "vestibule_sign_ins_total",
            &[("source", "local"), ("result", "failure")]
        ),
        1.0
    );
    assert_eq!(
        at(
            "vestibule_sign_ins_total",
            &[("source", "local"), ("result", "success")]
        ),
        1.0
    );
    assert_eq!(
        at(
            "vestibule_source_calls_total",
            &[("source", "local"), ("step", "authenticate"), ("outcome", "rejected")]
        ),
        1.0
    );
    assert_eq!(
        at(
            "vestibule_source_calls_total",
            &[("source", "local"), ("step", "authenticate"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        at(
            "vestibule_source_call_seconds_count",
            &[("source", "local"), ("step", "authenticate")]
        ),
        2.0
    );
    assert_eq!(
        at(
            "vestibule_http_requests_total",
            &[("route", "verify"), ("status", "2xx")]
        ),
        1.0
    );
    assert!(
        at(
            "vestibule_http_request_seconds_bucket",
            &[("route", "verify"), ("le", "+Inf")]
        ) >= 1.0
    );
    assert_eq!(at("vestibule_sessions_active", &[]), 1.0);
    assert_eq!(at("vestibule_mail_queued", &[]), 0.0);
    assert_eq!(at("vestibule_store_up", &[]), 1.0);
    assert_eq!(at("vestibule_source_up", &[("source", "local")]), 1.0);
    assert!(at("vestibule_db_pool_connections", &[]) >= 1.0);
    // Nothing the person typed and no path with a token appears.
    assert!(!text.contains("wrong password") && !text.contains("alice"), "{text}");
    // Not on the public listener.
    assert_eq!(b.get("/metrics").await.status, 404);

    // A name guessed from one address: after its free failures the next attempt is refused before any check.
    let mut guesser = Browser::new(&server.base);
    for n in 1..=2 {
        let res = guesser.sign_in("local", "mallory", &format!("guess {n}"), "/me").await;
        assert_eq!(res.status, 401, "failure {n}: {}", res.body);
    }
    let res = guesser.sign_in("local", "mallory", "guess 3", "/me").await;
    assert_eq!(res.status, 429, "{}", res.body);
    let text = server.metrics().await;
    let refused = series(&text, "vestibule_throttle_refusals_total", &[("layer", "pair")]);
    assert!(refused.is_some_and(|n| n >= 1.0), "{refused:?} in:\n{text}");
    let audited = series(&text, "vestibule_audit_events_total", &[("event", "throttled")]);
    assert!(audited.is_some_and(|n| n >= 1.0), "{audited:?} in:\n{text}");
    assert!(!text.contains("mallory") && !text.contains("guess"), "{text}");
}
