use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Stateless CSRF tokens: HMAC-SHA256 under a server key of a per-browser binding value (the session id when
/// signed in, else a pre-session cookie). Nothing is stored per form, and a token from one browser or session is
/// worthless in another.
#[derive(Clone)]
pub(crate) struct CsrfKey([u8; 32]);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(..)")
    }
}

impl CsrfKey {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        CsrfKey(key)
    }

    fn mac(&self, binding: &str) -> [u8; 32] {
        // new_from_slice only fails for invalid key lengths, and HMAC takes any length.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return [0u8; 32],
        };
        mac.update(b"vestibule-csrf-v1\0");
        mac.update(binding.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub(crate) fn token(&self, binding: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(binding))
    }

    pub(crate) fn verify(&self, binding: &str, presented: &str) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(presented) else {
            return false;
        };
        bytes.len() == 32 && bool::from(bytes.as_slice().ct_eq(&self.mac(binding)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_key_and_binding() {
        let k = CsrfKey::new([7; 32]);
        let t = k.token("browser-a");
        assert!(k.verify("browser-a", &t));
        assert!(!k.verify("browser-b", &t));
        assert!(!CsrfKey::new([8; 32]).verify("browser-a", &t));
        assert!(!k.verify("browser-a", ""));
        assert!(!k.verify("browser-a", "!!!"));
        let mut tampered = t.clone();
        tampered.replace_range(0..1, if t.starts_with('A') { "B" } else { "A" });
        assert!(!k.verify("browser-a", &tampered));
    }
}
