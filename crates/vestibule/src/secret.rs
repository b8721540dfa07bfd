use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A 256-bit random bearer value (session id, flow binding): shown to the browser once, stored only as its hash.
/// `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// 32 bytes from the operating system's CSPRNG, base64url without padding (43 characters).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SecretToken(URL_SAFE_NO_PAD.encode(bytes))
    }
    /// The value, for a `Set-Cookie` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Hex SHA-256, as stored.
    pub fn hash_hex(&self) -> String {
        hex_of(&hash_token(&self.0))
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(..)")
    }
}

/// SHA-256 of a presented token. A fast hash is right here: the input is 256 random bits, not a password.
pub fn hash_token(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// 128 random bits as 32 lowercase hex characters: ids that reveal neither order nor count.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex_of(&bytes)
}

pub(crate) fn hex_of(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// Tokens a browser could send have a fixed shape; anything else is refused before hashing or a lookup.
pub(crate) fn plausible(value: &str) -> bool {
    // Every byte is looked at, without stopping early: the compiler turns this into a few vector compares, where
    // the short-circuiting form was a 43-step branchy loop that showed in the session check's profile
    // (BENCHMARKS.md). The answer is the same (a unit test compares the two on every byte).
    value.len() == 43 && value.bytes().fold(true, |ok, b| ok & url_safe(b))
}

/// A byte of base64url without padding: `A-Z`, `a-z`, `0-9`, `-`, `_`. Written with `|` (no short circuit) so that
/// [`plausible`] vectorises.
fn url_safe(b: u8) -> bool {
    b.is_ascii_uppercase() | b.is_ascii_lowercase() | b.is_ascii_digit() | (b == b'-') | (b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_formed() {
        let a = SecretToken::generate();
        let b = SecretToken::generate();
        assert_ne!(a, b);
        assert!(plausible(a.expose()));
        assert_eq!(a.hash_hex().len(), 64);
        assert!(!format!("{a:?}").contains(a.expose()));
        assert!(!plausible("short"));
        assert!(!plausible(&"a".repeat(42).add_char('=')));
    }

    trait AddChar {
        fn add_char(self, c: char) -> String;
    }
    impl AddChar for String {
        fn add_char(mut self, c: char) -> String {
            self.push(c);
            self
        }
    }

    #[test]
    fn url_safe_is_base64url_on_every_byte() {
        for b in 0..=u8::MAX {
            let expected = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            assert_eq!(url_safe(b), expected, "byte {b}");
            // One byte anywhere in an id decides it.
            for at in [0, 21, 42] {
                let mut id = vec![b'a'; 43];
                id[at] = b;
                if let Ok(id) = std::str::from_utf8(&id) {
                    assert_eq!(plausible(id), expected, "byte {b} at {at}");
                }
            }
        }
    }

    #[test]
    fn hex_matches_sha256() {
        // SHA-256("abc")
        assert_eq!(
            hex_of(&hash_token("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
