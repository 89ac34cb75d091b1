//! Issuers' key sets from files and URLs, cached and refreshed.
//!
//! A set is read (or fetched) the first time a token needs it, kept for
//! `jwks_refresh_secs`, and read again early when a token names a `kid` the
//! set lacks (a rotation), but never more often than once per
//! `jwks_min_interval_secs`. When a refresh fails, the keys read before
//! stay in use for `jwks_stale_secs`; a set never read yet leaves its
//! issuer's tokens refused until it can be, and never stops the start.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;

/// Keys by their `kid`.
pub type KeyList = Vec<(Option<String>, DecodingKey)>;

/// Where a key set comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A JWKS file.
    File(String),
    /// A JWKS URL.
    Url(String),
    /// The `jwks_uri` of an issuer's OIDC discovery document.
    Discovery(String),
}

/// How long keys live in the cache.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Keys are fetched again after this long.
    pub refresh: Duration,
    /// Keys stay in use this long past `refresh` while fetches fail.
    pub stale: Duration,
    /// The fewest time between two fetches of one set.
    pub min_interval: Duration,
}

struct Cached {
    keys: Arc<KeyList>,
    /// When `keys` were read; `None` while none ever were.
    read_at: Option<Instant>,
    attempted_at: Instant,
}

/// Largest JWKS or discovery document accepted.
const MAX_DOCUMENT: usize = 1 << 20;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How many key sets are cached at most (one per realm under a pattern).
const MAX_SETS: usize = 10_000;

/// Every issuer's key sets.
pub struct KeyCache {
    sets: Mutex<HashMap<Location, Cached>>,
    fetcher: Fetcher,
    /// Fetches of sets never read, per second.
    new_sets: Mutex<Budget>,
}

/// How many sets never read may be fetched each second.
const NEW_SETS_PER_SEC: u32 = 20;

/// A count of events in the current second.
struct Budget {
    second: Option<Instant>,
    used: u32,
}

impl Budget {
    /// Whether one more event fits in the second of `now`.
    fn take(&mut self, now: Instant) -> bool {
        let fresh = self
            .second
            .is_none_or(|start| now.duration_since(start) >= Duration::from_secs(1));
        if fresh {
            self.second = Some(now);
            self.used = 0;
        }
        if self.used >= NEW_SETS_PER_SEC {
            return false;
        }
        self.used += 1;
        true
    }
}

impl KeyCache {
    /// An empty cache.
    pub fn new() -> Self {
        KeyCache {
            sets: Mutex::new(HashMap::new()),
            fetcher: Fetcher::start(),
            new_sets: Mutex::new(Budget {
                second: None,
                used: 0,
            }),
        }
    }

    /// The keys at `location`, read again first when they are due, or
    /// when they lack `kid` and the last read is old enough.
    pub fn keys(&self, location: &Location, kid: Option<&str>, timing: Timing) -> Arc<KeyList> {
        let now = Instant::now();
        let (current, due) = {
            let sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
            match sets.get(location) {
                None => (Arc::new(Vec::new()), true),
                Some(cached) => {
                    let expired = cached
                        .read_at
                        .is_none_or(|read| now.duration_since(read) >= timing.refresh);
                    let lacks_kid = kid.is_some_and(|kid| {
                        !cached.keys.iter().any(|(id, _)| id.as_deref() == Some(kid))
                    });
                    let allowed = now.duration_since(cached.attempted_at) >= timing.min_interval;
                    (Arc::clone(&cached.keys), (expired || lacks_kid) && allowed)
                }
            }
        };
        if !due {
            return current;
        }
        {
            // Mark the attempt first: concurrent callers use what is there
            // instead of fetching the same set again.
            let mut sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
            // Anyone can send a token naming a realm never seen, and each
            // would cost a fetch: sets never read are fetched at a bounded
            // rate, so such tokens cannot keep the fetcher from the realms
            // in use (nor flood the IdP).
            let never_read = sets.get(location).is_none_or(|c| c.read_at.is_none());
            if never_read
                && !self
                    .new_sets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take(now)
            {
                return current;
            }
            if sets.len() >= MAX_SETS && !sets.contains_key(location) {
                sets.retain(|_, cached| cached.read_at.is_some());
            }
            let entry = sets.entry(location.clone()).or_insert_with(|| Cached {
                keys: Arc::new(Vec::new()),
                read_at: None,
                attempted_at: now,
            });
            entry.attempted_at = now;
        }
        let read = self.read(location);
        let mut sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = sets.get_mut(location) else {
            return current;
        };
        match read {
            Ok(keys) => {
                entry.keys = Arc::new(keys);
                entry.read_at = Some(Instant::now());
            }
            Err(err) => {
                tracing::warn!(location = ?location, %err, "cannot read a JWT issuer's keys");
                let too_old = entry
                    .read_at
                    .is_none_or(|read| now.duration_since(read) >= timing.refresh + timing.stale);
                if too_old {
                    entry.keys = Arc::new(Vec::new());
                }
            }
        }
        Arc::clone(&entry.keys)
    }

    fn read(&self, location: &Location) -> Result<KeyList, String> {
        let text = match location {
            Location::File(path) => {
                let bytes = std::fs::read(path).map_err(|err| format!("{path}: {err}"))?;
                if bytes.len() > MAX_DOCUMENT {
                    return Err(format!("{path} is larger than {MAX_DOCUMENT} bytes"));
                }
                String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8"))?
            }
            Location::Url(url) => self.fetcher.get(url)?,
            Location::Discovery(issuer) => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let document: serde_json::Value = serde_json::from_str(&self.fetcher.get(&url)?)
                    .map_err(|err| format!("{url}: {err}"))?;
                let jwks_uri = document
                    .get("jwks_uri")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| format!("{url} has no jwks_uri"))?;
                self.fetcher.get(jwks_uri)?
            }
        };
        parse(&text)
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        Self::new()
    }
}

/// The usable keys of a JWKS document; keys of a type Ward cannot use are
/// skipped, so one odd key does not take the others with it.
pub fn parse(text: &str) -> Result<KeyList, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|err| format!("invalid JWKS: {err}"))?;
    Ok(set
        .keys
        .iter()
        .filter_map(|jwk| {
            DecodingKey::from_jwk(jwk)
                .map(|key| (jwk.common.key_id.clone(), key))
                .ok()
        })
        .collect())
}

type Reply = mpsc::Sender<Result<String, String>>;

/// HTTP GETs on a thread of their own with its own small runtime, so that
/// callers on any thread (async workers included) can wait for one.
struct Fetcher {
    requests: Mutex<mpsc::Sender<(String, Reply)>>,
}

impl Fetcher {
    fn start() -> Self {
        let (requests, incoming) = mpsc::channel::<(String, Reply)>();
        let spawned = std::thread::Builder::new()
            .name("ward-jwks".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        tracing::error!(%err, "cannot start the JWKS fetcher");
                        return;
                    }
                };
                let client = reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::limited(3))
                    .build();
                let client = match client {
                    Ok(client) => client,
                    Err(err) => {
                        tracing::error!(%err, "cannot start the JWKS fetcher");
                        return;
                    }
                };
                for (url, reply) in incoming {
                    let _ = reply.send(runtime.block_on(get(&client, &url)));
                }
            });
        if let Err(err) = spawned {
            tracing::error!(%err, "cannot start the JWKS fetcher thread");
        }
        Fetcher {
            requests: Mutex::new(requests),
        }
    }

    fn get(&self, url: &str) -> Result<String, String> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send((url.to_string(), reply))
            .map_err(|_| String::from("the JWKS fetcher has stopped"))?;
        answer
            .recv_timeout(FETCH_TIMEOUT * 2)
            .map_err(|_| format!("{url}: no answer in time"))?
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let failed = |err: reqwest::Error| format!("{url}: {err}");
    let mut response = client.get(url).send().await.map_err(failed)?;
    if !response.status().is_success() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT {
            return Err(format!("{url}: larger than {MAX_DOCUMENT} bytes"));
        }
    }
    String::from_utf8(body).map_err(|_| format!("{url}: not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_never_read_are_fetched_at_a_bounded_rate() {
        let mut budget = Budget {
            second: None,
            used: 0,
        };
        let start = Instant::now();
        let taken = (0..100).filter(|_| budget.take(start)).count();
        assert_eq!(taken, NEW_SETS_PER_SEC as usize);
        assert!(budget.take(start + Duration::from_secs(1)), "a new second");
    }
}
