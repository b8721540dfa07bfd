//! Authorization for the app's own routes: `RequireGroup` and the refusal rules every `Require*` extractor shares
//! (browser vs API client × signed out vs lacking the group vs allowed), and the app's own forms checked by
//! `CsrfForm` (missing, wrong and another session's token refused; an unchecked form shows what it stops).

use axum::body::Body;
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Form, Router};
use http::{Request, StatusCode};
use serde::Deserialize;
use vestibule_axum::{CsrfForm, CsrfToken, RequireGroup, RequireUser};

use super::{app, bearer_get, get_req, post_req, read_token, send, sign_in, Res};

vestibule_axum::group!(Staff = "staff", Admins = "admins");

#[derive(Deserialize)]
struct Note {
    text: String,
}

/// The routes the app under test adds for this module: ann (of the directory) is in `staff`, not in `admins`.
pub(super) fn routes() -> Router {
    Router::new()
        .route(
            "/staff",
            get(|RequireGroup(u, ..): RequireGroup<Staff>| async move { format!("staff {}", u.account_id) }),
        )
        .route(
            "/admins",
            get(|RequireGroup(u, ..): RequireGroup<Admins>| async move { format!("admins {}", u.account_id) }),
        )
        // The same two, as a route layer over routes that name no group.
        .merge(
            Router::new()
                .route("/layered/admins", get(|| async { "admins" }))
                .route_layer(vestibule_axum::require_group("admins")),
        )
        .merge(
            Router::new()
                .route("/layered/staff", get(|| async { "staff" }))
                .route_layer(vestibule_axum::require_group("staff")),
        )
        .route(
            "/csrf",
            get(|csrf: CsrfToken| async move {
                let field = format!("<input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">");
                (csrf, Html(field))
            }),
        )
        .route(
            "/note",
            post(|CsrfForm(note): CsrfForm<Note>| async move { format!("noted {}", note.text) }),
        )
        .route(
            "/note-unchecked",
            post(|_: RequireUser, Form(note): Form<Note>| async move { format!("noted {}", note.text) }),
        )
}

fn code(res: &Res) -> String {
    let v: serde_json::Value = serde_json::from_str(&res.body).unwrap_or_else(|_| panic!("not JSON: {}", res.body));
    v["error"].as_str().unwrap().to_owned()
}

fn post_as(path: &str, cookie: &str, accept: &str, form: &str) -> Request<Body> {
    let mut req = post_req(path, cookie, form);
    req.headers_mut().insert("accept", accept.parse().unwrap());
    req
}

#[tokio::test]
async fn require_group_refuses_by_who_asks_and_what_they_lack() {
    let app = app().await;
    const BROWSER: &str = "text/html,application/xhtml+xml";
    const API: &str = "application/json";

    // Signed out: a browser's GET goes to sign in and comes back; an API client gets 401.
    let res = send(&app, get_req("/admins?x=1", "", BROWSER)).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.header("location"), "/auth/login?next=%2Fadmins%3Fx%3D1");
    let res = send(&app, get_req("/admins", "", API)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&res), "unauthenticated");
    // A browser's POST is sent to sign in too (a form posted after the session ended); an API client's gets 401.
    let res = send(&app, post_as("/note-unchecked", "", BROWSER, "text=hi")).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.header("location"), "/auth/login?next=%2Fnote%2Dunchecked");
    let res = send(&app, post_as("/note-unchecked", "", API, "text=hi")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&res), "unauthenticated");

    // Signed in, not in the group: a page for a browser, the admin API's JSON shape for a client.
    let session = sign_in(&app).await;
    let res = send(&app, get_req("/admins", &session, BROWSER)).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.header("content-type").starts_with("text/html"), "{:?}", res.headers);
    assert!(res.body.contains("Not allowed"), "{}", res.body);
    assert!(
        !res.body.contains("admins"),
        "the page does not name the group: {}",
        res.body
    );
    let res = send(&app, get_req("/admins", &session, API)).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(code(&res), "forbidden");
    // The page is in the request's language, like the broker's own.
    let mut de = get_req("/admins", &session, BROWSER);
    de.headers_mut().insert("accept-language", "de".parse().unwrap());
    assert!(send(&app, de).await.body.contains("Nicht erlaubt"));

    // In the group: both pass.
    for accept in [BROWSER, API] {
        let res = send(&app, get_req("/staff", &session, accept)).await;
        assert_eq!(res.status, StatusCode::OK, "{accept}");
        assert!(res.body.starts_with("staff "), "{}", res.body);
    }

    // A token acts for its account: ann's passes `staff`, not `admins`.
    let token = read_token(&app, &session).await;
    let bearer = |path: &str| bearer_get(&token, path, "application/json");
    assert_eq!(send(&app, bearer("/staff")).await.status, StatusCode::OK);
    let res = send(&app, bearer("/admins")).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(code(&res), "forbidden");
}

/// `require_group` as a route layer refuses every kind of request exactly as the `RequireGroup` extractor does (the
/// same status, body and redirect, `next` aside), and lets members through.
#[tokio::test]
async fn the_route_layer_refuses_exactly_as_the_extractor() {
    let app = app().await;
    let session = sign_in(&app).await;
    let token = read_token(&app, &session).await;
    let asking = |path: &str, who: &str, accept: &str| match who {
        "nobody" => get_req(path, "", accept),
        "session" => get_req(path, &session, accept),
        _ => bearer_get(&token, path, accept),
    };
    for who in ["nobody", "session", "token"] {
        for accept in ["text/html", "application/json"] {
            let by_extractor = send(&app, asking("/admins", who, accept)).await;
            let by_layer = send(&app, asking("/layered/admins", who, accept)).await;
            assert_ne!(by_layer.status, StatusCode::OK, "{who} {accept}: refused");
            assert_eq!(by_layer.status, by_extractor.status, "{who} {accept}");
            assert_eq!(by_layer.body, by_extractor.body, "{who} {accept}");
            assert_eq!(
                by_layer.header("location").replace("layered%2F", ""),
                by_extractor.header("location"),
                "{who} {accept}"
            );
        }
    }
    for who in ["session", "token"] {
        let res = send(&app, asking("/layered/staff", who, "text/html")).await;
        assert_eq!((res.status, res.body.as_str()), (StatusCode::OK, "staff"), "{who}");
    }
    // A path under the layer that is no route stays a 404 (route_layer), whoever asks.
    assert_eq!(
        send(&app, get_req("/layered/nothing", "", "text/html")).await.status,
        StatusCode::NOT_FOUND
    );
}

/// The token a page of the app gives, and the cookie pair it is bound to when signed out.
async fn csrf_of(app: &super::App, cookie: &str) -> (String, Option<String>) {
    let res = send(app, get_req("/csrf", cookie, "text/html")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let token = super::hidden(&res.body, "csrf_token");
    let set = res
        .cookie("__Host-vestibule-csrf")
        .map(|c| c.split(';').next().unwrap().to_owned());
    (token, set)
}

#[tokio::test]
async fn app_forms_are_taken_only_with_this_browsers_csrf_token() {
    let app = app().await;
    let session = sign_in(&app).await;
    // The attack, against a form taken without the check: a cross-site post riding the session cookie works.
    let forged = send(&app, post_req("/note-unchecked", &session, "text=forged")).await;
    assert_eq!(forged.status, StatusCode::OK, "{}", forged.body);

    // With `CsrfForm`: no token, a wrong one, another session's: refused before the handler.
    let res = send(&app, post_as("/note", &session, "text/html", "text=forged")).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.body.contains("Form expired"), "{}", res.body);
    let res = send(
        &app,
        post_as("/note", &session, "application/json", "text=forged&csrf_token=abc"),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(code(&res), "csrf_failed");
    let other = sign_in(&app).await;
    assert_ne!(other, session);
    let (theirs, _) = csrf_of(&app, &other).await;
    let res = send(
        &app,
        post_req("/note", &session, &format!("text=forged&csrf_token={theirs}")),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);
    assert!(!res.body.contains("noted"));

    // This session's token: taken, and the rest of the form reaches the handler.
    let (mine, set) = csrf_of(&app, &session).await;
    assert_eq!(set, None, "signed in, the token binds to the session: no new cookie");
    let res = send(
        &app,
        post_req("/note", &session, &format!("csrf_token={mine}&text=mine")),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, "noted mine");
    // A body not of the form's shape, with a good token: 400.
    let res = send(&app, post_req("/note", &session, &format!("csrf_token={mine}"))).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);

    // Signed out: the token binds to the pre-session cookie the page set; without that cookie it is refused.
    let (token, cookie) = csrf_of(&app, "").await;
    let cookie = cookie.expect("the page sets the pre-session cookie");
    let form = format!("csrf_token={token}&text=guest");
    assert_eq!(
        send(&app, post_req("/note", "", &form)).await.status,
        StatusCode::FORBIDDEN
    );
    let res = send(&app, post_req("/note", &cookie, &form)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);

    // The same token signs out through the broker's own `/logout`: the app can render its logout button.
    let res = send(&app, post_req("/auth/logout", &session, &format!("csrf_token={mine}"))).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        send(&app, get_req("/staff", &session, "application/json")).await.status,
        StatusCode::UNAUTHORIZED
    );
}
