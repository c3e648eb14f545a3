//! Password checks and hashes (argon2id), bounded in CPU and memory.
//!
//! One argon2id run takes 19 MiB and tens of milliseconds. Run on the blocking pool, a
//! burst of unauthenticated provision requests ran hundreds at once (200 took a server
//! from 108 MB to 4 GB, kept by the allocator afterwards). Here a few dedicated worker
//! threads (about one per core) do every check and hash, with a short queue in front:
//! when the queue is full the request gets `503` with `Retry-After` at once. A client
//! address may also have only a couple of password checks in flight (`429` past that),
//! so one client can neither fill the queue nor run its failure budget ahead of the
//! failures it has not yet been charged for.
//!
//! Each worker owns its argon2 memory and reuses it for every job
//! (`hash_password_into_with_memory`): left to the allocator, glibc kept the freed
//! 19 MiB buffers (its dynamic mmap threshold moves them into the thread's arena),
//! and resident memory grew by 19 MiB with each check, even one at a time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use axum::http::StatusCode;
use nbtoken_core::SecretString;
use nbtoken_manage::Busy;

use crate::error::{ApiError, ApiResult};

/// How much password work may run and wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordConfig {
    /// Worker threads, each running one argon2id at a time.
    pub workers: usize,
    /// Checks that may wait for a worker; past this, `503`.
    pub queue: usize,
    /// Password checks one client address may have in flight (provision); past this, `429`.
    pub per_client: usize,
}

impl Default for PasswordConfig {
    /// One worker per core (at most 8), a queue of four per worker, two checks per client.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from).clamp(1, 8);
        Self { workers: cores, queue: 4 * cores, per_client: 2 }
    }
}

/// A job gets its worker's argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Largest argon2 memory a stored hash may ask for, in 1 KiB blocks (64 MiB); a hash that
/// asks for more never matches (nbtoken writes 19 MiB ones).
const MAX_BLOCKS: usize = 64 * 1024;

/// `Retry-After` of a busy answer, in seconds.
pub const BUSY_RETRY_SECS: u64 = 1;

/// The workers and the per-client counts. Dropping it lets the workers finish and exit.
pub struct Passwords {
    jobs: SyncSender<Job>,
    in_flight: Mutex<HashMap<IpAddr, usize>>,
    per_client: usize,
}

/// A password check counted against its client address until dropped.
pub struct ClientSlot<'a> {
    owner: &'a Passwords,
    ip: IpAddr,
}

impl Drop for ClientSlot<'_> {
    fn drop(&mut self) {
        let mut map = self.owner.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Passwords {
    /// Starts the worker threads.
    pub fn start(config: PasswordConfig) -> Self {
        let (jobs, rx) = sync_channel::<Job>(config.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..config.workers.max(1) {
            let rx = rx.clone();
            let spawned =
                std::thread::Builder::new().name(format!("nbtoken-argon2-{i}")).spawn(move || work(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password worker thread");
            }
        }
        Self { jobs, in_flight: Mutex::new(HashMap::new()), per_client: config.per_client.max(1) }
    }

    /// Counts a password check for `ip`, or `429` if it already has as many in flight as allowed.
    pub fn client_slot(&self, ip: IpAddr) -> ApiResult<ClientSlot<'_>> {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= self.per_client {
            return Err(ApiError::busy(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many password checks at once from this address; retry shortly.",
                BUSY_RETRY_SECS,
            ));
        }
        *n += 1;
        Ok(ClientSlot { owner: self, ip })
    }

    /// Runs `f` on a worker, or [`Busy::QueueFull`] (`503` with `Retry-After`) if the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            // The client gave up (or the request timed out) while this waited: skip the work.
            if !tx.is_closed() {
                let _ = tx.send(f(memory));
            }
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(Busy::QueueFull),
            Err(TrySendError::Disconnected(_)) => return Err(Busy::CheckFailed),
        }
        rx.await.map_err(|_| Busy::CheckFailed)
    }
}

impl nbtoken_manage::Passwords for Passwords {
    /// Whether `password` matches the PHC string `phc` (a malformed hash never matches).
    async fn verify(&self, password: SecretString, phc: String) -> Result<bool, Busy> {
        self.run(move |memory| verify_with(memory, password.expose().as_bytes(), &phc)).await
    }

    /// A new argon2id PHC string for `password`.
    async fn hash(&self, password: SecretString) -> Result<String, Busy> {
        self.run(move |memory| hash_with(memory, password.expose().as_bytes())).await?.ok_or(Busy::HashFailed)
    }
}

/// The client's share of password checks for `POST /api/users/tokens/provision/`: takes one
/// of its slots, then checks its failure budget again (failures of its checks that finished
/// meanwhile are counted by now). Keep the slot until the failure, if any, has been recorded.
pub fn provision_slot(state: &crate::AppState, client_ip: IpAddr) -> ApiResult<ClientSlot<'_>> {
    let slot = state.passwords.client_slot(client_ip)?;
    if let Some(wait) = state.limiter.blocked_for(client_ip, None) {
        return Err(ApiError::too_many_failures(wait));
    }
    Ok(slot)
}

/// The argon2 memory `params` need, from `memory` (grown once, then reused); `None` past [`MAX_BLOCKS`].
fn blocks_for<'m>(memory: &'m mut Vec<Block>, params: &Params) -> Option<&'m mut [Block]> {
    let n = params.block_count();
    if n > MAX_BLOCKS {
        return None;
    }
    if memory.len() < n {
        memory.resize(n, Block::default());
    }
    memory.get_mut(..n)
}

/// What `argon2`'s `verify_password` does (the hash's own parameters and salt, and a
/// constant-time comparison of the output), in the worker's memory. A malformed hash never matches.
fn verify_with(memory: &mut Vec<Block>, password: &[u8], phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else { return false };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else { return false };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    let Some(blocks) = blocks_for(memory, &params) else { return false };
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params).hash_password_into_with_memory(password, salt, &mut out, blocks).is_ok()
        // `Output`'s equality is constant-time.
        && Output::new(&out).is_ok_and(|o| o == expected)
}

/// An argon2id PHC string with the default parameters and a random salt, as
/// `nbtoken_core::password::hash_password` makes, in the worker's memory.
fn hash_with(memory: &mut Vec<Block>, password: &[u8]) -> Option<String> {
    let argon2 = Argon2::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf).ok()?;
    let blocks = blocks_for(memory, argon2.params())?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2.hash_password_into_with_memory(password, salt_bytes, &mut out, blocks).ok()?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: argon2.params().try_into().ok()?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).ok()?),
    };
    Some(hash.to_string())
}

/// A worker: runs jobs, in its own reused argon2 memory, until every sender is gone.
fn work(rx: &Mutex<Receiver<Job>>) {
    let mut memory = Vec::new();
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        match job {
            Ok(job) => job(&mut memory),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use nbtoken_manage::Passwords as _;

    use super::*;

    #[tokio::test]
    async fn a_client_gets_only_its_share_of_checks() {
        let p = Passwords::start(PasswordConfig { workers: 1, queue: 1, per_client: 2 });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let one = p.client_slot(a).unwrap();
        let _two = p.client_slot(a).unwrap();
        assert_eq!(p.client_slot(a).err().unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(p.client_slot("192.0.2.2".parse().unwrap()).is_ok());
        drop(one);
        assert!(p.client_slot(a).is_ok());
    }

    #[tokio::test]
    async fn a_full_queue_is_503_and_work_still_gets_done() {
        let p = Arc::new(Passwords::start(PasswordConfig { workers: 1, queue: 1, per_client: 1 }));
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        // Occupy the worker, then the single queue place.
        let busy = {
            let p = p.clone();
            tokio::spawn(async move { p.run(move |_| blocked.recv().is_ok()).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let queued = {
            let p = p.clone();
            tokio::spawn(async move { p.run(|_| 7).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let refused = ApiError::from(nbtoken_manage::Error::Busy(p.run(|_| 0).await.err().unwrap()));
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        assert_eq!(queued.await.unwrap().unwrap(), 7);
    }

    /// The workers' argon2 agrees with `nbtoken_core::password` both ways.
    #[tokio::test]
    async fn hashes_and_checks_match_the_cores() {
        use nbtoken_core::password::{dummy_hash, hash_password, verify_password};
        let p = Passwords::start(PasswordConfig { workers: 1, queue: 4, per_client: 1 });
        let pw = || SecretString::from("a long password");
        let ours = p.hash(pw()).await.unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        assert!(verify_password("a long password", &ours));
        assert!(p.verify(pw(), ours.clone()).await.unwrap());
        assert!(!p.verify(SecretString::from("wrong"), ours).await.unwrap());
        let cores = hash_password("a long password").unwrap();
        assert!(p.verify(pw(), cores.clone()).await.unwrap());
        assert!(!p.verify(SecretString::from("a long passworD"), cores).await.unwrap());
        assert!(!p.verify(pw(), dummy_hash().to_owned()).await.unwrap());
        for bad in ["", "$argon2id$", "plaintext", "$argon2id$v=19$m=999999999,t=2,p=1$c29tZXNhbHQ$AAAA"] {
            assert!(!p.verify(pw(), bad.to_owned()).await.unwrap(), "{bad}");
        }
    }
}
