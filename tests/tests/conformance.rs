//! The source conformance kit (`vestibule_tests::conformance`) run on every source of this workspace, each against
//! its real backend: local accounts over a SQLite store, LDAP over a throwaway slapd that accepts empty-password
//! binds (so an empty password the source let through would sign in), OpenID Connect and the Google preset over
//! the Node oidc-provider, and GitHub over the fake GitHub. examples/custom-source runs it in its own tests.

use std::sync::Arc;

use vestibule_core::{async_trait, AccountId, BoxError, CredentialRepository, SourceId, StoredPassword, Timestamp};
use vestibule_local::{Argon2Settings, LocalConfig, LocalSource, PasswordHasher};
use vestibule_store::{NewLocalAccount, Store};
use vestibule_tests::conformance::{PasswordSourceKit, RedirectSourceKit};
use vestibule_tests::github::{Account, FakeGithub, CLIENT_ID, CLIENT_SECRET};
use vestibule_tests::ldap::{Options, Slapd, PEOPLE, SVC_DN, SVC_PASSWORD};
use vestibule_tests::net::RefusingPort;
use vestibule_tests::oidc::{authorize, browser, secret_env, NodeOptions, NodeProvider, Person};
use vestibule_tests::server::TempDir;

fn id(s: &str) -> SourceId {
    SourceId::new(s).expect("source id")
}

/// Cheap argon2 parameters: the kit counts verifications, it does not need them slow.
const CHEAP: Argon2Settings = Argon2Settings {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// A credential store that cannot be reached.
struct Down;

#[async_trait]
impl CredentialRepository for Down {
    async fn find_password(&self, _: &str) -> Result<Option<StoredPassword>, BoxError> {
        Err("the store is down".into())
    }
    async fn find_password_of(&self, _: &AccountId) -> Result<Option<StoredPassword>, BoxError> {
        Err("the store is down".into())
    }
    async fn replace_password_hash(&self, _: &AccountId, _: &str, _: &str) -> Result<bool, BoxError> {
        Err("the store is down".into())
    }
}

#[tokio::test]
async fn local_source_over_sqlite() {
    let dir = TempDir::new("vestibule-conformance-local");
    let store = Store::connect(&format!("sqlite://{}/c.db", dir.0.display()))
        .await
        .expect("sqlite store");
    store.migrate().await.expect("migrate");
    let hasher = Arc::new(PasswordHasher::new(CHEAP).expect("hasher"));
    let password = "conformance local password";
    store
        .create_local_account(
            &NewLocalAccount {
                source: id("local"),
                username: "Ann".into(),
                display_name: None,
                email: Some("ann@example.org".into()),
                email_verified: true,
                password_hash: hasher.hash(password.into()).await.expect("hash").into(),
            },
            Timestamp(1_800_000_000),
        )
        .await
        .expect("account");
    let config = LocalConfig {
        id: id("local"),
        display_name: None,
        argon2: CHEAP,
        password: Default::default(),
    };
    let source = LocalSource::new(&config, Arc::new(store), hasher.clone());
    let down = LocalSource::new(&config, Arc::new(Down), hasher.clone());
    let counted = hasher.clone();
    let report = PasswordSourceKit::new(&source, "ann", password)
        .debug_of("the configuration", &config)
        .effort_counter("argon2 verifications", move || counted.verifications())
        .backend_down(&down)
        .run()
        .await;
    println!("{report}");
}

#[tokio::test]
async fn ldap_source_over_slapd() {
    // `allow bind_anon_dn`: this server answers an empty-password bind with success, so a source that let an
    // empty password through would sign the person in.
    let slapd = Slapd::start(Options {
        tls: false,
        allow_bind_anon_dn: true,
    });
    let secret_file = slapd.dir.join("svc-password");
    std::fs::write(&secret_file, format!("{SVC_PASSWORD}\n")).expect("secret file");
    let config = |url: String| {
        let mut c = vestibule_ldap::LdapConfig::new(id("corp"), url);
        c.bind_dn = Some(SVC_DN.into());
        c.bind_password_file = Some(secret_file.clone());
        c.user_base = Some(PEOPLE.into());
        c.connect_timeout_secs = 2;
        c.timeout_secs = 2;
        c
    };
    let c = config(slapd.ldap_url());
    let source = vestibule_ldap::LdapSource::new(c.clone()).expect("source");
    let refusing = RefusingPort::new();
    let down = vestibule_ldap::LdapSource::new(config(format!("ldap://{}", refusing.addr()))).expect("source");
    let slapd = &slapd;
    let report = PasswordSourceKit::new(&source, "alice", "alice-password")
        .secret(SVC_PASSWORD)
        .debug_of("the configuration", &c)
        .effort_counter("binds at the directory", move || slapd.binds())
        .backend_down(&down)
        .run()
        .await;
    println!("{report}");
}

const OIDC_SECRET: &str = "conformance-oidc-secret-0123456789abcdef";

/// Runs the redirect kit on an `oidc`-shaped source (`kind = "oidc"` or `"google"`) built by `make` from its TOML,
/// against a Node provider of its own where `alice` signs in. `toml` gets the issuer and the secret's variable.
async fn over_the_node_provider<C: serde::de::DeserializeOwned + std::fmt::Debug + Clone>(
    id: &str,
    toml: impl Fn(&str, &str) -> String,
    make: impl Fn(C) -> vestibule_oidc::OidcSource,
) {
    let callback = format!("http://127.0.0.1:9/callback/{id}");
    let op = NodeProvider::start(NodeOptions {
        client_id: "vestibule",
        client_secret: OIDC_SECRET,
        redirect_uri: &callback,
        claims_in: "id_token",
        port: 0,
    });
    let var = secret_env(&format!("CONFORMANCE_{}", id.to_uppercase()), OIDC_SECRET);
    let config: C = ::toml::from_str(&toml(&op.issuer, &var)).expect("config");
    let source = make(config.clone());
    let callback = callback.as_str();
    let report = RedirectSourceKit::new(&source, callback)
        .secret(OIDC_SECRET)
        .debug_of("the configuration", &config)
        .provider(|url| async move { authorize(&browser(), &url, callback, Person::SignIn("alice")).await })
        .run()
        .await;
    println!("{report}");
}

#[tokio::test]
async fn oidc_source_over_the_node_provider() {
    over_the_node_provider(
        "corp",
        |issuer, var| {
            format!("id = \"corp\"\nissuer = \"{issuer}\"\nclient_id = \"vestibule\"\nclient_secret_env = \"{var}\"\n")
        },
        |c: vestibule_oidc::OidcConfig| vestibule_oidc::OidcSource::new(c).expect("source"),
    )
    .await;
}

#[tokio::test]
async fn google_preset_over_the_node_provider() {
    // The preset with its issuer pointed at the local provider: everything else is Google's.
    over_the_node_provider(
        "google",
        |issuer, var| {
            format!(
                "id = \"google\"\nclient_id = \"vestibule\"\nclient_secret_env = \"{var}\"\nissuer = \"{issuer}\"\n"
            )
        },
        |c: vestibule_oidc::GoogleConfig| vestibule_oidc::OidcSource::google(c).expect("source"),
    )
    .await;
}

#[tokio::test]
async fn github_source_over_the_fake_github() {
    let callback = "https://broker.example/callback/github";
    let gh = FakeGithub::start().await;
    let var = secret_env("CONFORMANCE_GITHUB", CLIENT_SECRET);
    let config: vestibule_oidc::GithubConfig = toml::from_str(&format!(
        "id = \"github\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_env = \"{var}\"\n{}",
        gh.endpoints_toml()
    ))
    .expect("config");
    let source = vestibule_oidc::GithubSource::new(config.clone()).expect("source");
    let gh = &gh;
    let report = RedirectSourceKit::new(&source, callback)
        .secret(CLIENT_SECRET)
        .debug_of("the configuration", &config)
        // GitHub is plain OAuth2: no ID token, so no nonce.
        .without_nonce()
        .provider(move |url| {
            let params = gh.authorize(&url, callback, Account::Octocat);
            async move { params }
        })
        .run()
        .await;
    println!("{report}");
}
