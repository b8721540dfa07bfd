//! Support for Vestibule's tests: throwaway PostgreSQL databases, free loopback ports and the `vestibule` binary.
//! Nothing here skips a test when a server is missing: it fails and says which setup script to run.

#![allow(clippy::unwrap_used)]

pub mod browser;
pub mod pg;
pub mod server;

/// A free TCP port on 127.0.0.1 (bound then released: good enough for test servers started right after).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A random lowercase suffix for names that must not collide between concurrent tests.
pub fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..12).map(|_| char::from(b'a' + rng.gen_range(0..26))).collect()
}
