//! Guards against slow and greedy clients: open connections per client address, and a
//! minimum rate for request bodies.
//!
//! The server holds at most `max_connections` connections; without these guards a few
//! addresses opening slow connections (headers or a body trickled a byte at a time) could
//! hold all of them and starve everyone else. [`PerAddress`] caps the connections one
//! address may hold at once (excess ones are closed at accept, before any byte is read),
//! and [`MinRate`] ends a request whose body arrives slower than a floor. The header-read
//! deadline is hyper's own (`Config::header_timeout`).
//!
//! Trusted proxies are exempt from the per-address cap: behind nginx every client
//! arrives from the proxy's address.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use ipnet::IpNet;
use tokio::time::{Instant, Sleep};

/// Open connections per client address.
pub struct PerAddress {
    rules: std::sync::RwLock<(usize, Vec<IpNet>)>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    /// At most `max` connections per address (0: no cap); `exempt` addresses are not counted.
    pub fn new(max: usize, exempt: Vec<IpNet>) -> Arc<Self> {
        Arc::new(Self { rules: std::sync::RwLock::new((max, exempt)), open: Mutex::new(HashMap::new()) })
    }

    /// New cap and exempt networks (a configuration reload); open connections stay open.
    pub fn reconfigure(&self, max: usize, exempt: Vec<IpNet>) {
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = (max, exempt);
    }

    /// Counts a new connection from `ip`, or `None` if that address already holds its share.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        // `::ffff:10.0.0.1` and `10.0.0.1` are one client.
        let ip = ip.to_canonical();
        let max = {
            let rules = self.rules.read().unwrap_or_else(|p| p.into_inner());
            if rules.0 == 0 || crate::client_ip::is_trusted(ip, &rules.1) {
                return Some(Admitted { owner: None, ip });
            }
            rules.0
        };
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Admitted { owner: Some(self.clone()), ip })
    }

    /// Open connections counted for `ip` (for tests and diagnostics).
    pub fn open(&self, ip: IpAddr) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

/// One counted connection; dropping it (when the connection ends) frees the address's slot.
pub struct Admitted {
    owner: Option<Arc<PerAddress>>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let Some(owner) = &self.owner else { return };
        let mut open = owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The error a too-slow body ends with (the request then fails with a 4xx).
#[derive(Debug)]
pub struct BodyTooSlow;

impl std::fmt::Display for BodyTooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body arrived too slowly")
    }
}

impl std::error::Error for BodyTooSlow {}

/// A request body that must keep arriving at `rate` bytes a second once a grace period has
/// passed since it was first read: by time `t` after the first read, at least
/// `(t - grace) * rate` bytes. A body nobody reads costs nothing.
pub struct MinRate<B> {
    inner: B,
    rate: u64,
    grace: Duration,
    started: Option<Instant>,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> MinRate<B> {
    /// Wraps `inner`; `rate` 0 switches the check off.
    pub fn new(inner: B, rate: u64, grace: Duration) -> Self {
        Self { inner, rate, grace, started: None, received: 0, timer: None }
    }

    /// When the bytes received so far stop being enough.
    fn deadline(&self, started: Instant) -> Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / self.rate as f64);
        started + self.grace + earned
    }
}

impl<B> Body for MinRate<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let started = *this.started.get_or_insert_with(Instant::now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if this.rate == 0 => Poll::Pending,
            Poll::Pending => {
                let deadline = this.deadline(started);
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTooSlow)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_and_no_more() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let proxy: IpAddr = "192.0.2.1".parse().unwrap();
        let per = PerAddress::new(2, vec!["192.0.2.0/24".parse().unwrap()]);
        let a = per.admit(ip).unwrap();
        let b = per.admit(mapped).unwrap();
        assert!(per.admit(ip).is_none(), "a third connection from one address");
        assert_eq!(per.open(ip), 2);
        drop(a);
        let c = per.admit(ip).unwrap();
        assert!(per.admit("10.1.2.4".parse().unwrap()).is_some(), "another address is not affected");
        let proxied: Vec<_> = (0..10).map(|_| per.admit(proxy).unwrap()).collect();
        assert_eq!(per.open(proxy), 0, "trusted proxies are not counted");
        drop((b, c, proxied));
        assert_eq!(per.open(ip), 0);
        assert!(per.open.lock().unwrap().is_empty(), "no entry left behind");
    }
}
