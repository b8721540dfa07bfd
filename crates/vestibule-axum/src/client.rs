//! Who is asking: the client address (believed from a proxy only when the proxy is trusted) and user agent.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::header::USER_AGENT;
use http::request::Parts;
use http::HeaderMap;
use vestibule::ClientInfo;

use crate::context::AuthContext;

/// Who is asking: the socket's address (when the server provides `ConnectInfo`) and a shortened user agent.
pub(crate) struct Client(pub(crate) ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let trusted = parts
            .extensions
            .get::<AuthContext>()
            .map(|c| c.vestibule.inner.trusted_proxies.clone());
        Ok(Client(client_of(
            trusted.as_deref().unwrap_or(&[]),
            &parts.headers,
            &parts.extensions,
        )))
    }
}

/// The client's address: the socket's peer (when the server provides `ConnectInfo`), or — only when that peer is
/// a trusted proxy — the right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
pub(crate) fn client_ip(
    trusted: &[ipnet::IpNet],
    headers: &HeaderMap,
    extensions: &http::Extensions,
) -> Option<IpAddr> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
        .or(Some(peer))
}

/// The raw `User-Agent` header, when it is text.
pub(crate) fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers.get(USER_AGENT).and_then(|v| v.to_str().ok())
}

/// Who is asking: the client address (see [`client_ip`]) and a shortened user agent.
pub(crate) fn client_of(trusted: &[ipnet::IpNet], headers: &HeaderMap, extensions: &http::Extensions) -> ClientInfo {
    ClientInfo::from_parts(user_agent(headers), client_ip(trusted, headers, extensions))
}
