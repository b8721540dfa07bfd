//! The account page of the real `vestibule` binary, used through its own forms: "Sign out everywhere" ends every
//! session of the account, the current one and remembered browsers included.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use vestibule_tests::browser::{Browser, Page};
use vestibule_tests::server::{Server, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vestibule");
const PASSWORD: &str = "correct horse battery";

/// Signs in as alice with "remember me" ticked, from a browser of its own.
async fn signed_in(server: &Server, agent: &str) -> Browser {
    let mut b = Browser::new(&server.base);
    b.user_agent = agent.into();
    let res = b.sign_in_remembered("local", "alice", PASSWORD).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(b.cookies.contains_key("vestibule-remember"));
    b
}

/// The form on `page` that holds `<input ... name="session" value="{session}">`: its action and its fields, as a
/// browser would submit them.
fn form_with(page: &Page, session: &str) -> Option<(String, Vec<(String, String)>)> {
    let marker = format!("name=\"session\" value=\"{session}\"");
    let form = page
        .body
        .split("<form")
        .skip(1)
        .map(|f| f.split("</form>").next().unwrap_or(f))
        .find(|f| f.contains(&marker))?;
    let attr = |tag: &str, name: &str| {
        let key = format!("{name}=\"");
        let start = tag.find(&key)? + key.len();
        Some(tag[start..].split('"').next()?.to_owned())
    };
    let action = attr(form.split('>').next()?, "action")?;
    let fields = form
        .split("<input")
        .skip(1)
        .filter_map(|input| Some((attr(input, "name")?, attr(input, "value")?)))
        .collect();
    Some((action, fields))
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session_including_this_one() {
    let dir = TempDir::new("vestibule-account");
    let server = Server::start(Path::new(BIN), &dir.0, "[database]\nurl = \"sqlite://{dir}/v.db\"\n");
    server.add_user("alice", "alice@example.org", PASSWORD);
    let mut laptop = signed_in(&server, "laptop").await;
    let mut phone = signed_in(&server, "phone").await;

    let page = laptop.get("/account").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (action, fields) =
        form_with(&page, "all").unwrap_or_else(|| panic!("no \"sign out everywhere\" form:\n{}", page.body));
    assert!(page.body.contains("Sign out everywhere"), "{}", page.body);
    assert_eq!(action, "/account/sessions/revoke");
    assert!(
        fields
            .iter()
            .any(|(k, v)| k == "csrf_token" && Some(v) == page.csrf_token().as_ref()),
        "{fields:?}"
    );
    // The existing buttons stay.
    assert!(form_with(&page, "others").is_some());
    assert!(page.body.contains("/logout"));

    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = laptop.post(&action, &fields).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/login"));

    // This browser is signed out, though it still holds its remember-me cookie; so is the other one.
    assert!(laptop.cookies.contains_key("vestibule-remember"));
    assert_eq!(laptop.get_json("/me").await.status, 401);
    let next = laptop.get("/account").await;
    assert_eq!(next.status, 303, "the next request is signed out: {}", next.body);
    assert!(next.location().unwrap().starts_with("/login"), "{:?}", next.location());
    assert_eq!(phone.get_json("/me").await.status, 401);
}

/// The account page offers only ways in the account can still add: alice has a local password, so linking the
/// local source (a second password, or someone else's local account) is not offered; GitHub, which she has not
/// linked, is. Its sections come in a fixed order, headings only one level deeper at a time.
#[tokio::test]
async fn the_account_page_does_not_offer_the_local_source_to_an_account_with_a_password() {
    let dir = TempDir::new("vestibule-account");
    std::fs::write(dir.0.join("gh-secret"), "not-a-real-secret").unwrap();
    // GitHub-shaped endpoints that are never reached: only the page is looked at.
    let config = "[database]\nurl = \"sqlite://{dir}/v.db\"\n\n\
                  [[sources]]\nkind = \"local\"\nid = \"local\"\n\n\
                  [[sources]]\nkind = \"github\"\nid = \"github\"\nclient_id = \"x\"\n\
                  client_secret_file = \"{dir}/gh-secret\"\nauthorize_url = \"http://127.0.0.1:9/authorize\"\n\
                  token_url = \"http://127.0.0.1:9/token\"\napi_base_url = \"http://127.0.0.1:9/api\"\n";
    let server = Server::start(Path::new(BIN), &dir.0, config);
    server.add_user("alice", "alice@example.org", PASSWORD);
    let mut b = Browser::new(&server.base);
    assert_eq!(b.sign_in("local", "alice", PASSWORD, "").await.status, 303);

    let page = b.get("/account").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("/account/link/local"), "{}", page.body);
    assert!(page.body.contains("action=\"/account/link/github\""), "{}", page.body);
    // Her only way in cannot be removed.
    assert!(!page.body.contains("action=\"/account/unlink\""), "{}", page.body);

    let levels: Vec<u8> = page
        .body
        .match_indices("<h")
        .filter_map(|(i, _)| page.body[i + 2..].chars().next()?.to_digit(10))
        .map(|d| u8::try_from(d).unwrap())
        .collect();
    assert_eq!(levels.first(), Some(&1), "{levels:?}");
    assert!(
        levels.windows(2).all(|w| w[1] <= w[0] + 1),
        "a heading skips a level: {levels:?}"
    );
    let sections: Vec<&str> = page
        .body
        .split("<h2")
        .skip(1)
        .filter_map(|h| h.split('>').nth(1)?.split('<').next())
        .collect();
    assert_eq!(sections, ["Ways to sign in", "Security", "Sessions"]);
    assert_eq!(page.body.matches("<section").count(), 3);
}
