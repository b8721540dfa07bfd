//! Loopback ports for tests, without the race of "bind, read the port, release it, hope nobody takes it".
//!
//! Our own servers bind `127.0.0.1:0` and report the address they got (the `vestibule` binary prints
//! `vestibule listening on ADDR`, the Node provider prints its issuer, in-process servers keep their listener).
//! What is left here is the one case where a test needs an address that is *not* served.

use std::net::SocketAddr;

/// A loopback port that is bound but not listening: connecting to it is refused at once (RST), and because the
/// socket stays bound, no other server can take the port while this value lives. For "server down" tests.
#[derive(Debug)]
pub struct RefusingPort {
    socket: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl RefusingPort {
    /// Binds `127.0.0.1:0` without listening.
    pub fn new() -> RefusingPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        let addr = socket.local_addr().expect("bound address");
        RefusingPort { socket, addr }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Gives the port up so that a server started right after can listen on it: for the one kind of test that
    /// needs a server to come up later at an address already configured ("down at startup, then up"). Between
    /// this call and that server's bind, another process could take the port; such a test says so.
    pub fn release(self) -> u16 {
        drop(self.socket);
        self.addr.port()
    }
}

impl Default for RefusingPort {
    fn default() -> Self {
        RefusingPort::new()
    }
}
