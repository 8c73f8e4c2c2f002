//! Bearer-token access. Every API call and WebSocket presents a token; its SHA-256
//! digest is looked up in [`TokenStore`], a cache of the `api_tokens` table kept
//! current by the token routes and refreshed periodically (for tokens changed by
//! another server on the same database). `viewer` reads tasks and logs and runs
//! non-privileged plugins; `admin` may do everything.
//!
//! Guessing is throttled: a client address that presented more than
//! `auth_failures_per_minute` invalid tokens within a minute gets 429 for every
//! token, valid or not, until that minute is over ([`FailedAuths`]).

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use protocol::{Role, Timestamp};
use storage::tokens::{self, hash_token, StoredToken};
use storage::Db;

use crate::error::ApiError;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Refuses a worker token (403): it may only connect to `/ws/worker`.
    pub fn not_worker(self) -> Result<Caller, ApiError> {
        if self.role == Role::Worker {
            return Err(ApiError::forbidden(format!(
                "{:?} is a worker token; it may only connect to /ws/worker",
                self.name
            )));
        }
        Ok(self)
    }
}

/// Invalid tokens presented per client address, in fixed one-minute windows.
#[derive(Debug)]
pub struct FailedAuths {
    max: u32,
    window: Duration,
    by_addr: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Addresses tracked at most; past it, windows that ended are forgotten first, then
/// all of them (an attacker with that many addresses is not slowed by this anyway).
const MAX_TRACKED_ADDRS: usize = 65_536;

impl FailedAuths {
    pub fn new(max_per_window: u32, window: Duration) -> Self {
        FailedAuths {
            max: max_per_window.max(1),
            window,
            by_addr: Mutex::new(HashMap::new()),
        }
    }

    /// How long `addr` must wait, when it is over its allowance.
    pub fn blocked(&self, addr: IpAddr) -> Option<Duration> {
        let addr = network(addr);
        let map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        let (start, count) = map.get(&addr)?;
        let left = self.window.checked_sub(start.elapsed())?;
        (*count >= self.max).then_some(left)
    }

    pub fn record(&self, addr: IpAddr) {
        let addr = network(addr);
        let mut map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED_ADDRS && !map.contains_key(&addr) {
            let window = self.window;
            map.retain(|_, (start, _)| start.elapsed() < window);
            if map.len() >= MAX_TRACKED_ADDRS {
                map.clear();
            }
        }
        let entry = map.entry(addr).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

/// What one client holds: an IPv4 address, or an IPv6 /64 (one host commonly has a
/// whole /64 to pick addresses from).
fn network(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::V6(octets.into())
        }
    }
}

impl Default for FailedAuths {
    fn default() -> Self {
        FailedAuths::new(DEFAULT_AUTH_FAILURES_PER_MINUTE, Duration::from_secs(60))
    }
}

/// Invalid tokens one address may present per minute before it gets 429.
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: u32 = 30;

/// Token digests and their owners.
#[derive(Clone, Default)]
pub struct TokenStore {
    by_hash: Arc<RwLock<HashMap<String, Caller>>>,
    failures: Arc<FailedAuths>,
    /// Bumped on every reload, so that open sessions re-check their token only
    /// when something may have changed.
    generation: Arc<std::sync::atomic::AtomicU64>,
    reloading: Arc<tokio::sync::Mutex<()>>,
}

impl TokenStore {
    pub fn new(failures: FailedAuths) -> Self {
        TokenStore {
            by_hash: Arc::default(),
            generation: Arc::default(),
            reloading: Arc::default(),
            failures: Arc::new(failures),
        }
    }

    /// Checks `token` presented from `addr`: 429 while the address is throttled,
    /// 401 (counted against the address) when the token is not valid.
    pub fn authenticate(&self, addr: Option<IpAddr>, token: &str) -> Result<Caller, ApiError> {
        if let Some(wait) = addr.and_then(|a| self.failures.blocked(a)) {
            return Err(ApiError::too_many_requests(
                "too many invalid tokens from this address; wait before trying again",
            )
            .retry_after(wait));
        }
        self.check(token).ok_or_else(|| {
            if let Some(addr) = addr {
                self.failures.record(addr);
            }
            ApiError::unauthorized("the token is not valid")
        })
    }

    pub fn replace_all(&self, stored: &[StoredToken]) {
        let map = stored
            .iter()
            .map(|t| {
                (
                    t.token_hash.clone(),
                    Caller {
                        name: t.name.clone(),
                        role: t.role,
                    },
                )
            })
            .collect();
        *self.by_hash.write().unwrap_or_else(|e| e.into_inner()) = map;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Changes with every reload of the cache.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether the token of `hash` has been deleted, looked up only when the cache
    /// was reloaded since generation `seen` (which this moves on): cheap enough for a
    /// connection to ask on every tick.
    pub fn deleted_since(&self, hash: &str, seen: &mut u64) -> bool {
        let generation = self.generation();
        if generation == *seen {
            return false;
        }
        *seen = generation;
        !self.has_hash(hash)
    }

    /// Reloads the cache from the database. One reload at a time: a slow one that
    /// read the table before a deletion must not finish after a later one and bring
    /// the deleted token back.
    pub async fn reload(&self, db: &Db) -> storage::Result<()> {
        let _one = self.reloading.lock().await;
        let stored = db.run(tokens::list_tokens).await?;
        self.replace_all(&stored);
        Ok(())
    }

    /// Whether a token with this digest still exists.
    pub fn has_hash(&self, hash: &str) -> bool {
        self.by_hash
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(hash)
    }

    pub fn check(&self, token: &str) -> Option<Caller> {
        let hash = hash_token(token.trim());
        self.by_hash
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
            .cloned()
    }
}

/// A new random token: `tlk_` and 40 hex digits (160 bits).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).expect("the OS random source should be available");
    format!("tlk_{}", hex::encode(bytes))
}

/// Makes sure an admin can get in: stores `admin_token` (from `TASKLENS_ADMIN_TOKEN`)
/// as the token named `admin`, or, when no token exists at all, creates one and
/// returns it so that the binary can print it, once.
pub fn bootstrap(
    db: &Db,
    admin_token: Option<&str>,
    now: Timestamp,
) -> storage::Result<Option<String>> {
    db.run_blocking(|conn| {
        if let Some(token) = admin_token {
            tokens::upsert_token(conn, "admin", Role::Admin, token, now)?;
            return Ok(None);
        }
        if !tokens::list_tokens(conn)?.is_empty() {
            return Ok(None);
        }
        let token = generate_token();
        tokens::insert_token(conn, "admin", Role::Admin, &token, now)?;
        Ok(Some(token))
    })
}

/// The token in `Authorization: Bearer …`, if the header is there.
pub fn bearer(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not readable text"))?;
    let (scheme, token) = text.trim().split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized("use Authorization: Bearer <token>"));
    }
    Ok(Some(token.trim().to_owned()))
}

/// The caller of `req` (401/429/403 as for any endpoint needing a token).
pub(crate) fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let store = req
        .app_data::<web::Data<TokenStore>>()
        .expect("TokenStore is registered as app data");
    let token = bearer(req)?.ok_or_else(|| {
        ApiError::unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    })?;
    store
        .authenticate(req.peer_addr().map(|a| a.ip()), &token)
        .and_then(Caller::not_worker)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

/// A caller with the admin role; 403 for a viewer.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|caller| {
            if caller.is_admin() {
                Ok(Admin(caller))
            } else {
                Err(ApiError::forbidden(format!(
                    "this needs an admin token; {:?} is a {}",
                    caller.name, caller.role
                )))
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_throttled_after_its_allowance_until_the_window_ends() {
        let failures = FailedAuths::new(3, Duration::from_millis(200));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        for _ in 0..3 {
            assert!(failures.blocked(a).is_none());
            failures.record(a);
        }
        let wait = failures.blocked(a).expect("throttled");
        assert!(wait <= Duration::from_millis(200));
        assert!(failures.blocked(b).is_none(), "other addresses are not");
        // One IPv6 host picking other addresses in its /64 is still one client.
        let c: IpAddr = "2001:db8::1".parse().unwrap();
        for i in 0..3u16 {
            failures.record(IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                0,
                0x100 + i,
            )));
        }
        assert!(failures.blocked(c).is_some());
        assert!(failures
            .blocked("2001:db8:0:1::1".parse().unwrap())
            .is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(failures.blocked(a).is_none(), "a new window starts afresh");
        failures.record(a);
        assert!(failures.blocked(a).is_none());
    }

    #[test]
    fn generated_tokens_are_distinct_and_well_formed() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(a.starts_with("tlk_") && a.len() == 44);
    }
}
