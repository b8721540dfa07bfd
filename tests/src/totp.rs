//! An authenticator app for tests: the RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 key at a time, as a
//! phone would compute it from the key an enrolment page shows.

use totp_rs::{Algorithm, Secret, TOTP};

/// The code of `base32_key` at Unix time `unix_secs`.
pub fn code(base32_key: &str, unix_secs: i64) -> String {
    let bytes = Secret::Encoded(base32_key.to_owned()).to_bytes().unwrap();
    let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, String::new()).unwrap();
    totp.generate(u64::try_from(unix_secs).unwrap())
}

/// The code of `base32_key` now, by the system clock (for tests against the real binary).
pub fn code_now(base32_key: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    code(base32_key, i64::try_from(now).unwrap())
}

/// The Unix time at which the next 30-second step starts (to wait for a fresh code without guessing).
pub fn next_step_at() -> std::time::SystemTime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::time::UNIX_EPOCH + std::time::Duration::from_secs((now / 30 + 1) * 30)
}
