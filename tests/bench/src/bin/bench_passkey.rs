//! What checking a passkey costs next to checking a password (issue #12): one passkey assertion verified by
//! `webauthn-rs` (`finish_passkey_authentication`: the client data and authenticator data parsed, the ES256
//! signature verified on P-256 with RustCrypto, the counter compared) next to one argon2id verification at the
//! defaults (m=19456 KiB, t=2, p=1), in the same process, one thread, interleaved round by round so that the
//! machine's load falls on both alike. The assertions come from the software authenticator of the tests
//! (`vestibule_tests::passkey`), each to a new challenge. Only the verification is timed: not the challenge, not
//! the signing.
//!
//! ```text
//! bench_passkey [ROUNDS]
//! ```
//!
//! Prints, per row, the median and the 10th and 90th percentiles in microseconds, and the ratio of the medians.

use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use vestibule_bench::{arg, BenchResult, PASSWORD};
use vestibule_tests::passkey::SoftAuthenticator;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, WebauthnBuilder};

const ORIGIN: &str = "http://localhost:8080";

fn percentiles(mut times: Vec<Duration>) -> (f64, f64, f64) {
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() - 1) as f64 * q).round() as usize;
        times[i].as_secs_f64() * 1e6
    };
    (at(0.5), at(0.1), at(0.9))
}

fn main() -> BenchResult<()> {
    let rounds: usize = arg(1, 200)?;
    let origin = Url::parse(ORIGIN)?;
    let wa = WebauthnBuilder::new("localhost", &origin)?.build()?;
    let auth = SoftAuthenticator::new(ORIGIN);
    let (options, registration) = wa.start_passkey_registration(Uuid::from_bytes([7; 16]), "bench", "bench", None)?;
    let (mut cred, answer) = auth.create(&serde_json::to_string(&options)?);
    let answer: RegisterPublicKeyCredential = serde_json::from_str(&answer)?;
    let passkey = wa.finish_passkey_registration(&answer, &registration)?;

    let params = Params::new(19456, 2, 1, None).map_err(|e| e.to_string())?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::encode_b64(b"bench-passkey-salt").map_err(|e| e.to_string())?;
    let hash = argon2
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map_err(|e| e.to_string())?
        .to_string();
    let parsed = PasswordHash::new(&hash).map_err(|e| e.to_string())?;

    let (mut passkey_times, mut argon2_times) = (Vec::new(), Vec::new());
    // Three unmeasured rounds first (page faults of argon2's 19 MiB block, lazy tables).
    for round in 0..rounds + 3 {
        let (options, state) = wa.start_passkey_authentication(std::slice::from_ref(&passkey))?;
        let answer = auth.get(&mut cred, &serde_json::to_string(&options)?);
        let answer: PublicKeyCredential = serde_json::from_str(&answer)?;
        let t = Instant::now();
        let result = wa.finish_passkey_authentication(&answer, &state)?;
        let passkey_time = t.elapsed();
        if !result.user_verified() {
            return Err("the assertion was not user-verified".into());
        }
        let t = Instant::now();
        argon2
            .verify_password(PASSWORD.as_bytes(), &parsed)
            .map_err(|e| e.to_string())?;
        let argon2_time = t.elapsed();
        if round >= 3 {
            passkey_times.push(passkey_time);
            argon2_times.push(argon2_time);
        }
    }
    let (p50, p10, p90) = percentiles(passkey_times);
    println!("passkey_assertion_verify_us median={p50:.1} p10={p10:.1} p90={p90:.1}");
    let (a50, a10, a90) = percentiles(argon2_times);
    println!("argon2id_verify_us median={a50:.1} p10={a10:.1} p90={a90:.1}");
    println!("passkey_over_argon2={:.5}", p50 / a50);
    Ok(())
}
