//! Spend budgets: what a decision costs (`cost` in the request, in units
//! the platform names) against the tenant's and the agent's monthly
//! budgets.
//!
//! Only allowed decisions spend. A tenant's spend is checked and added
//! under one lock, so concurrent callers never spend past a `block`
//! budget; a request id seen before this month spends nothing again (a
//! retry). Counts are kept per calendar month (UTC) and written to the
//! store with the other usage counters.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use ward_types::{AuthorizeRequest, BudgetAction, Budgets, Cost, UnitSpend};

use crate::store::{self, Kind, Store, StoreError, Write, scoped_key};

/// Request ids remembered per tenant and month, so that a retry does not
/// spend twice; the oldest are forgotten first.
pub const REMEMBERED_REQUESTS: usize = 4096;
/// Longest request id.
pub const MAX_REQUEST_ID: usize = 128;
/// Agents whose spend one tenant's month records (beyond it, the tenant's
/// spend is still counted; an agent over the cap has no per-agent count).
const MAX_AGENTS_COUNTED: usize = 10_000;
/// The thresholds of a `warn` budget that write a `budget_warning` event.
const WARN_AT_PERCENT: [u64; 2] = [80, 100];

/// What a request asks to spend: its `context.cost`, and `context.request_id`
/// if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// Amount by unit.
    pub cost: Cost,
    /// The caller's id for the request: a retry with the same id spends
    /// nothing again.
    pub request_id: Option<String>,
}

impl Charge {
    /// The charge `request` carries; `None` without a `cost`. Malformed
    /// costs and request ids are refused with the reason.
    pub fn of(request: &AuthorizeRequest) -> Result<Option<Charge>, String> {
        let Some(context) = &request.context else {
            return Ok(None);
        };
        let request_id = match context.get("request_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_REQUEST_ID => {
                Some(id.clone())
            }
            Some(_) => {
                return Err(format!(
                    "request_id must be a string of 1-{MAX_REQUEST_ID} bytes"
                ));
            }
        };
        let cost = match context.get("cost") {
            None | Some(Value::Null) => return Ok(None),
            Some(cost) => Cost::deserialize(cost)
                .map_err(|err| format!("cost must map unit names to whole amounts: {err}"))?,
        };
        ward_types::check_cost(&cost).map_err(|err| format!("cost: {err}"))?;
        Ok(Some(Charge { cost, request_id }))
    }
}

/// A `warn` budget that a decision took to or past a threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// The unit.
    pub unit: String,
    /// `tenant`, or the agent's name.
    pub budget_of: String,
    /// 80 or 100.
    pub percent: u64,
    /// Spent after the decision.
    pub spent: u64,
    /// The budget.
    pub monthly: u64,
}

/// What a charge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spent {
    /// Spent (or a retry, which spends nothing again): what is left of
    /// each budgeted unit, the units spent past a `warn` budget, and the
    /// thresholds crossed.
    Within {
        /// Left of each budgeted unit the charge names.
        remaining: Cost,
        /// Units now past a `warn` budget.
        over: Vec<String>,
        /// `warn` thresholds this charge crossed.
        warnings: Vec<Warning>,
    },
    /// A `block` budget would be passed: nothing was spent.
    Exhausted {
        /// The unit.
        unit: String,
        /// What is left of it.
        remaining: u64,
    },
}

/// One tenant's spend in one month, as stored.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct MonthSpend {
    month: u32,
    tenant: BTreeMap<String, u64>,
    agents: BTreeMap<String, BTreeMap<String, u64>>,
    /// Request ids already charged, oldest first.
    requests: VecDeque<String>,
    /// Thresholds already warned of: `budget_of/unit/percent`.
    warned: Vec<String>,
}

#[derive(Default)]
struct TenantSpend {
    month: MonthSpend,
    requests: HashSet<String>,
    warned: HashSet<String>,
    dirty: bool,
}

impl TenantSpend {
    fn from_stored(month: MonthSpend) -> Self {
        TenantSpend {
            requests: month.requests.iter().cloned().collect(),
            warned: month.warned.iter().cloned().collect(),
            month,
            dirty: false,
        }
    }
}

/// Every tenant's spend.
pub struct Spending {
    store: Arc<dyn Store>,
    tenants: Mutex<HashMap<String, Arc<Mutex<TenantSpend>>>>,
}

fn spend_key(tenant: &str, month: u32) -> String {
    scoped_key(
        tenant,
        &format!("spend/{:04}-{:02}", month / 100, month % 100),
    )
}

/// Checks one unit against one budget; the amount left after spending.
fn against(
    budget: Option<&ward_types::SpendBudget>,
    spent: u64,
    amount: u64,
) -> Option<(u64, bool)> {
    let budget = budget?;
    let after = spent.saturating_add(amount);
    Some((budget.monthly.saturating_sub(after), after > budget.monthly))
}

impl Spending {
    /// Spend kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Spending {
            store,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// `tenant`'s spend, loaded from the store on first use, rolled over
    /// to `month`.
    fn tenant(&self, tenant: &str, month: u32) -> Arc<Mutex<TenantSpend>> {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = tenants.entry(tenant.to_string()).or_insert_with(|| {
            let stored = store::get_json::<MonthSpend>(
                self.store.as_ref(),
                Kind::Usage,
                &spend_key(tenant, month),
            );
            let month_spend = match stored {
                Ok(Some(stored)) => stored,
                Ok(None) => MonthSpend::default(),
                Err(err) => {
                    // Counting starts again rather than refusing the
                    // tenant's every decision; the record stays for
                    // `ward store check`.
                    tracing::error!(%err, tenant, "a spend record cannot be read");
                    MonthSpend::default()
                }
            };
            Arc::new(Mutex::new(TenantSpend::from_stored(MonthSpend {
                month,
                ..month_spend
            })))
        });
        Arc::clone(entry)
    }

    /// Charges `charge` to `tenant` (and `agent`) in `month` against the
    /// tenant's and the agent's budgets.
    pub fn charge(
        &self,
        tenant: &str,
        month: u32,
        agent: Option<(&str, &Budgets)>,
        tenant_budgets: &Budgets,
        charge: &Charge,
    ) -> Spent {
        let state = self.tenant(tenant, month);
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.month.month != month {
            *state = TenantSpend::from_stored(MonthSpend {
                month,
                ..MonthSpend::default()
            });
            state.dirty = true;
        }
        let repeated = charge
            .request_id
            .as_ref()
            .is_some_and(|id| state.requests.contains(id));
        let mut remaining = Cost::new();
        let mut over = Vec::new();
        let mut warnings = Vec::new();
        for (unit, amount) in &charge.cost {
            let amount = if repeated { 0 } else { *amount };
            let tenant_spent = state.month.tenant.get(unit).copied().unwrap_or(0);
            let agent_spent = agent
                .and_then(|(name, _)| state.month.agents.get(name)?.get(unit).copied())
                .unwrap_or(0);
            let checks = [
                ("tenant", tenant_budgets.get(unit), tenant_spent),
                (
                    agent.map_or("", |(name, _)| name),
                    agent.and_then(|(_, budgets)| budgets.get(unit)),
                    agent_spent,
                ),
            ];
            for (budget_of, budget, spent) in checks {
                let Some((left, past)) = against(budget, spent, amount) else {
                    continue;
                };
                let Some(budget) = budget else { continue };
                if past && budget.action == BudgetAction::Block {
                    return Spent::Exhausted {
                        unit: unit.clone(),
                        remaining: budget.monthly.saturating_sub(spent),
                    };
                }
                remaining
                    .entry(unit.clone())
                    .and_modify(|least| *least = (*least).min(left))
                    .or_insert(left);
                if budget.action == BudgetAction::Warn {
                    if past && !over.contains(unit) {
                        over.push(unit.clone());
                    }
                    for percent in WARN_AT_PERCENT {
                        let threshold = budget.monthly.saturating_mul(percent).div_ceil(100);
                        let mark = format!("{budget_of}/{unit}/{percent}");
                        if spent + amount >= threshold && !state.warned.contains(&mark) {
                            warnings.push(Warning {
                                unit: unit.clone(),
                                budget_of: budget_of.to_string(),
                                percent,
                                spent: spent + amount,
                                monthly: budget.monthly,
                            });
                            state.warned.insert(mark.clone());
                            state.month.warned.push(mark);
                        }
                    }
                }
            }
        }
        if !repeated {
            let counted = state.month.agents.len() < MAX_AGENTS_COUNTED;
            for (unit, amount) in &charge.cost {
                *state.month.tenant.entry(unit.clone()).or_default() += amount;
                if let Some((name, _)) = agent
                    && (counted || state.month.agents.contains_key(name))
                {
                    *state
                        .month
                        .agents
                        .entry(name.to_string())
                        .or_default()
                        .entry(unit.clone())
                        .or_default() += amount;
                }
            }
            if let Some(id) = &charge.request_id {
                state.requests.insert(id.clone());
                state.month.requests.push_back(id.clone());
                if state.month.requests.len() > REMEMBERED_REQUESTS
                    && let Some(oldest) = state.month.requests.pop_front()
                {
                    state.requests.remove(&oldest);
                }
            }
            state.dirty = true;
        }
        Spent::Within {
            remaining,
            over,
            warnings,
        }
    }

    /// `tenant`'s spend in `month` against its budgets, and each agent's
    /// against its own (`agent_budgets` names them).
    pub fn report(
        &self,
        tenant: &str,
        month: u32,
        tenant_budgets: &Budgets,
        agent_budgets: &dyn Fn(&str) -> Option<Budgets>,
    ) -> SpendReport {
        let state = self.tenant(tenant, month);
        let state = state.lock().unwrap_or_else(PoisonError::into_inner);
        let current = state.month.month == month;
        let empty = BTreeMap::new();
        let spent = if current { &state.month.tenant } else { &empty };
        let mut report = SpendReport {
            spend: units(spent, tenant_budgets),
            agents: BTreeMap::new(),
        };
        if current {
            for (agent, spent) in &state.month.agents {
                let budgets = agent_budgets(agent).unwrap_or_default();
                report.agents.insert(agent.clone(), units(spent, &budgets));
            }
        }
        report
    }

    /// Writes every changed tenant's spend (durably).
    pub fn persist(&self) -> Result<(), StoreError> {
        let tenants: Vec<(String, Arc<Mutex<TenantSpend>>)> = self
            .tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(tenant, state)| (tenant.clone(), Arc::clone(state)))
            .collect();
        let mut writes = Vec::new();
        for (tenant, state) in tenants {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            if !state.dirty {
                continue;
            }
            state.dirty = false;
            let key = spend_key(&tenant, state.month.month);
            writes.push(Write::put_json(Kind::Usage, key, &state.month)?);
        }
        if writes.is_empty() {
            return Ok(());
        }
        self.store.write(writes)
    }

    /// Forgets a deleted tenant.
    pub fn forget(&self, tenant: &str) {
        self.tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(tenant);
    }
}

/// Spend by unit, each against its budget when it has one (budgeted units
/// with nothing spent included).
fn units(spent: &BTreeMap<String, u64>, budgets: &Budgets) -> BTreeMap<String, UnitSpend> {
    let mut report = BTreeMap::new();
    for (unit, amount) in spent {
        report.insert(unit.clone(), unit_spend(*amount, budgets.get(unit)));
    }
    for (unit, budget) in budgets {
        report
            .entry(unit.clone())
            .or_insert_with(|| unit_spend(0, Some(budget)));
    }
    report
}

fn unit_spend(spent: u64, budget: Option<&ward_types::SpendBudget>) -> UnitSpend {
    UnitSpend {
        spent,
        monthly: budget.map(|b| b.monthly),
        remaining: budget.map(|b| b.monthly.saturating_sub(spent)),
        action: budget.map(|b| b.action),
    }
}

/// Spend this month, for `GET /v1/usage`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpendReport {
    /// The tenant's spend by unit.
    pub spend: BTreeMap<String, UnitSpend>,
    /// Each agent's spend by unit, against the agent's own budgets.
    pub agents: BTreeMap<String, BTreeMap<String, UnitSpend>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_types::SpendBudget;

    fn budgets(unit: &str, monthly: u64, action: BudgetAction) -> Budgets {
        Budgets::from([(unit.to_string(), SpendBudget { monthly, action })])
    }

    fn charge(tokens: u64, id: Option<&str>) -> Charge {
        Charge {
            cost: Cost::from([(String::from("tokens"), tokens)]),
            request_id: id.map(str::to_string),
        }
    }

    fn spending() -> Spending {
        Spending::new(Arc::new(crate::store::SledStore::temporary().unwrap()))
    }

    #[test]
    fn block_refuses_what_would_pass_the_budget_and_spends_nothing() {
        let spend = spending();
        let limit = budgets("tokens", 100, BudgetAction::Block);
        let within = spend.charge("t", 202612, None, &limit, &charge(60, None));
        assert!(matches!(within, Spent::Within { ref remaining, .. } if remaining["tokens"] == 40));
        let refused = spend.charge("t", 202612, None, &limit, &charge(41, None));
        assert_eq!(
            refused,
            Spent::Exhausted {
                unit: String::from("tokens"),
                remaining: 40
            }
        );
        let exact = spend.charge("t", 202612, None, &limit, &charge(40, None));
        assert!(matches!(exact, Spent::Within { ref remaining, .. } if remaining["tokens"] == 0));
    }

    #[test]
    fn a_retry_spends_nothing_again() {
        let spend = spending();
        let limit = budgets("tokens", 100, BudgetAction::Block);
        for _ in 0..3 {
            let spent = spend.charge("t", 202612, None, &limit, &charge(70, Some("req-1")));
            assert!(matches!(spent, Spent::Within { .. }), "{spent:?}");
        }
        let report = spend.report("t", 202612, &limit, &|_| None);
        assert_eq!(report.spend["tokens"].spent, 70);
    }

    #[test]
    fn warn_allows_and_warns_once_at_each_threshold() {
        let spend = spending();
        let limit = budgets("tokens", 100, BudgetAction::Warn);
        let mut seen = Vec::new();
        for _ in 0..6 {
            match spend.charge("t", 202612, None, &limit, &charge(30, None)) {
                Spent::Within { warnings, .. } => seen.extend(warnings.iter().map(|w| w.percent)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, [80, 100]);
    }

    #[test]
    fn the_agent_budget_holds_beside_the_tenant_one_and_months_start_afresh() {
        let spend = spending();
        let tenant = budgets("tokens", 1000, BudgetAction::Block);
        let agent = budgets("tokens", 50, BudgetAction::Block);
        let bot = Some(("bot", &agent));
        assert!(matches!(
            spend.charge("t", 202612, bot, &tenant, &charge(50, None)),
            Spent::Within { .. }
        ));
        assert!(matches!(
            spend.charge("t", 202612, bot, &tenant, &charge(1, None)),
            Spent::Exhausted { .. }
        ));
        assert!(matches!(
            spend.charge("t", 202701, bot, &tenant, &charge(50, None)),
            Spent::Within { .. }
        ));
        spend.persist().unwrap();
    }

    #[test]
    fn malformed_costs_are_refused() {
        let ask = |context: serde_json::Value| {
            let mut request = AuthorizeRequest {
                subject: ward_types::Entity::new("agent", "a"),
                action: ward_types::RequestAction::new("b"),
                resource: ward_types::Entity::new("c", "d"),
                context: None,
            };
            request.context = context.as_object().cloned();
            Charge::of(&request)
        };
        assert!(ask(serde_json::json!({"cost": {"tokens": -1}})).is_err());
        assert!(ask(serde_json::json!({"cost": {"Tokens": 1}})).is_err());
        assert!(ask(serde_json::json!({"cost": "a lot"})).is_err());
        assert!(ask(serde_json::json!({"cost": {"t": 1}, "request_id": 7})).is_err());
        assert_eq!(ask(serde_json::json!({"ip": "x"})).unwrap(), None);
        assert!(
            ask(serde_json::json!({"cost": {"tokens": 1}}))
                .unwrap()
                .is_some()
        );
    }
}
