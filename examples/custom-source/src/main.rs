//! Run with: `cargo run -p example-custom-source`, then open http://127.0.0.1:3001/login and sign in as
//! `ada` / `analytical engine`.
//!
//! A sign-in source written outside Vestibule's own crates: it depends on `vestibule-core` only, implements
//! `AuthSource` + `PasswordFlow` over a fixed in-memory user list, and is registered with the broker next to
//! nothing else.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vestibule::Broker;
use vestibule_axum::{HttpSettings, Vestibule};
use vestibule_core::{
    AuthSource, ExposeSecret, ExternalIdentity, Flow, PasswordFlow, RejectReason, SecretString, SourceError, SourceId,
    Subject,
};
use vestibule_store::Store;

/// A fixed list of users. Real sources hash with argon2; SHA-256 keeps the example short, and comparing digests
/// in constant time keeps it honest about timing.
struct FixedUsers {
    id: SourceId,
    users: Vec<FixedUser>,
}

/// By hand, not derived: the password digests stay out of logs.
impl std::fmt::Debug for FixedUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedUsers")
            .field("id", &self.id)
            .field("users", &self.users.len())
            .finish()
    }
}

struct FixedUser {
    login: &'static str,
    subject: &'static str,
    name: &'static str,
    password_sha256: [u8; 32],
}

impl FixedUsers {
    fn new(id: SourceId) -> Self {
        let user = |login, subject, name, password: &str| FixedUser {
            login,
            subject,
            name,
            password_sha256: Sha256::digest(password.as_bytes()).into(),
        };
        FixedUsers {
            id,
            users: vec![
                user("ada", "u-1815", "Ada Lovelace", "analytical engine"),
                user("grace", "u-1906", "Grace Hopper", "compile everything"),
            ],
        }
    }
}

impl AuthSource for FixedUsers {
    fn id(&self) -> &SourceId {
        &self.id
    }
    fn display_name(&self) -> &str {
        "Fixed users"
    }
    fn flow(&self) -> Flow<'_> {
        Flow::Password(self)
    }
}

#[async_trait]
impl PasswordFlow for FixedUsers {
    async fn authenticate(&self, login: &str, password: &SecretString) -> Result<ExternalIdentity, SourceError> {
        let presented: [u8; 32] = Sha256::digest(password.expose_secret().as_bytes()).into();
        // Compare against every user so unknown names cost the same as known ones.
        let mut found = None;
        for u in &self.users {
            let same_password = bool::from(u.password_sha256.ct_eq(&presented));
            if u.login == login && same_password {
                found = Some(u);
            }
        }
        let u = found.ok_or(SourceError::Rejected(RejectReason::InvalidCredentials))?;
        Ok(ExternalIdentity::new(self.id.clone(), Subject::new(u.subject)?)
            .with_login(u.login)
            .with_display_name(u.name))
    }
}

async fn app(database_url: &str, base_url: &str) -> Result<axum::Router, Box<dyn std::error::Error>> {
    let store = Store::connect(database_url).await?;
    store.migrate().await?;
    let broker = Broker::builder(store, base_url)
        .source(Arc::new(FixedUsers::new(SourceId::new("fixed")?)))
        .build()
        .await?;
    let auth = Vestibule::new(
        Arc::new(broker),
        HttpSettings {
            secure_cookies: false,
            ..HttpSettings::default()
        },
    );
    Ok(vestibule_axum::router(auth))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 3001));
    let router = app("sqlite://example-custom-source.db", &format!("http://{addr}")).await?;
    println!("example-custom-source on http://{addr}/login — sign in as ada / analytical engine");
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn text(res: axum::response::Response) -> String {
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    fn cookie(res: &axum::response::Response, name: &str) -> String {
        res.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .unwrap()
    }

    /// The contract every source keeps, checked by Vestibule's conformance kit (`vestibule-tests`).
    #[tokio::test]
    async fn the_custom_source_passes_the_conformance_kit() {
        let source = FixedUsers::new(SourceId::new("fixed").unwrap());
        let report = vestibule_tests::conformance::PasswordSourceKit::new(&source, "ada", "analytical engine")
            .run()
            .await;
        println!("{report}");
    }

    #[tokio::test]
    async fn the_custom_source_signs_people_in_through_the_broker() {
        let dir = std::env::temp_dir().join(format!("example-custom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let router = app(&format!("sqlite://{}/t.db", dir.display()), "http://127.0.0.1:3001")
            .await
            .unwrap();

        let page = router
            .clone()
            .oneshot(axum::http::Request::get("/login").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let csrf_cookie = cookie(&page, "vestibule-csrf");
        let body = text(page).await;
        // The only password source: the login page's one form posts to it (and shows no choice of source).
        assert!(
            body.contains("action=\"/login/fixed\""),
            "the source is on the login page"
        );
        let token = body
            .split("name=\"csrf_token\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();

        let login = |password: &'static str| {
            axum::http::Request::post("/login/fixed")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", csrf_cookie.clone())
                .body(Body::from(format!(
                    "csrf_token={token}&username=ada&password={password}"
                )))
                .unwrap()
        };
        let bad = router.clone().oneshot(login("wrong")).await.unwrap();
        assert_eq!(bad.status(), 401);
        let good = router.clone().oneshot(login("analytical%20engine")).await.unwrap();
        assert_eq!(good.status(), 303);
        let session = cookie(&good, "vestibule-session");

        let me = router
            .oneshot(
                axum::http::Request::get("/me")
                    .header("cookie", session)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        let me = text(me).await;
        assert!(
            me.contains("\"subject\":\"u-1815\"") && me.contains("Ada Lovelace"),
            "{me}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
