//! The service password never shows in Debug output, errors or logs; nor do user passwords.

use vestibule_core::SourceError;

use crate::slapd::{Slapd, SVC_PASSWORD};
use crate::support::*;

#[tokio::test]
async fn service_password_is_not_in_debug_output() {
    let s = Slapd::shared();
    let c = search_config(s);
    let config_debug = format!("{c:?}");
    let src = source(c);
    // Use it, so that any lazily filled state is there too.
    sign_in(&src, "alice", "alice-password").await.expect("alice");
    let debug = format!("{src:?} {src:#?}");
    assert!(!debug.contains(SVC_PASSWORD), "{debug}");
    assert!(!config_debug.contains(SVC_PASSWORD), "{config_debug}");
    assert!(
        debug.contains("corp"),
        "the Debug output still says which source it is: {debug}"
    );
}

#[tokio::test]
async fn passwords_are_not_in_errors_or_logs() {
    let s = Slapd::shared();
    let (logs, _default) = capture_logs();

    let wrong_service_password = "Wr0ng-Service-Passw0rd";
    let secret_file = s.dir.join("wrong-svc-password");
    std::fs::write(&secret_file, wrong_service_password).expect("write");
    let user_password = "Us3r-Typed-Passw0rd";

    let mut errors = Vec::new();
    // The directory refuses the service account.
    let mut c = search_config(s);
    c.bind_password_file = Some(secret_file.clone());
    let src = source(c);
    errors.push(
        sign_in(&src, "alice", user_password)
            .await
            .expect_err("bad service password"),
    );
    assert!(matches!(errors[0], SourceError::Unavailable(_)), "{:?}", errors[0]);
    // A wrong user password, an unknown user, an unreachable directory, an unverified certificate.
    let src = source(search_config(s));
    errors.push(sign_in(&src, "alice", user_password).await.expect_err("wrong password"));
    errors.push(sign_in(&src, "nobody", user_password).await.expect_err("unknown"));
    let mut c = search_config(s);
    // Bound but not listening, held until the end of the test: connections are refused.
    let down = vestibule_tests::net::RefusingPort::new();
    c.url = format!("ldap://{}", down.addr());
    errors.push(sign_in(&source(c), "alice", user_password).await.expect_err("down"));
    let mut c = search_config(s);
    c.url = s.ldaps_url();
    errors.push(sign_in(&source(c), "alice", user_password).await.expect_err("bad cert"));
    // A config problem names the key, not the value.
    let mut c = search_config(s);
    c.bind_password_env = Some("VESTIBULE_TEST_UNSET".into());
    let issue = vestibule_ldap::LdapSource::new(c).expect_err("both secret keys");

    let mut all = errors.iter().map(error_text).collect::<Vec<_>>().join("\n");
    all.push_str(&format!("\n{issue} {issue:?}"));
    let logged = logs.text();
    for secret in [SVC_PASSWORD, wrong_service_password, user_password] {
        assert!(!all.contains(secret), "{secret} in errors:\n{all}");
        assert!(!logged.contains(secret), "{secret} in logs:\n{logged}");
    }
    // The logs did capture the details the person is not shown.
    assert!(logged.contains("refused the service account"), "{logged}");
    assert!(logged.contains("user bind refused"), "{logged}");
}
