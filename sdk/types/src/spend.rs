//! Spend budgets: what a tenant's agents may spend per month, in units the
//! platform chooses (LLM tokens, cents, tool calls), and what a decision
//! costs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most units a budget map or a cost may name.
pub const MAX_UNITS: usize = 16;
/// Longest unit name.
pub const MAX_UNIT_LEN: usize = 32;
/// Largest amount of one unit (a cost or a monthly budget): far beyond any
/// real spend, and small enough that sums never overflow.
pub const MAX_AMOUNT: u64 = 1 << 50;

/// What a budget does when a decision would take a unit past it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BudgetAction {
    /// Deny the decision (`budget_exhausted:<unit>`).
    #[default]
    Block,
    /// Allow it, with a reason and a `budget_warning` audit event at 80%
    /// and at 100%.
    Warn,
}

/// One unit's monthly budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SpendBudget {
    /// Amount per calendar month (UTC).
    pub monthly: u64,
    /// Block (the default) or warn.
    #[serde(default)]
    pub action: BudgetAction,
}

/// Budgets by unit name.
pub type Budgets = BTreeMap<String, SpendBudget>;

/// What one decision costs, by unit name: `{"tokens": 1200, "cents": 3}`.
pub type Cost = BTreeMap<String, u64>;

fn check_unit(unit: &str) -> Result<(), String> {
    let valid = !unit.is_empty()
        && unit.len() <= MAX_UNIT_LEN
        && unit
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "unit names are 1-{MAX_UNIT_LEN} characters of a-z, 0-9 and _"
        ))
    }
}

/// Checks a budget map's unit names, count and amounts.
pub fn check_budgets(budgets: &Budgets) -> Result<(), String> {
    if budgets.len() > MAX_UNITS {
        return Err(format!("at most {MAX_UNITS} budget units"));
    }
    for (unit, budget) in budgets {
        check_unit(unit)?;
        if budget.monthly > MAX_AMOUNT {
            return Err(format!("budget `{unit}` is over {MAX_AMOUNT}"));
        }
    }
    Ok(())
}

/// Checks a cost's unit names, count and amounts.
pub fn check_cost(cost: &Cost) -> Result<(), String> {
    if cost.len() > MAX_UNITS {
        return Err(format!("a cost names at most {MAX_UNITS} units"));
    }
    for (unit, amount) in cost {
        check_unit(unit)?;
        if *amount > MAX_AMOUNT {
            return Err(format!("cost `{unit}` is over {MAX_AMOUNT}"));
        }
    }
    Ok(())
}

/// One unit's spend this month, against a budget if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnitSpend {
    /// Spent by allowed decisions this month.
    pub spent: u64,
    /// The monthly budget, if the unit has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u64>,
    /// What is left of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// What the budget does when passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<BudgetAction>,
}
