//! Per-tenant admission gates (the pipeline's admission step): a token bucket
//! (`rate_limit_per_sec`, `burst`), a cap on evaluations running at once
//! (`max_concurrent_evaluations`) and a monthly budget
//! (`max_decisions_per_month`, counted per calendar month in UTC and
//! persisted). Each tenant has its own state: one tenant's traffic never
//! contends with another's.
//!
//! On a store several replicas share, each replica keeps its own monthly
//! count (`tenant/YYYY-MM/<replica>`) and reads the others' every
//! `usage_sync_ms`; the monthly budget is handed out to replicas in leases
//! (see [`Gates::over_budget`]), so it holds for the tenant as a whole. The
//! token bucket of each replica refills at the tenant's rate divided by
//! the replicas alive, so the tenant's rate holds across the cluster when
//! the load balancer spreads its calls evenly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use ward_types::{AuditKind, TenantSettings};

use crate::store::{self, Kind, Store, StoreError, Write, scoped_key};

pub mod spend;

/// Where time comes from; tests substitute their own.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        ward_types::Timestamp::now().millis()
    }
}

/// A clock that moves only when told to.
#[derive(Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock showing `ms`.
    pub fn at(ms: u64) -> Self {
        ManualClock(AtomicU64::new(ms))
    }

    /// Moves the clock to `ms`.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the clock forward.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The token bucket is empty.
    RateLimited,
    /// `max_concurrent_evaluations` are running.
    TooManyEvaluations,
    /// The month's `max_decisions_per_month` are spent.
    BudgetExhausted,
}

impl Refused {
    const ALL: [Refused; 3] = [
        Refused::RateLimited,
        Refused::TooManyEvaluations,
        Refused::BudgetExhausted,
    ];

    /// The error code.
    pub fn code(self) -> ward_types::ErrorCode {
        match self {
            Refused::RateLimited => ward_types::ErrorCode::RateLimited,
            Refused::TooManyEvaluations => ward_types::ErrorCode::TooManyEvaluations,
            Refused::BudgetExhausted => ward_types::ErrorCode::BudgetExhausted,
        }
    }

    /// The tenant setting whose limit refused.
    pub fn setting(self) -> &'static str {
        match self {
            Refused::RateLimited => "rate_limit_per_sec",
            Refused::TooManyEvaluations => "max_concurrent_evaluations",
            Refused::BudgetExhausted => "max_decisions_per_month",
        }
    }

    /// What the caller is told.
    pub fn message(self) -> &'static str {
        match self {
            Refused::RateLimited => "this tenant's rate limit is reached",
            Refused::TooManyEvaluations => "this tenant has its maximum of evaluations running",
            Refused::BudgetExhausted => "this tenant's decisions for the month are spent",
        }
    }

    /// The audit event kind.
    pub fn audit_kind(self) -> AuditKind {
        match self {
            Refused::RateLimited => AuditKind::RateLimited,
            Refused::TooManyEvaluations => AuditKind::TooManyEvaluations,
            Refused::BudgetExhausted => AuditKind::BudgetExhausted,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A refusal and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: Refused,
    /// Seconds until a retry can succeed (at least 1).
    pub retry_after_secs: u64,
    /// The setting's value for the tenant.
    pub limit: u64,
    /// The first refusal since the tenant was last admitted: the one that
    /// is written to the audit log.
    pub first_of_episode: bool,
}

struct Bucket {
    tokens: f64,
    last_ms: u64,
}

/// One tenant's admission state and counters.
pub struct TenantGate {
    bucket: Mutex<Bucket>,
    in_flight: AtomicU32,
    month: AtomicU32,
    month_decisions: AtomicU64,
    /// Other replicas' decisions this month, as of the last sync.
    others: AtomicU64,
    /// Decisions of the monthly budget this replica has claimed and not
    /// yet admitted (shared store only); below zero while a claim is on
    /// its way.
    lease: Arc<AtomicI64>,
    /// A claim is on its way.
    claiming: Arc<AtomicBool>,
    /// The budget at which a claim found the tenant's month spent
    /// (`u64::MAX`: not spent).
    spent_at: Arc<AtomicU64>,
    persisted: AtomicU64,
    episode: [AtomicBool; 3],
    /// Decisions by outcome since start: allow, deny, policy error.
    pub outcomes: [AtomicU64; 3],
    /// Refusals since start, by [`Refused`].
    pub refused: [AtomicU64; 3],
}

/// One permitted evaluation; releases its slot when dropped.
pub struct Permit {
    gate: Option<Arc<TenantGate>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(gate) = &self.gate {
            gate.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Persisted monthly usage.
#[derive(Debug, Default, Serialize, Deserialize)]
struct MonthRecord {
    decisions: u64,
}

/// How a decision counts.
#[derive(Debug, Clone, Copy)]
pub enum Tally {
    /// Allowed.
    Allow,
    /// Denied by the policy or the pipeline.
    Deny,
    /// Denied because the policy failed.
    Error,
}

/// Shards of the gate map. A tenant's first decision copies its shard
/// (copy on write): with 10,000 tenants one shard holds about 160, where
/// one map would copy all 10,000 for every new tenant.
const SHARDS: usize = 64;

type GateMap = HashMap<String, Arc<TenantGate>>;

/// Every tenant's gate.
pub struct Gates {
    shards: Box<[ArcSwap<GateMap>]>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// This replica's id on a shared store.
    replica: OnceLock<String>,
    /// Replicas alive as last seen (at least this one).
    live_replicas: AtomicU32,
    /// Spend against the tenants' spend budgets.
    spending: spend::Spending,
}

/// `Kind::Meta` key prefix of each replica's last heartbeat.
const HEARTBEAT_PREFIX: &str = "replica/";
/// A replica not heard from for this many syncs is no longer counted.
const SYNCS_UNTIL_GONE: u64 = 3;

impl Gates {
    /// Gates whose monthly counts live in `store`, timed by `clock`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Gates {
            shards: (0..SHARDS)
                .map(|_| ArcSwap::from_pointee(HashMap::new()))
                .collect(),
            spending: spend::Spending::new(Arc::clone(&store)),
            store,
            clock,
            replica: OnceLock::new(),
            live_replicas: AtomicU32::new(1),
        }
    }

    /// Spend against the tenants' spend budgets.
    pub fn spending(&self) -> &spend::Spending {
        &self.spending
    }

    /// Names this replica (on a shared store, before the first decision).
    pub fn set_replica(&self, id: &str) {
        let _ = self.replica.set(id.to_string());
    }

    /// This replica's id: the one set, or one made up for this process.
    pub fn replica(&self) -> &str {
        self.replica
            .get_or_init(|| format!("p-{}", crate::ids::next_ulid().to_string().to_lowercase()))
    }

    /// The key of this replica's count of `tenant`'s decisions in `month`.
    fn own_usage_key(&self, tenant: &str, month: u32) -> String {
        let key = usage_key(tenant, month);
        if self.store.shared() {
            format!("{key}/{}", self.replica())
        } else {
            key
        }
    }

    /// The decisions of `tenant` in `month` counted by other replicas.
    fn others_count(&self, tenant: &str, month: u32) -> u64 {
        if !self.store.shared() {
            return 0;
        }
        let own = self.own_usage_key(tenant, month);
        let rows = match self.store.scan(Kind::Usage, &usage_key(tenant, month)) {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(%err, tenant, "cannot read other replicas' usage");
                return 0;
            }
        };
        rows.iter()
            .filter(|(key, _)| *key != own)
            .filter_map(|(_, bytes)| store::decode::<MonthRecord>(bytes).ok())
            .map(|record| record.decisions)
            .sum()
    }

    /// Replicas alive as last seen.
    pub fn live_replicas(&self) -> u32 {
        self.live_replicas.load(Ordering::Relaxed).max(1)
    }

    /// On a shared store: notes that this replica is alive, counts the
    /// replicas alive, and reads the other replicas' counts of every
    /// tenant this one serves. `sync_ms` is how often it is called.
    pub fn sync_cluster(&self, sync_ms: u64) -> Result<(), StoreError> {
        if !self.store.shared() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let heartbeat = format!("{HEARTBEAT_PREFIX}{}", self.replica());
        self.store.write(vec![Write::Put {
            kind: Kind::Meta,
            key: heartbeat,
            value: now.to_string().into_bytes(),
        }])?;
        let alive = self
            .store
            .scan(Kind::Meta, HEARTBEAT_PREFIX)?
            .iter()
            .filter_map(|(_, value)| std::str::from_utf8(value).ok()?.parse::<u64>().ok())
            .filter(|seen| now.saturating_sub(*seen) <= SYNCS_UNTIL_GONE * sync_ms)
            .count();
        self.live_replicas.store(
            u32::try_from(alive).unwrap_or(u32::MAX).max(1),
            Ordering::Relaxed,
        );
        let month = month_of(now);
        for (tenant, gate) in self.all() {
            if gate.month.load(Ordering::Acquire) == month {
                gate.others
                    .store(self.others_count(&tenant, month), Ordering::Release);
            }
        }
        Ok(())
    }

    fn shard(&self, tenant: &str) -> &ArcSwap<GateMap> {
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(tenant, &mut hasher);
        let index = std::hash::Hasher::finish(&hasher) as usize % SHARDS;
        &self.shards[index]
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The tenant's gate, made (and its month's count loaded) on first use.
    pub fn gate(&self, tenant: &str) -> Arc<TenantGate> {
        let shard = self.shard(tenant);
        if let Some(gate) = shard.load().get(tenant) {
            return Arc::clone(gate);
        }
        let month = month_of(self.clock.now_ms());
        let count = store::get_json::<MonthRecord>(
            self.store.as_ref(),
            Kind::Usage,
            &self.own_usage_key(tenant, month),
        )
        .ok()
        .flatten()
        .unwrap_or_default()
        .decisions;
        let others = self.others_count(tenant, month);
        let fresh = Arc::new(TenantGate {
            bucket: Mutex::new(Bucket {
                tokens: f64::INFINITY,
                last_ms: self.clock.now_ms(),
            }),
            in_flight: AtomicU32::new(0),
            month: AtomicU32::new(month),
            month_decisions: AtomicU64::new(count),
            others: AtomicU64::new(others),
            lease: Arc::new(AtomicI64::new(0)),
            claiming: Arc::new(AtomicBool::new(false)),
            spent_at: Arc::new(AtomicU64::new(u64::MAX)),
            persisted: AtomicU64::new(count),
            episode: Default::default(),
            outcomes: Default::default(),
            refused: Default::default(),
        });
        let mut chosen = Arc::clone(&fresh);
        shard.rcu(|current| {
            let mut next = (**current).clone();
            chosen = Arc::clone(
                next.entry(tenant.to_string())
                    .or_insert_with(|| Arc::clone(&fresh)),
            );
            next
        });
        chosen
    }

    /// Admits `decisions` decisions for `tenant` under `settings`, or says
    /// why not and when to retry.
    pub fn admit(
        &self,
        tenant: &str,
        settings: &TenantSettings,
        decisions: u32,
    ) -> Result<Permit, Refusal> {
        let gate = self.gate(tenant);
        let now = self.clock.now_ms();
        let refuse = |reason: Refused, limit: u64, retry_after_secs: u64| {
            gate.refused[reason.index()].fetch_add(1, Ordering::Relaxed);
            Refusal {
                reason,
                limit,
                retry_after_secs: retry_after_secs.max(1),
                first_of_episode: !gate.episode[reason.index()].swap(true, Ordering::AcqRel),
            }
        };

        let month = month_of(now);
        if gate.month.swap(month, Ordering::AcqRel) != month {
            gate.month_decisions.store(0, Ordering::Release);
            gate.others.store(0, Ordering::Release);
            gate.lease.store(0, Ordering::Release);
            gate.spent_at.store(u64::MAX, Ordering::Release);
            gate.persisted.store(u64::MAX, Ordering::Release);
        }
        if let Some(max) = settings.max_decisions_per_month
            && let Some(retry_after_secs) = self.over_budget(tenant, &gate, max, decisions, now)
        {
            return Err(refuse(Refused::BudgetExhausted, max, retry_after_secs));
        }

        let running = gate.in_flight.fetch_add(1, Ordering::AcqRel);
        if running >= settings.max_concurrent_evaluations {
            gate.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(refuse(
                Refused::TooManyEvaluations,
                u64::from(settings.max_concurrent_evaluations),
                1,
            ));
        }
        let permit = Permit {
            gate: Some(Arc::clone(&gate)),
        };

        {
            // This replica's share of the tenant's rate and burst.
            let replicas = f64::from(self.live_replicas());
            let rate = f64::from(settings.rate_limit_per_sec) / replicas;
            let burst = (f64::from(settings.burst) / replicas).ceil().max(1.0);
            let mut bucket = gate.bucket.lock().unwrap_or_else(PoisonError::into_inner);
            let elapsed = now.saturating_sub(bucket.last_ms) as f64 / 1000.0;
            bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
            bucket.last_ms = now;
            let wanted = f64::from(decisions);
            if bucket.tokens < wanted {
                let wait = ((wanted - bucket.tokens) / rate).ceil() as u64;
                drop(bucket);
                return Err(refuse(
                    Refused::RateLimited,
                    u64::from(settings.rate_limit_per_sec),
                    wait,
                ));
            }
            bucket.tokens -= wanted;
        }

        gate.month_decisions
            .fetch_add(u64::from(decisions), Ordering::AcqRel);
        for flag in &gate.episode {
            flag.store(false, Ordering::Release);
        }
        Ok(permit)
    }

    /// Whether `decisions` more would pass the monthly budget `max`; if so,
    /// when to try again.
    ///
    /// On a shared store the budget is handed out in leases: each replica
    /// claims a few decisions at a time from a counter in the store (one
    /// transaction, [`Store::take`]) and admits from its lease. A claim is
    /// made in the background once half the lease is used, so a decision
    /// never waits for the database; a replica whose lease runs dry before
    /// the claim returns admits on credit, which the claim pays back. Once
    /// a claim finds the month spent, the replica admits what its lease
    /// still holds and then refuses. The tenant as a whole thus admits its
    /// budget, plus at most what each replica admitted on credit while its
    /// last claim was on its way.
    fn over_budget(
        &self,
        tenant: &str,
        gate: &TenantGate,
        max: u64,
        decisions: u32,
        now: u64,
    ) -> Option<u64> {
        let own = gate.month_decisions.load(Ordering::Acquire);
        let others = gate.others.load(Ordering::Acquire);
        let wanted = u64::from(decisions);
        let until_next_month = (start_of_next_month(now) - now).div_ceil(1000);
        if own + others + wanted > max {
            return Some(until_next_month);
        }
        if !self.store.shared() {
            return None;
        }
        let wanted = i64::from(decisions);
        let spent_at = gate.spent_at.load(Ordering::Acquire);
        if spent_at != u64::MAX && spent_at < max {
            // The budget was raised since: claim again.
            gate.spent_at.store(u64::MAX, Ordering::Release);
        } else if spent_at != u64::MAX {
            let taken = gate
                .lease
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                    (left >= wanted).then_some(left - wanted)
                });
            return taken.is_err().then_some(until_next_month);
        }
        let left = gate.lease.fetch_sub(wanted, Ordering::AcqRel) - wanted;
        let lease = lease_size(max, self.live_replicas());
        if left < (lease / 2) as i64 && !gate.claiming.swap(true, Ordering::AcqRel) {
            self.claim(tenant, gate, max, lease);
        }
        None
    }

    /// Claims the next lease of `tenant`'s monthly budget on a thread of
    /// its own (the caller is deciding, and never waits for the store).
    fn claim(&self, tenant: &str, gate: &TenantGate, max: u64, lease: u64) {
        let store = Arc::clone(&self.store);
        let (left, claiming, spent_at) = (
            Arc::clone(&gate.lease),
            Arc::clone(&gate.claiming),
            Arc::clone(&gate.spent_at),
        );
        let key = claims_key(tenant, gate.month.load(Ordering::Acquire));
        let spawned = std::thread::Builder::new()
            .name(String::from("ward-budget-claim"))
            .spawn(move || {
                let owed = u64::try_from(-left.load(Ordering::Acquire)).unwrap_or(0);
                let want = lease + owed;
                match store.take(Kind::Usage, &key, want, max) {
                    Ok(granted) => {
                        left.fetch_add(
                            i64::try_from(granted).unwrap_or(i64::MAX),
                            Ordering::AcqRel,
                        );
                        if granted < want {
                            spent_at.store(max, Ordering::Release);
                        }
                    }
                    Err(err) => tracing::warn!(%err, "cannot claim a lease of a monthly budget"),
                }
                claiming.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            gate.claiming.store(false, Ordering::Release);
        }
    }

    /// A permit that counts nothing (decisions that need no admission).
    pub fn unlimited() -> Permit {
        Permit { gate: None }
    }

    /// Counts one decision's outcome.
    pub fn record(&self, tenant: &str, tally: Tally) {
        self.gate(tenant).outcomes[tally as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// This month's usage of `tenant`.
    pub fn usage(&self, tenant: &str, settings: &TenantSettings) -> ward_types::Usage {
        let gate = self.gate(tenant);
        let now = self.clock.now_ms();
        let month = month_of(now);
        let decisions = if gate.month.load(Ordering::Acquire) == month {
            gate.month_decisions.load(Ordering::Acquire) + self.others_count(tenant, month)
        } else {
            self.others_count(tenant, month)
        };
        ward_types::Usage {
            month: format!("{:04}-{:02}", month / 100, month % 100),
            decisions,
            max_decisions_per_month: settings.max_decisions_per_month,
            rate_limit_per_sec: settings.rate_limit_per_sec,
            burst: settings.burst,
            max_concurrent_evaluations: settings.max_concurrent_evaluations,
            evaluations_running: gate.in_flight.load(Ordering::Acquire),
            rate_limited: gate.refused[Refused::RateLimited.index()].load(Ordering::Relaxed),
            too_many_evaluations: gate.refused[Refused::TooManyEvaluations.index()]
                .load(Ordering::Relaxed),
            budget_exhausted: gate.refused[Refused::BudgetExhausted.index()]
                .load(Ordering::Relaxed),
            spend: Default::default(),
            agents: Default::default(),
        }
    }

    /// Writes every changed monthly count and spend to the store (durably).
    pub fn persist(&self) -> Result<(), StoreError> {
        self.spending.persist()?;
        let mut writes = Vec::new();
        for shard in self.shards.iter() {
            for (tenant, gate) in shard.load().iter() {
                let count = gate.month_decisions.load(Ordering::Acquire);
                if gate.persisted.swap(count, Ordering::AcqRel) == count {
                    continue;
                }
                let key = self.own_usage_key(tenant, gate.month.load(Ordering::Acquire));
                writes.push(Write::put_json(
                    Kind::Usage,
                    key,
                    &MonthRecord { decisions: count },
                )?);
            }
        }
        if writes.is_empty() {
            return Ok(());
        }
        self.store.write(writes)
    }

    /// Forgets a deleted tenant.
    pub fn forget(&self, tenant: &str) {
        self.spending.forget(tenant);
        self.shard(tenant).rcu(|current| {
            let mut next = (**current).clone();
            next.remove(tenant);
            next
        });
    }

    /// Every tenant's gate, for the metrics.
    pub fn all(&self) -> GateMap {
        self.shards
            .iter()
            .flat_map(|shard| {
                shard
                    .load()
                    .iter()
                    .map(|(tenant, gate)| (tenant.clone(), Arc::clone(gate)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Names every refusal kind, for the metrics.
    pub fn refusal_codes() -> [ward_types::ErrorCode; 3] {
        Refused::ALL.map(Refused::code)
    }
}

/// Decisions one replica claims of a budget at a time: a tenth of its
/// share, between 1 and 1,000.
fn lease_size(max: u64, replicas: u32) -> u64 {
    (max / (10 * u64::from(replicas.max(1)))).clamp(1, 1_000)
}

/// The key of the cluster's count of `tenant`'s budget claimed in `month`
/// (not under the month's usage prefix: it counts claims, not decisions).
fn claims_key(tenant: &str, month: u32) -> String {
    scoped_key(
        tenant,
        &format!("claims/{:04}-{:02}", month / 100, month % 100),
    )
}

fn usage_key(tenant: &str, month: u32) -> String {
    scoped_key(tenant, &format!("{:04}-{:02}", month / 100, month % 100))
}

/// (year, month) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// Days since 1970-01-01 of the first day of `year`-`month`.
fn days_from_civil(year: i64, month: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `yyyymm` of a time.
pub fn month_of(ms: u64) -> u32 {
    let (year, month) = civil((ms / 86_400_000) as i64);
    (year * 100) as u32 + month
}

/// The first millisecond of the next calendar month (UTC).
pub fn start_of_next_month(ms: u64) -> u64 {
    let (year, month) = civil((ms / 86_400_000) as i64);
    let (year, month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    (days_from_civil(year, month) * 86_400_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_months_in_utc() {
        // 2026-11-22T09:00:00Z
        let t = 1_795_338_000_000;
        assert_eq!(month_of(t), 202611);
        assert_eq!(start_of_next_month(t), 1_796_083_200_000); // 2026-12-01
        assert_eq!(month_of(1_796_083_200_000 - 1), 202611);
        assert_eq!(month_of(1_796_083_200_000), 202612);
        // December rolls into January.
        let dec = 1_798_675_200_000; // 2026-12-31T00:00:00Z
        assert_eq!(month_of(dec), 202612);
        assert_eq!(month_of(start_of_next_month(dec)), 202701);
        assert_eq!(month_of(0), 197001);
        // 2024-02-29 (leap day)
        assert_eq!(month_of(1_709_164_800_000), 202402);
    }
}
