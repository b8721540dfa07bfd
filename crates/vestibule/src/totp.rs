//! The arithmetic of second factors, with no storage in sight: RFC 6238 codes (SHA-1, 6 digits, 30 s steps, as
//! every authenticator app expects), sealing TOTP secrets at rest, and recovery codes with their keyed hashes.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};
use vestibule_core::AccountId;

use crate::secret::hex_of;

/// Seconds per TOTP step (RFC 6238's default; what authenticator apps assume).
pub(crate) const STEP_SECS: i64 = 30;
/// Digits per code.
const DIGITS: usize = 6;
/// Bytes of a new TOTP secret: 160 bits, the HMAC-SHA-1 block RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
/// Recovery codes per set.
pub(crate) const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (base32, 5 bits each: 80 bits from the CSPRNG), shown in groups of four.
const RECOVERY_CHARS: usize = 16;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The key second factors are protected with: 32 bytes, from configuration (`[second_factor] key_file` /
/// `key_env`) or, by default, generated once and kept in the database. `Debug` does not print it.
#[derive(Clone)]
pub struct SecondFactorKey([u8; 32]);

impl SecondFactorKey {
    /// A key from its text form: 64 hex characters or 43/44 characters of base64 (standard or URL-safe), 32 bytes
    /// either way; surrounding whitespace is ignored (a key file usually ends with a newline).
    pub fn parse(text: &str) -> Result<SecondFactorKey, &'static str> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| "not hex"))
                .collect::<Result<Vec<u8>, _>>()?
        } else {
            let unpadded = text.trim_end_matches('=').replace('+', "-").replace('/', "_");
            URL_SAFE_NO_PAD
                .decode(unpadded)
                .map_err(|_| "a key must be 64 hex characters or base64 of 32 bytes")?
        };
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "a key must be 32 bytes (64 hex characters, or 44 of base64)")?;
        Ok(SecondFactorKey(key))
    }

    /// A fresh random key (what the broker stores in the database when none is configured).
    pub fn generate() -> SecondFactorKey {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        SecondFactorKey(key)
    }

    /// The key as 64 hex characters (how the database keeps a generated one).
    pub(crate) fn to_hex(&self) -> String {
        hex_of(&self.0)
    }

    /// A subkey for one purpose, so one key never serves two algorithms.
    fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = hmac_with(&self.0);
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// HMAC-SHA-256 under a 32-byte key, without a fallible constructor: HMAC zero-pads a key shorter than the
/// 64-byte block, so the padded block is the same key.
fn hmac_with(key: &[u8; 32]) -> Hmac<Sha256> {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    <Hmac<Sha256> as KeyInit>::new(&block.into())
}

impl fmt::Debug for SecondFactorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecondFactorKey(..)")
    }
}

/// Seals and opens TOTP secrets, and hashes recovery codes, under subkeys of the [`SecondFactorKey`].
pub(crate) struct Sealer {
    cipher: XChaCha20Poly1305,
    recovery_key: [u8; 32],
    handle_key: [u8; 32],
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// The version prefix of a sealed secret: a later key rotation or algorithm can tell its own rows apart.
const SEALED_PREFIX: &str = "v1.";

impl Sealer {
    pub(crate) fn new(key: &SecondFactorKey) -> Sealer {
        let seal_key = key.derive("vestibule second factor: totp seal v1");
        Sealer {
            cipher: XChaCha20Poly1305::new((&seal_key).into()),
            recovery_key: key.derive("vestibule second factor: recovery codes v1"),
            handle_key: key.derive("vestibule second factor: passkey user handle v1"),
        }
    }

    /// Encrypts a TOTP secret for `account`: XChaCha20-Poly1305 with a random 192-bit nonce (random nonces are
    /// safe at that size) and the account id as associated data, so a sealed secret copied to another account's
    /// row does not open.
    /// The WebAuthn user handle of an account: a keyed hash of its id (stable, and revealing nothing of it).
    pub(crate) fn user_handle(&self, account: &AccountId) -> [u8; 32] {
        let mut mac = hmac_with(&self.handle_key);
        mac.update(account.as_str().as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub(crate) fn seal(&self, account: &AccountId, secret: &[u8]) -> Option<String> {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: account.as_str().as_bytes(),
                },
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Decrypts a sealed secret of `account`; `None` when it was sealed under another key, for another account,
    /// or altered.
    pub(crate) fn open(&self, account: &AccountId, sealed: &str) -> Option<TotpSecret> {
        let raw = URL_SAFE_NO_PAD.decode(sealed.strip_prefix(SEALED_PREFIX)?).ok()?;
        if raw.len() < 24 {
            return None;
        }
        let (nonce, body) = raw.split_at(24);
        let secret = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: account.as_str().as_bytes(),
                },
            )
            .ok()?;
        Some(TotpSecret(secret))
    }

    /// The stored form of a recovery code: HMAC-SHA-256 under a server key, over the account id and the code.
    /// The codes have 80 random bits, so a fast keyed hash is enough: without the key a stolen table cannot even
    /// be searched, and with it 2^80 guesses per code stay out of reach.
    pub(crate) fn recovery_hash(&self, account: &AccountId, normalized_code: &str) -> String {
        let mut mac = hmac_with(&self.recovery_key);
        mac.update(account.as_str().as_bytes());
        mac.update(&[0]);
        mac.update(normalized_code.as_bytes());
        hex_of(&mac.finalize().into_bytes())
    }
}

/// A TOTP secret in the clear, held only while a code is checked or shown. `Debug` does not print it; the bytes
/// are not kept anywhere else.
#[derive(Clone)]
pub(crate) struct TotpSecret(Vec<u8>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// A fresh secret from the operating system's CSPRNG.
    pub(crate) fn generate() -> TotpSecret {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        TotpSecret(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn totp(&self, issuer: &str, account_name: &str) -> Option<TOTP> {
        // ':' separates issuer and account in the URI's label: authenticator apps would split on it.
        let issuer = issuer.replace(':', " ");
        let account_name = account_name.replace(':', " ");
        TOTP::new(
            Algorithm::SHA1,
            DIGITS,
            1,
            STEP_SECS as u64,
            self.0.clone(),
            Some(issuer),
            account_name,
        )
        .ok()
    }

    /// The secret in base32 without padding, for typing into an app.
    pub(crate) fn base32(&self) -> String {
        base32_encode(&self.0)
    }

    /// The `otpauth://totp/...` URI an authenticator app scans.
    pub(crate) fn uri(&self, issuer: &str, account_name: &str) -> Option<String> {
        self.totp(issuer, account_name).map(|t| t.get_url())
    }

    /// The code of time step `step`.
    pub(crate) fn code_at_step(&self, step: i64) -> Option<String> {
        let time = u64::try_from(step.checked_mul(STEP_SECS)?).ok()?;
        self.totp("", "").map(|t| t.generate(time))
    }

    /// The time step a presented code belongs to, among the current one and one either side (RFC 6238 section
    /// 5.2: one step of network delay, and clock drift); `None` when it matches none. The three codes are all
    /// computed and compared in constant time, so the answer's timing does not say which step was near.
    pub(crate) fn matching_step(&self, presented: &str, now_secs: i64) -> Option<i64> {
        let presented = normalize_totp(presented)?;
        let now = now_secs.div_euclid(STEP_SECS);
        let mut found = None;
        for step in [now - 1, now, now + 1] {
            let code = self.code_at_step(step)?;
            if bool::from(code.as_bytes().ct_eq(presented.as_bytes())) {
                // The latest matching step: what must not be accepted again.
                found = Some(step);
            }
        }
        found
    }
}

/// Six ASCII digits once spaces are removed (apps show `123 456`), or nothing.
pub(crate) fn normalize_totp(code: &str) -> Option<String> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// A recovery code as typed, normalized: lower case, dashes and spaces dropped; `None` when it cannot be one.
pub(crate) fn normalize_recovery(code: &str) -> Option<String> {
    let s: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (s.len() == RECOVERY_CHARS && s.bytes().all(|b| BASE32.contains(&b))).then_some(s)
}

/// A fresh set of recovery codes, each 80 bits from the CSPRNG shown as `abcd-efgh-ijkl-mnop`.
pub(crate) fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; RECOVERY_CHARS * 5 / 8];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let plain = base32_encode(&bytes).to_ascii_lowercase();
            plain
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// RFC 4648 base32, upper case, no padding.
fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret(b"12345678901234567890".to_vec())
    }

    #[test]
    fn rfc_6238_sha1_test_vectors() {
        // RFC 6238 appendix B, SHA-1 rows, truncated to the 6 digits apps use (the RFC shows 8).
        let secret = rfc_secret();
        for (time, eight) in [
            (59i64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let code = secret.code_at_step(time / STEP_SECS).expect("code");
            assert_eq!(code, eight[2..], "at {time}");
            assert_eq!(secret.matching_step(&eight[2..], time), Some(time / STEP_SECS));
        }
    }

    #[test]
    fn one_step_either_side_and_no_further() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let step = now / STEP_SECS;
        for (offset, accepted) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = secret.code_at_step(step + offset).expect("code");
            assert_eq!(
                secret.matching_step(&code, now),
                accepted.then_some(step + offset),
                "offset {offset}"
            );
        }
        assert_eq!(secret.matching_step("000000x", now), None);
        assert_eq!(secret.matching_step("", now), None);
        let spaced = secret.code_at_step(step).expect("code");
        assert_eq!(
            secret.matching_step(&format!("{} {}", &spaced[..3], &spaced[3..]), now),
            Some(step)
        );
    }

    #[test]
    fn sealed_secrets_open_only_for_their_account_and_key() {
        let key = SecondFactorKey::generate();
        let sealer = Sealer::new(&key);
        let ann = AccountId::new("acct-ann").expect("id");
        let bob = AccountId::new("acct-bob").expect("id");
        let secret = TotpSecret::generate();
        let sealed = sealer.seal(&ann, secret.bytes()).expect("seal");
        assert!(!sealed.contains(&secret.base32()));
        assert_eq!(sealer.open(&ann, &sealed).expect("open").bytes(), secret.bytes());
        assert!(sealer.open(&bob, &sealed).is_none(), "another account's row");
        assert!(
            Sealer::new(&SecondFactorKey::generate()).open(&ann, &sealed).is_none(),
            "another key"
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(sealer.open(&ann, &tampered).is_none());
        // Two seals of one secret differ (random nonces).
        assert_ne!(sealer.seal(&ann, secret.bytes()), Some(sealed));
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_never_print() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let a = SecondFactorKey::parse(&format!("{hex}\n")).expect("hex");
        assert_eq!(a.to_hex(), hex);
        let b64 = base64::engine::general_purpose::STANDARD.encode(a.0);
        assert_eq!(SecondFactorKey::parse(&b64).expect("base64").to_hex(), hex);
        assert!(SecondFactorKey::parse("short").is_err());
        assert!(SecondFactorKey::parse(&hex[2..]).is_err());
        assert_eq!(format!("{a:?}"), "SecondFactorKey(..)");
        assert_eq!(format!("{:?}", rfc_secret()), "TotpSecret(..)");
    }

    #[test]
    fn recovery_codes_are_random_normalized_and_hashed_per_account() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let code = &codes[0];
        assert_eq!(code.len(), 19, "{code}");
        let normalized = normalize_recovery(code).expect("normalizes");
        assert_eq!(
            normalize_recovery(&code.to_uppercase().replace('-', " ")),
            Some(normalized.clone())
        );
        assert_eq!(normalize_recovery("abcd-efgh-ijkl-mno1"), None, "1 is not base32");
        assert_eq!(normalize_recovery("abcd-efgh"), None);
        let sealer = Sealer::new(&SecondFactorKey::generate());
        let ann = AccountId::new("acct-ann").expect("id");
        let bob = AccountId::new("acct-bob").expect("id");
        assert_ne!(
            sealer.recovery_hash(&ann, &normalized),
            sealer.recovery_hash(&bob, &normalized)
        );
        assert!(!sealer.recovery_hash(&ann, &normalized).contains(&normalized));
    }

    #[test]
    fn the_padded_hmac_is_hmac_of_the_key() {
        // RFC 4231 test case 2 has a short key; here the reference is the crate's own variable-length constructor.
        let key = [7u8; 32];
        let mut a = hmac_with(&key);
        a.update(b"message");
        let mut b = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any length");
        b.update(b"message");
        assert_eq!(a.finalize().into_bytes(), b.finalize().into_bytes());
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32_encode(b""), "");
        assert_eq!(base32_encode(b"f"), "MY");
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(rfc_secret().base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn the_uri_names_issuer_account_and_secret() {
        let uri = rfc_secret().uri("Vestibule: test", "ann").expect("uri");
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "{uri}");
        assert!(uri.contains("issuer=Vestibule"), "{uri}");
    }
}
