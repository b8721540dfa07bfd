//! An authenticator app for tests: the RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 key at a time, as a
//! phone would compute it from the key an enrolment page shows.

use totp_rs::{Algorithm, Secret, TOTP};

/// The code of `base32_key` at Unix time `unix_secs`.
pub fn code(base32_key: &str, unix_secs: i64) -> String {
    let bytes = Secret::Encoded(base32_key.to_owned()).to_bytes().unwrap();
    let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, String::new()).unwrap();
    totp.generate(u64::try_from(unix_secs).unwrap())
}

/// Now, in Unix seconds, by the system clock (what a server started by a test reads).
pub fn now_secs() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(now).unwrap()
}

/// What each `<code class="token">` of a page holds, in order: the key and the URI of an enrolment page, the
/// recovery codes of the page that shows them.
pub fn code_elements(html: &str) -> Vec<String> {
    html.split("<code class=\"token\">")
        .skip(1)
        .filter_map(|rest| rest.split("</code>").next())
        .map(str::to_owned)
        .collect()
}
