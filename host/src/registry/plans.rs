//! The layers of a tenant's settings that the server's configuration
//! gives: plans (below the tenant's own settings) and the config file's
//! per-tenant overrides (above them). Held as one [`Catalog`], swapped
//! whole when the configuration is read again; every tenant's view is
//! then recomputed, so decisions go by the new settings at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};
use ward_types::{Plan, TenantKind, TenantSettings, Timestamp};

use super::index::{TenantRecord, TenantView};
use super::names::{check_name, check_slug};
use super::{Registry, RegistryError, Result};

const DAY_MS: u64 = 86_400_000;

/// Plans and per-tenant overrides, as the server's configuration gives
/// them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Every plan, by name.
    pub plans: BTreeMap<String, Plan>,
    /// The plan new organization tenants are put on.
    pub default_plan: Option<String>,
    /// The plan new personal tenants are put on.
    pub default_personal_plan: Option<String>,
    /// Settings pinned for a tenant, by slug (the tenant may not exist).
    pub overrides: BTreeMap<String, Map<String, Value>>,
    /// Where the overrides come from, as refusals name it (the config
    /// file's path).
    pub origin: String,
}

pub(crate) use super::index::Sources;

impl Catalog {
    /// The plan a new tenant of `kind` is put on.
    fn plan_for(&self, kind: TenantKind) -> Option<&Plan> {
        let name = match kind {
            TenantKind::Personal => self.default_personal_plan.as_ref(),
            TenantKind::Organization => self.default_plan.as_ref(),
        }?;
        self.plans.get(name)
    }

    /// The layers of `record`'s settings merged per top-level setting
    /// (a higher layer replaces an object setting whole), and the layer
    /// each set value comes from.
    fn layered(&self, record: &TenantRecord) -> (Map<String, Value>, Sources) {
        let mut merged = Map::new();
        let mut sources = Sources::new();
        let plan = record.plan.as_ref().and_then(|name| self.plans.get(name));
        let layers = [
            plan.map(|plan| (&plan.settings, format!("plan:{}", plan.name))),
            Some((&record.settings, String::from("tenant"))),
            self.overrides
                .get(&record.slug)
                .map(|pinned| (pinned, String::from("file"))),
        ];
        for (settings, source) in layers.into_iter().flatten() {
            for (key, value) in settings {
                merged.insert(key.clone(), value.clone());
                sources.insert(key.clone(), source.clone());
            }
        }
        (merged, sources)
    }

    /// The first field of `patch` that the config file pins for `slug`.
    fn pinned<'a>(&self, slug: &str, patch: &'a Map<String, Value>) -> Option<&'a str> {
        let pinned = self.overrides.get(slug)?;
        patch
            .keys()
            .find(|key| pinned.contains_key(*key))
            .map(String::as_str)
    }

    /// What changed from `self` to `next`, one line per plan or override.
    fn changes(&self, next: &Catalog) -> Vec<String> {
        fn diff<T: PartialEq>(
            what: &str,
            old: &BTreeMap<String, T>,
            new: &BTreeMap<String, T>,
            out: &mut Vec<String>,
        ) {
            for (name, value) in new {
                match old.get(name) {
                    None => out.push(format!("{what} `{name}` added")),
                    Some(before) if before != value => out.push(format!("{what} `{name}` changed")),
                    Some(_) => {}
                }
            }
            for name in old.keys().filter(|name| !new.contains_key(*name)) {
                out.push(format!("{what} `{name}` removed"));
            }
        }
        let mut out = Vec::new();
        diff("plan", &self.plans, &next.plans, &mut out);
        diff("override of", &self.overrides, &next.overrides, &mut out);
        if self.default_plan != next.default_plan {
            out.push(format!("default_plan is now {:?}", next.default_plan));
        }
        if self.default_personal_plan != next.default_personal_plan {
            out.push(format!(
                "default_personal_plan is now {:?}",
                next.default_personal_plan
            ));
        }
        out
    }
}

/// Trial episodes already audited, by tenant id: the plan and end of
/// trial each was for, so that a changed plan starts a new episode.
pub(crate) type BillingEpisodes = std::sync::Mutex<HashMap<String, (Option<String>, u64)>>;

impl Registry {
    /// Checks `catalog` and puts it in force: every tenant's settings are
    /// recomputed with it. Returns what changed, for the log. Refused,
    /// with nothing changed, when a plan's or an override's settings are
    /// not valid.
    pub fn set_catalog(&self, catalog: Catalog) -> Result<Vec<String>> {
        for (name, plan) in &catalog.plans {
            check_name("plan", name)?;
            self.effective_settings(&plan.settings)
                .map_err(|err| RegistryError::Invalid(format!("plan `{name}`: {err}")))?;
        }
        for (slug, settings) in &catalog.overrides {
            check_slug(slug)?;
            self.effective_settings(settings).map_err(|err| {
                RegistryError::Invalid(format!("[[tenants.overrides]] `{slug}`: {err}"))
            })?;
        }
        for name in [&catalog.default_plan, &catalog.default_personal_plan]
            .into_iter()
            .flatten()
        {
            if !catalog.plans.contains_key(name) {
                return Err(RegistryError::Invalid(format!(
                    "the default plan `{name}` is not one of [[plans]]"
                )));
            }
        }
        let _local = self.lock_local();
        let changes = self.catalog.load().changes(&catalog);
        self.catalog.store(Arc::new(catalog));
        for slot in self.directory.load().by_id.values() {
            let current = slot.view.load_full();
            match self.settings_for(&current.record) {
                Ok((settings, sources)) => slot.view.store(Arc::new(
                    TenantView::new(current.record.clone(), settings, current.scope.clone())
                        .sourced(sources),
                )),
                // Each layer is valid alone; should their sum not be, the
                // tenant keeps the settings it had.
                Err(err) => tracing::error!(
                    tenant = %current.record.slug,
                    %err,
                    "the tenant keeps its previous settings"
                ),
            }
        }
        Ok(changes)
    }

    /// The configured plans, by name.
    pub fn plans(&self) -> Vec<Plan> {
        self.catalog.load().plans.values().cloned().collect()
    }

    /// `record`'s effective settings, checked, and where each comes from.
    pub(crate) fn settings_for(&self, record: &TenantRecord) -> Result<(TenantSettings, Sources)> {
        let (merged, set) = self.catalog.load().layered(record);
        let settings = self.effective_settings(&merged)?;
        let mut sources = Sources::new();
        if let Ok(Value::Object(all)) = serde_json::to_value(&settings) {
            for key in all.keys() {
                let source = set.get(key).map_or("default", String::as_str);
                sources.insert(key.clone(), source.to_string());
            }
        }
        Ok((settings, sources))
    }

    /// [`Registry::settings_for`] for a record read from the store, whose
    /// own settings decode (checked by the caller): should the layers not
    /// add up to valid settings, its own settings alone.
    pub(crate) fn settings_or_own(&self, record: &TenantRecord) -> (TenantSettings, Sources) {
        match self.settings_for(record) {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(tenant = %record.slug, %err, "the tenant's settings as layered are not valid; using its own");
                let own = TenantSettings::from_overrides(&record.settings).unwrap_or_default();
                (own, Sources::new())
            }
        }
    }

    /// Refuses a change of the tenant `slug`'s own settings that the
    /// config file pins.
    pub(crate) fn check_not_pinned(&self, slug: &str, patch: &Map<String, Value>) -> Result<()> {
        let catalog = self.catalog.load();
        match catalog.pinned(slug, patch) {
            Some(field) => Err(RegistryError::Conflict(format!(
                "`{field}` is pinned by [[tenants.overrides]] in {}",
                catalog.origin
            ))),
            None => Ok(()),
        }
    }

    /// The plan a new tenant of `kind` starts on, and the end of its
    /// trial if the plan has one.
    pub(crate) fn starting_plan(&self, kind: TenantKind) -> (Option<String>, Option<Timestamp>) {
        let catalog = self.catalog.load();
        match catalog.plan_for(kind) {
            Some(plan) => (Some(plan.name.clone()), self.trial_end(plan)),
            None => (None, None),
        }
    }

    /// The plan named `name` (`None`: no plan) and the end of its trial,
    /// starting now; an unknown name is refused.
    pub(crate) fn plan_named(
        &self,
        name: Option<&str>,
    ) -> Result<(Option<String>, Option<Timestamp>)> {
        let Some(name) = name else {
            return Ok((None, None));
        };
        let catalog = self.catalog.load();
        let plan = catalog.plans.get(name).ok_or_else(|| {
            RegistryError::Invalid(format!("no plan is named `{}`", super::clip(name)))
        })?;
        Ok((Some(plan.name.clone()), self.trial_end(plan)))
    }

    fn trial_end(&self, plan: &Plan) -> Option<Timestamp> {
        let days = u64::from(plan.trial_days?);
        let now = self.gates.clock().now_ms();
        Some(Timestamp(now.saturating_add(days.saturating_mul(DAY_MS))))
    }

    /// Whether `view`'s tenant must pay before deciding: its trial ended
    /// and it is still on the trial plan. `Some(true)` the first time of
    /// an episode (to audit it), `Some(false)` after.
    pub(crate) fn billing_required(&self, view: &TenantView) -> Option<bool> {
        let ends = view.record.trial_ends_at?;
        if ends.millis() > self.gates.clock().now_ms() {
            return None;
        }
        let plan = view.record.plan.as_ref()?;
        self.catalog.load().plans.get(plan)?.trial_days?;
        let episode = (view.record.plan.clone(), ends.millis());
        let mut seen = self
            .billing_episodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let first = seen.get(&view.record.id) != Some(&episode);
        if first {
            seen.insert(view.record.id.clone(), episode);
        }
        Some(first)
    }

    /// Forgets the tenant's billing episode (deleted).
    pub(crate) fn forget_billing(&self, tenant_id: &str) {
        self.billing_episodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(tenant_id);
    }
}
