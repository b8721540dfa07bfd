//! A software passkey authenticator for tests below the browser: it answers the options a relying party sends
//! with what `navigator.credentials.create()` / `.get()` would return (ES256, "none" attestation), as the JSON a
//! page posts. It lets broker tests make real assertions — and wrong ones: without user verification, with a
//! counter that goes backwards, for another account's ceremony. Real browsers are tested with Chromium's virtual
//! authenticator instead.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use crypto_glue::ecdsa_p256::{new_key, EcdsaP256PrivateKey, EcdsaP256Signature, EcdsaP256SigningKey};
use crypto_glue::traits::{Signer, ToSec1Point};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One credential held by the authenticator.
#[derive(Debug, Clone)]
pub struct SoftCredential {
    key: EcdsaP256PrivateKey,
    /// The credential id.
    pub id: Vec<u8>,
    /// The user handle it was made for.
    pub user_handle: Vec<u8>,
    /// The signature counter (the next assertion sends this plus one).
    pub counter: u32,
}

/// What the next answer claims.
#[derive(Debug, Clone)]
pub struct SoftAuthenticator {
    /// The origin the "browser" puts in clientDataJSON (`http://localhost:8080`).
    pub origin: String,
    /// The relying party id whose hash goes into authenticator data.
    pub rp_id: String,
    /// Whether the user-verified flag is set.
    pub user_verified: bool,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn cbor_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    match bytes.len() {
        n if n < 24 => out.push(0x40 | u8::try_from(n).unwrap()),
        n if n < 256 => out.extend([0x58, u8::try_from(n).unwrap()]),
        n => {
            out.push(0x59);
            out.extend(u16::try_from(n).unwrap().to_be_bytes());
        }
    }
    out.extend(bytes);
}

fn cbor_text(out: &mut Vec<u8>, text: &str) {
    assert!(text.len() < 24);
    out.push(0x60 | u8::try_from(text.len()).unwrap());
    out.extend(text.as_bytes());
}

impl SoftAuthenticator {
    /// An authenticator for a relying party at `origin` (its host is the relying party id), verifying the user.
    pub fn new(origin: &str) -> Self {
        let rp_id = url::Url::parse(origin).unwrap().host_str().unwrap().to_owned();
        SoftAuthenticator {
            origin: origin.trim_end_matches('/').to_owned(),
            rp_id,
            user_verified: true,
        }
    }

    fn flags(&self, attested: bool) -> u8 {
        let mut flags = 0x01; // user present
        if self.user_verified {
            flags |= 0x04;
        }
        if attested {
            flags |= 0x40;
        }
        flags
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({ "type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false })
            .to_string()
            .into_bytes()
    }

    /// Answers creation options (`{"publicKey": ...}` as the server sent them): a new credential, and the JSON
    /// the page would post.
    pub fn create(&self, options: &str) -> (SoftCredential, String) {
        let options: Value = serde_json::from_str(options).unwrap();
        let pk = &options["publicKey"];
        let challenge = pk["challenge"].as_str().unwrap();
        let user_handle = URL_SAFE_NO_PAD.decode(pk["user"]["id"].as_str().unwrap()).unwrap();
        let key = new_key();
        let mut id = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let point = key.public_key().to_sec1_point(false);
        let (x, y) = (point.x().unwrap(), point.y().unwrap());
        // COSE_Key {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}
        let mut cose = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cbor_bytes(&mut cose, x);
        cose.push(0x22);
        cbor_bytes(&mut cose, y);
        let mut auth_data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(true));
        auth_data.extend(0u32.to_be_bytes());
        auth_data.extend([0u8; 16]); // AAGUID
        auth_data.extend(u16::try_from(id.len()).unwrap().to_be_bytes());
        auth_data.extend(&id);
        auth_data.extend(&cose);
        let mut attestation = vec![0xa3];
        cbor_text(&mut attestation, "fmt");
        cbor_text(&mut attestation, "none");
        cbor_text(&mut attestation, "attStmt");
        attestation.push(0xa0);
        cbor_text(&mut attestation, "authData");
        cbor_bytes(&mut attestation, &auth_data);
        let answer = json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "extensions": {},
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&self.client_data("webauthn.create", challenge)),
                "transports": ["internal"],
            },
        });
        let cred = SoftCredential {
            key,
            id,
            user_handle,
            counter: 0,
        };
        (cred, answer.to_string())
    }

    /// Answers request options with `cred`, its counter moved forward by one first; the JSON the page would post.
    pub fn get(&self, cred: &mut SoftCredential, options: &str) -> String {
        cred.counter += 1;
        self.get_with_counter(cred, options, cred.counter)
    }

    /// Answers request options with `cred` sending `counter` (which need not move forward: a cloned
    /// authenticator's does not).
    pub fn get_with_counter(&self, cred: &SoftCredential, options: &str, counter: u32) -> String {
        let options: Value = serde_json::from_str(options).unwrap();
        let challenge = options["publicKey"]["challenge"].as_str().unwrap();
        let mut auth_data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(false));
        auth_data.extend(counter.to_be_bytes());
        let client_data = self.client_data("webauthn.get", challenge);
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signing = EcdsaP256SigningKey::from(&cred.key);
        let signature: EcdsaP256Signature = signing.sign(&signed);
        json!({
            "id": b64(&cred.id),
            "rawId": b64(&cred.id),
            "type": "public-key",
            "extensions": {},
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(&signature.to_der().to_bytes()),
                "userHandle": b64(&cred.user_handle),
            },
        })
        .to_string()
    }
}
