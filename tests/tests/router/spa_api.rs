//! The JSON API for single-page apps (`/auth/api/...`) through the broker's router: sign-in with a password source,
//! the start of a redirect source, the second step, sign-out, `me`, sessions; every state-changing request refused
//! unless it carries `X-Vestibule-Request` and comes from the public URL's origin (login CSRF); errors as JSON
//! with stable codes.

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::{json, Value};

use super::{app, at_callback, audit_events, enrol_totp, get_req, send, sign_in, App, Res};

/// The public URL's origin (the test broker's base URL is `https://app.example.com/auth`).
const ORIGIN: &str = "https://app.example.com";

/// A request as the single-page app's `fetch` sends it: JSON, the custom header, the page's origin.
fn api(method: &str, path: &str, cookie: &str, body: Option<Value>) -> Request<Body> {
    api_with(
        method,
        path,
        cookie,
        body,
        &[("x-vestibule-request", "1"), ("origin", ORIGIN)],
    )
}

fn api_with(method: &str, path: &str, cookie: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path).header("cookie", cookie);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    }
}

fn json_of(res: &Res) -> Value {
    assert!(
        res.header("content-type").starts_with("application/json"),
        "{} {}: {}",
        res.status,
        res.header("content-type"),
        res.body
    );
    serde_json::from_str(&res.body).unwrap_or_else(|e| panic!("{e}: {}", res.body))
}

fn ann() -> Value {
    json!({ "source": "dir", "username": "ann", "password": "right password" })
}

async fn api_sign_in(app: &App) -> (Res, String) {
    let res = send(app, api("POST", "/auth/api/login", "", Some(ann()))).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let cookie = res.cookie_pair("__Host-vestibule-session");
    (res, cookie)
}

#[tokio::test]
async fn sign_in_me_sessions_and_sign_out() {
    let app = app().await;
    let sources = send(&app, get_req("/auth/api/sources", "", "application/json")).await;
    assert_eq!(
        json_of(&sources)["sources"],
        json!([
            { "id": "dir", "name": "Directory", "kind": "password" },
            { "id": "idp", "name": "Test IdP", "kind": "redirect" },
        ])
    );

    let (res, session) = api_sign_in(&app).await;
    let body = json_of(&res);
    assert_eq!(body["status"], "signed_in");
    assert_eq!(body["location"], "/auth/account");
    assert_eq!(body["account"]["display_name"], "Ann <Admin>");
    assert_eq!(body["account"]["groups"], json!(["staff"]));
    let cookie = res.cookie("__Host-vestibule-session").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("Secure"), "{cookie}");

    let me = json_of(&send(&app, get_req("/auth/api/me", &session, "application/json")).await);
    assert_eq!(me["id"], body["account"]["id"]);
    assert_eq!(me["amr"], json!(["pwd"]));

    let list = json_of(&send(&app, get_req("/auth/api/sessions", &session, "application/json")).await);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[0]["source"], "dir");

    let out = send(&app, api("POST", "/auth/api/logout", &session, None)).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    assert!(out.cookie("__Host-vestibule-session").unwrap().contains("Max-Age=0"));
    let me = send(&app, get_req("/auth/api/me", &session, "application/json")).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&me)["error"], "unauthenticated");
    let list = send(&app, get_req("/auth/api/sessions", &session, "application/json")).await;
    assert_eq!(list.status, StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&list)["error"], "unauthenticated");
}

/// Login CSRF: a page of another origin posting the right credentials (the attacker's own) must not sign the
/// visitor in. The same request with the header and this origin does sign in, so what refuses the others is the
/// origin check alone.
#[tokio::test]
async fn state_changing_requests_from_elsewhere_are_refused() {
    let app = app().await;
    let refused: &[(&str, &[(&str, &str)])] = &[
        ("no custom header", &[("origin", ORIGIN)]),
        (
            "another origin",
            &[("x-vestibule-request", "1"), ("origin", "https://evil.example")],
        ),
        (
            "the same host over http",
            &[("x-vestibule-request", "1"), ("origin", "http://app.example.com")],
        ),
        (
            "another port",
            &[("x-vestibule-request", "1"), ("origin", "https://app.example.com:8443")],
        ),
        (
            "a suffix",
            &[
                ("x-vestibule-request", "1"),
                ("origin", "https://app.example.com.evil.example"),
            ],
        ),
        ("an opaque origin", &[("x-vestibule-request", "1"), ("origin", "null")]),
        ("neither Origin nor Sec-Fetch-Site", &[("x-vestibule-request", "1")]),
        (
            "a cross-site fetch",
            &[("x-vestibule-request", "1"), ("sec-fetch-site", "cross-site")],
        ),
        (
            "a same-site fetch",
            &[("x-vestibule-request", "1"), ("sec-fetch-site", "same-site")],
        ),
        (
            "a forged Host naming the origin",
            &[
                ("x-vestibule-request", "1"),
                ("origin", "https://evil.example"),
                ("host", "evil.example"),
            ],
        ),
    ];
    for (why, headers) in refused {
        let res = send(&app, api_with("POST", "/auth/api/login", "", Some(ann()), headers)).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{why}: {}", res.body);
        assert_eq!(json_of(&res)["error"], "cross_origin", "{why}");
        assert!(
            res.cookie("__Host-vestibule-session").is_none(),
            "{why}: nobody signed in"
        );
    }
    // A form post, as an HTML form on another site can send it: refused before its body is read.
    let form = Request::post("/auth/api/login")
        .header("content-type", "text/plain")
        .header("origin", "https://evil.example")
        .body(Body::from(ann().to_string()))
        .unwrap();
    let res = send(&app, form).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    // Nothing was checked: no sign-in, failed or not, was audited.
    let events = audit_events(&app).await;
    assert!(!events.iter().any(|e| e.starts_with("login_")), "{events:?}");

    // Without Origin, a same-origin fetch is known by Sec-Fetch-Site; origins compare without case.
    let same = [("x-vestibule-request", "1"), ("sec-fetch-site", "same-origin")];
    let res = send(&app, api_with("POST", "/auth/api/login", "", Some(ann()), &same)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let upper = [("x-vestibule-request", "1"), ("origin", "HTTPS://APP.EXAMPLE.COM")];
    let res = send(&app, api_with("POST", "/auth/api/login", "", Some(ann()), &upper)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);

    // Signing out and ending sessions are guarded the same way: a forged sign-out changes nothing.
    let (_, session) = api_sign_in(&app).await;
    let forged = [("origin", "https://evil.example"), ("x-vestibule-request", "1")];
    for (method, path) in [("POST", "/auth/api/logout"), ("DELETE", "/auth/api/sessions/all")] {
        let res = send(&app, api_with(method, path, &session, None, &forged)).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}: {}", res.body);
    }
    let me = send(&app, get_req("/auth/api/me", &session, "application/json")).await;
    assert_eq!(me.status, StatusCode::OK, "still signed in");
}

#[tokio::test]
async fn errors_are_json_with_stable_codes_in_the_persons_language() {
    let app = app().await;
    let wrong = send(
        &app,
        api(
            "POST",
            "/auth/api/login",
            "",
            Some(json!({ "source": "dir", "username": "ann", "password": "no" })),
        ),
    )
    .await;
    let unknown = send(
        &app,
        api(
            "POST",
            "/auth/api/login",
            "",
            Some(json!({ "source": "dir", "username": "zed", "password": "no" })),
        ),
    )
    .await;
    for res in [&wrong, &unknown] {
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
        assert_eq!(json_of(res)["error"], "invalid_credentials");
    }
    assert_eq!(
        wrong.body, unknown.body,
        "the same answer for a known and an unknown name"
    );

    // A form-encoded body, a body that is not JSON, a missing field: invalid_request, as JSON.
    let form = Request::post("/auth/api/login")
        .header("x-vestibule-request", "1")
        .header("origin", ORIGIN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("source=dir&username=ann&password=right+password"))
        .unwrap();
    let mut bad = vec![send(&app, form).await];
    let mut broken = api("POST", "/auth/api/login", "", None);
    broken
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    *broken.body_mut() = Body::from("{\"source\":");
    bad.push(send(&app, broken).await);
    bad.push(
        send(
            &app,
            api("POST", "/auth/api/login", "", Some(json!({ "username": "ann" }))),
        )
        .await,
    );
    for res in &bad {
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
        assert_eq!(json_of(res)["error"], "invalid_request");
    }

    let res = send(
        &app,
        api("POST", "/auth/api/login", "", Some(json!({ "source": "nope" }))),
    )
    .await;
    assert_eq!(
        (res.status, json_of(&res)["error"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let res = send(&app, get_req("/auth/api/no-such-route", "", "text/html")).await;
    assert_eq!(
        (res.status, json_of(&res)["error"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let (_, session) = api_sign_in(&app).await;
    let res = send(&app, api("DELETE", "/auth/api/sessions/not-an-id", &session, None)).await;
    assert_eq!(
        (res.status, json_of(&res)["error"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );

    // The words follow the request's language; the code does not.
    let mut german = api(
        "POST",
        "/auth/api/login",
        "",
        Some(json!({ "source": "dir", "username": "ann", "password": "no" })),
    );
    german.headers_mut().insert("accept-language", "de".parse().unwrap());
    let res = json_of(&send(&app, german).await);
    assert_eq!(res["error"], "invalid_credentials");
    let english = json_of(&wrong);
    assert_ne!(res["message"], english["message"], "{res} {english}");
    assert!(!english["message"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn repeated_failures_are_429_with_retry_after() {
    let app = app().await;
    let wrong = json!({ "source": "dir", "username": "ann", "password": "wrong" });
    let mut throttled = None;
    for _ in 0..20 {
        let res = send(&app, api("POST", "/auth/api/login", "", Some(wrong.clone()))).await;
        if res.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(res);
            break;
        }
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    }
    let res = throttled.expect("throttled within 20 failures");
    let body = json_of(&res);
    assert_eq!(body["error"], "throttled");
    let wait = body["retry_after"].as_u64().expect("retry_after in seconds");
    assert_eq!(res.header("retry-after"), wait.to_string());
    // The right password during the wait is refused the same way.
    let res = send(&app, api("POST", "/auth/api/login", "", Some(ann()))).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(res.cookie("__Host-vestibule-session").is_none());
}

#[tokio::test]
async fn a_redirect_source_answers_where_to_send_the_browser() {
    let app = app().await;
    let res = send(
        &app,
        api(
            "POST",
            "/auth/api/login",
            "",
            Some(json!({ "source": "idp", "next": "/private" })),
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let body = json_of(&res);
    assert_eq!(body["status"], "redirect");
    let to = body["location"].as_str().unwrap();
    assert!(to.starts_with("https://idp.test/authorize?"), "{to}");
    let flow = res.cookie_pair("__Host-vestibule-flow");
    let state = to.split("state=").nth(1).unwrap().split('&').next().unwrap();
    // The provider sends the browser back to the callback, which signs in and goes on to `next`.
    let done = at_callback(&app, state, &flow).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.header("location"), "/private");
    // An unsafe `next` is dropped, not followed.
    let res = send(
        &app,
        api(
            "POST",
            "/auth/api/login",
            "",
            Some(json!({ "source": "idp", "next": "//evil.example/x" })),
        ),
    )
    .await;
    let flow = res.cookie_pair("__Host-vestibule-flow");
    let to = json_of(&res)["location"].as_str().unwrap().to_owned();
    let state = to.split("state=").nth(1).unwrap().split('&').next().unwrap();
    let done = at_callback(&app, state, &flow).await;
    assert_eq!(done.header("location"), "/auth/account");
}

#[tokio::test]
async fn the_second_step_by_code_and_its_failures() {
    let app = app().await;
    let session = sign_in(&app).await;
    let (key, _) = enrol_totp(&app, &session).await;

    let res = send(&app, api("POST", "/auth/api/login", "", Some(ann()))).await;
    let body = json_of(&res);
    assert_eq!(body["status"], "second_factor", "{body}");
    assert_eq!(body["location"], "/auth/login/second-factor");
    assert!(
        res.cookie("__Host-vestibule-session").is_none(),
        "no session before the second step"
    );
    let half = res.cookie_pair("__Host-vestibule-2fa");
    // The half-signed-in state is nobody.
    let me = send(&app, get_req("/auth/api/me", &half, "application/json")).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);

    let wrong = send(
        &app,
        api(
            "POST",
            "/auth/api/login/second-factor",
            &half,
            Some(json!({ "code": "000000" })),
        ),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert_eq!(json_of(&wrong)["error"], "invalid_code");
    // The next step's code: the current one was used to confirm the enrolment, and a code is taken once.
    let code = vestibule_tests::totp::code(&key, vestibule_tests::totp::now_secs() + 30);
    let done = send(
        &app,
        api(
            "POST",
            "/auth/api/login/second-factor",
            &half,
            Some(json!({ "code": code })),
        ),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(json_of(&done)["status"], "signed_in");
    assert!(done.cookie("__Host-vestibule-2fa").unwrap().contains("Max-Age=0"));
    let multi = done.cookie_pair("__Host-vestibule-session");
    let me = json_of(&send(&app, get_req("/auth/api/me", &multi, "application/json")).await);
    assert_eq!(me["amr"], json!(["pwd", "otp"]));

    // The state is single use; without one, or with a forged one, it is `expired`.
    for cookie in [half.as_str(), "", "__Host-vestibule-2fa=made-up"] {
        let res = send(
            &app,
            api(
                "POST",
                "/auth/api/login/second-factor",
                cookie,
                Some(json!({ "code": code })),
            ),
        )
        .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{cookie}: {}", res.body);
        assert_eq!(json_of(&res)["error"], "expired", "{cookie}");
    }
}

#[tokio::test]
async fn ending_one_session_others_or_all() {
    let app = app().await;
    let (_, first) = api_sign_in(&app).await;
    let (_, second) = api_sign_in(&app).await;
    let (_, third) = api_sign_in(&app).await;
    let list = json_of(&send(&app, get_req("/auth/api/sessions", &first, "application/json")).await);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    let id_of_another = sessions
        .iter()
        .find(|s| s["current"] == false)
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .unwrap();
    let res = send(
        &app,
        api("DELETE", &format!("/auth/api/sessions/{id_of_another}"), &first, None),
    )
    .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.body);
    let alive = |cookie: String| {
        let app = &app;
        async move {
            send(app, get_req("/auth/api/me", &cookie, "application/json"))
                .await
                .status
                == StatusCode::OK
        }
    };
    let left = [alive(second.clone()).await, alive(third.clone()).await];
    assert_eq!(
        left.iter().filter(|a| **a).count(),
        1,
        "exactly the named one ended: {left:?}"
    );
    assert!(alive(first.clone()).await);

    let res = send(&app, api("DELETE", "/auth/api/sessions/all", &first, None)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.cookie("__Host-vestibule-session").unwrap().contains("Max-Age=0"));
    for cookie in [first, second, third] {
        assert!(!alive(cookie).await);
    }
}
