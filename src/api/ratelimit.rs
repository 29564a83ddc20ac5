//! A rate limit per client on the ingest endpoints (`/api/v2/alerts`, `/api/v1/alertmanager`,
//! `/api/v1/cri`, `/api/v1/heartbeats/*`): a token bucket per client address, refilled at
//! `server.rate_limit.per_client` requests per second up to `burst`. A client over its limit
//! gets 429 with `Retry-After` and a JSON error; other clients are not slowed down.
//!
//! The client is the TCP peer: behind a reverse proxy every request shares the proxy's bucket
//! (set the limit for the proxy's whole traffic, or rate-limit in the proxy). IPv6 clients
//! are keyed by their /64, which one host usually holds whole, so rotating addresses inside
//! it does not buy more requests.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::config::RateLimitConfig;

/// Buckets kept before full (idle) ones are dropped; more clients than this at once only
/// cost memory in proportion.
const PRUNE_AT: usize = 10_000;

/// Token buckets by client.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    by_client: HashMap<IpAddr, Bucket>,
    /// Prune when there are more buckets than this (doubles while they are all busy).
    prune_at: usize,
}

struct Bucket {
    tokens: f64,
    updated: tokio::time::Instant,
}

/// The key of a client: its address, or the /64 of an IPv6 address.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Take one token for `ip` at `now`; when there is none, how long until there is.
    pub fn check(
        &self,
        ip: IpAddr,
        limit: &RateLimitConfig,
        now: tokio::time::Instant,
    ) -> Result<(), Duration> {
        let rate = limit.per_client;
        let burst = f64::from(limit.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.by_client.len() >= buckets.prune_at.max(PRUNE_AT) {
            // A bucket that has refilled completely is the same as no bucket.
            buckets
                .by_client
                .retain(|_, b| b.tokens + (now - b.updated).as_secs_f64() * rate < burst);
            buckets.prune_at = (buckets.by_client.len() * 2).max(PRUNE_AT);
        }
        let bucket = buckets.by_client.entry(client_key(ip)).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / rate;
            Err(Duration::from_secs_f64(wait.clamp(0.0, 86_400.0)))
        }
    }
}

/// Middleware for the ingest router.
pub async fn limit(
    State((state, limiter)): State<(AppState, Arc<RateLimiter>)>,
    request: Request,
    next: Next,
) -> Response {
    // Served without connection info (an in-process call): nobody to limit.
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return next.run(request).await;
    };
    let setup = state.setup();
    let limit = &setup.config.server.rate_limit;
    match limiter.check(peer.ip(), limit, tokio::time::Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            state.metrics.rate_limited_total.inc();
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many requests from {}: the limit is {} per second with bursts of {} \
                     (server.rate_limit); retry after {seconds}s",
                    client_key(peer.ip()),
                    limit.per_client,
                    limit.burst
                ),
            )
            .into_response();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&seconds.to_string()).expect("digits"),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_client: f64, burst: u32) -> RateLimitConfig {
        RateLimitConfig { per_client, burst }
    }

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = RateLimiter::new();
        let l = limit(10.0, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = tokio::time::Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(a, &l, t0).is_ok());
        }
        let wait = limiter.check(a, &l, t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another client has its own bucket.
        assert!(limiter.check(b, &l, t0).is_ok());
        // A token every 100 ms.
        assert!(limiter
            .check(a, &l, t0 + Duration::from_millis(100))
            .is_ok());
        assert!(limiter
            .check(a, &l, t0 + Duration::from_millis(100))
            .is_err());
        // Refilled, but never above the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.check(a, &l, later).is_ok());
        }
        assert!(limiter.check(a, &l, later).is_err());
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let limiter = RateLimiter::new();
        let l = limit(1.0, 1);
        let t0 = tokio::time::Instant::now();
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limiter.check(one, &l, t0).is_ok());
        assert!(limiter.check(same, &l, t0).is_err());
        assert!(limiter.check(other, &l, t0).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(limiter.check(mapped, &l, t0).is_ok());
        assert!(limiter.check(v4, &l, t0).is_err());
    }

    #[test]
    fn many_clients_do_not_grow_without_bound() {
        let limiter = RateLimiter::new();
        let l = limit(1000.0, 1);
        let t0 = tokio::time::Instant::now();
        for i in 0..50_000u32 {
            let ip = IpAddr::V4(i.into());
            // Each client's bucket refills within a millisecond.
            let now = t0 + Duration::from_millis(u64::from(i));
            assert!(limiter.check(ip, &l, now).is_ok());
        }
        let kept = limiter.buckets.lock().unwrap().by_client.len();
        assert!(kept <= 2 * PRUNE_AT, "{kept} buckets kept");
    }
}
