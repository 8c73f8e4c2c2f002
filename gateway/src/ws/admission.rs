//! Who may open a WebSocket: the `Origin` check, and how many connections there may
//! be in all and per token.
//!
//! A browser sends `Origin` with every WebSocket handshake, and a page on another
//! site can open one to this server with the user's token if the page has it; so
//! an `Origin` must be this server's own (the request's `Host`) or one the operator
//! allowed. Clients that send none (the CLI, scripts) are not browsers and pass.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::HttpRequest;

use crate::error::ApiError;

/// Checks the handshake's `Origin` against the request's own host and `allowed`.
pub fn check_origin(req: &HttpRequest, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .map_err(|_| ApiError::forbidden("the Origin header is not readable text"))?;
    let host = req.connection_info().host().to_ascii_lowercase();
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/').to_ascii_lowercase());
    if origin_host.as_deref() == Some(host.as_str())
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
    {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "WebSocket connections from pages of {origin} are not allowed; an operator can add it to ws_allowed_origins"
    )))
}

/// The descriptor of a connection's socket, noted when it is accepted, so that a
/// WebSocket session can keep a handle to disconnect a client that stops reading.
#[derive(Debug, Clone, Copy)]
pub struct ConnSocket(RawFd);

impl ConnSocket {
    pub fn of(tcp: &impl AsRawFd) -> Self {
        ConnSocket(tcp.as_raw_fd())
    }

    /// A descriptor of its own for the socket of the connection `req` arrived on.
    pub fn duplicate(req: &HttpRequest) -> Option<std::net::TcpStream> {
        let ConnSocket(fd) = *req.conn_data::<ConnSocket>()?;
        // SAFETY: the connection this request arrived on is open while it is being
        // handled, so its descriptor is valid here; the duplicate is ours to close.
        let owned = unsafe { BorrowedFd::borrow_raw(fd) }
            .try_clone_to_owned()
            .ok()?;
        Some(std::net::TcpStream::from(owned))
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_token: HashMap<String, usize>,
    /// Connections not yet authenticated, in all and per client address.
    unauthenticated: usize,
    unauthenticated_by_addr: HashMap<IpAddr, usize>,
}

/// Connections that have not authenticated yet, in all and from one address: they
/// last at most the auth deadline, but must not crowd out everyone else meanwhile.
pub const MAX_UNAUTHENTICATED: usize = 256;
pub const MAX_UNAUTHENTICATED_PER_ADDR: usize = 8;

/// Open connections, in all and per token digest.
#[derive(Debug, Clone)]
pub struct Connections {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_token: usize,
}

/// One open connection's place; it is given back when dropped.
#[derive(Debug)]
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    token: Option<String>,
    /// Counted among the unauthenticated (from this address) until `assign`.
    unauthenticated: Option<Option<IpAddr>>,
}

impl Counts {
    fn authenticated(&mut self, from: Option<IpAddr>) {
        self.unauthenticated -= 1;
        if let Some(addr) = from {
            if let Some(n) = self.unauthenticated_by_addr.get_mut(&addr) {
                *n -= 1;
                if *n == 0 {
                    self.unauthenticated_by_addr.remove(&addr);
                }
            }
        }
    }
}

impl Connections {
    pub fn new(max_total: usize, max_per_token: usize) -> Self {
        Connections {
            counts: Arc::default(),
            max_total: max_total.max(1),
            max_per_token: max_per_token.max(1),
        }
    }

    /// A place for a new connection (503 when the server has no more); one that has
    /// no token yet also needs a place among the unauthenticated (429 past them).
    pub fn open(&self, authenticated: bool, from: Option<IpAddr>) -> Result<Slot, ApiError> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if !authenticated {
            let from_addr = from.map_or(0, |a| {
                counts.unauthenticated_by_addr.get(&a).copied().unwrap_or(0)
            });
            if counts.unauthenticated >= MAX_UNAUTHENTICATED
                || from_addr >= MAX_UNAUTHENTICATED_PER_ADDR
            {
                return Err(ApiError::too_many_requests(
                    "too many connections are waiting to authenticate; send the token with the upgrade (Authorization header) or try again shortly",
                )
                .retry_after(std::time::Duration::from_secs(5)));
            }
        }
        if counts.total >= self.max_total {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the server has {} WebSocket connections open, its most (ws_max_connections); try again later",
                    counts.total
                ),
            )
            .retry_after(std::time::Duration::from_secs(5)));
        }
        counts.total += 1;
        if !authenticated {
            counts.unauthenticated += 1;
            if let Some(addr) = from {
                *counts.unauthenticated_by_addr.entry(addr).or_default() += 1;
            }
        }
        Ok(Slot {
            counts: self.counts.clone(),
            token: None,
            unauthenticated: (!authenticated).then_some(from),
        })
    }

    /// Counts `slot` against the token with digest `token_hash` (429 when that token
    /// has its most connections open).
    pub fn assign(&self, slot: &mut Slot, token_hash: &str) -> Result<(), ApiError> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let open = counts.per_token.get(token_hash).copied().unwrap_or(0);
        if open >= self.max_per_token {
            return Err(ApiError::too_many_requests(format!(
                "this token has {open} WebSocket connections open, its most (ws_max_connections_per_token); close one first"
            )));
        }
        *counts.per_token.entry(token_hash.to_owned()).or_default() += 1;
        slot.token = Some(token_hash.to_owned());
        if let Some(from) = slot.unauthenticated.take() {
            counts.authenticated(from);
        }
        Ok(())
    }

    pub fn open_total(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total -= 1;
        if let Some(from) = self.unauthenticated.take() {
            counts.authenticated(from);
        }
        if let Some(token) = &self.token {
            if let Some(n) = counts.per_token.get_mut(token) {
                *n -= 1;
                if *n == 0 {
                    counts.per_token.remove(token);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn places_are_bounded_in_all_and_per_token_and_given_back() {
        let connections = Connections::new(3, 2);
        let mut a = connections.open(true, None).unwrap();
        let mut b = connections.open(true, None).unwrap();
        let mut c = connections.open(true, None).unwrap();
        assert_eq!(
            connections.open(true, None).unwrap_err().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        connections.assign(&mut a, "t1").unwrap();
        connections.assign(&mut b, "t1").unwrap();
        assert_eq!(
            connections.assign(&mut c, "t1").unwrap_err().status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        connections.assign(&mut c, "t2").unwrap();
        drop(a);
        assert_eq!(connections.open_total(), 2);
        let mut d = connections.open(true, None).unwrap();
        connections.assign(&mut d, "t1").unwrap();
    }

    #[test]
    fn connections_waiting_to_authenticate_are_bounded_per_address() {
        let connections = Connections::new(10_000, 10);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut waiting: Vec<Slot> = (0..MAX_UNAUTHENTICATED_PER_ADDR)
            .map(|_| connections.open(false, Some(a)).unwrap())
            .collect();
        let refused = connections.open(false, Some(a)).unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let _other = connections.open(false, Some(b)).unwrap();
        let _with_token = connections.open(true, Some(a)).unwrap();
        // Authenticating, or leaving, frees a place.
        connections.assign(&mut waiting[0], "t").unwrap();
        let again = connections.open(false, Some(a)).unwrap();
        assert!(connections.open(false, Some(a)).is_err());
        drop(again);
        drop(waiting.pop());
        let _last = connections.open(false, Some(a)).unwrap();
    }

    #[test]
    fn only_the_servers_own_and_allowed_origins_pass() {
        let req = |origin: Option<&str>| {
            let mut r = TestRequest::get()
                .uri("/ws")
                .insert_header(("host", "127.0.0.1:8080"));
            if let Some(o) = origin {
                r = r.insert_header(("origin", o));
            }
            r.to_http_request()
        };
        let allowed = vec!["https://console.example".to_owned()];
        for ok in [
            None,
            Some("http://127.0.0.1:8080"),
            Some("https://console.example"),
        ] {
            assert!(check_origin(&req(ok), &allowed).is_ok(), "{ok:?}");
        }
        for bad in [
            "https://evil.example",
            "http://127.0.0.1:8081",
            "null",
            "http://127.0.0.1:8080.evil.example",
        ] {
            let err = check_origin(&req(Some(bad)), &allowed).unwrap_err();
            assert_eq!(err.status(), StatusCode::FORBIDDEN, "{bad}");
        }
    }
}
