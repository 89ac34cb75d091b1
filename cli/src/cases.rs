//! Policy test cases (`ward policy test POLICY.wasm cases.yaml`): each case
//! is decided by the same pipeline and sandbox as the server's, in a
//! throwaway in-memory store, and compared with what the author expects.
//!
//! ```yaml
//! config: {threshold: 3}          # optional: the policy's configuration
//! agents:                         # optional: agents every case sees
//!   - name: reporter
//!     type: service
//!     permissions: [{resource: "reports:*", actions: [read]}]
//! data:                           # optional: data documents
//!   roles: {admin: ["*"]}
//! cases:
//!   - name: the reporter reads a report
//!     subject: reporter           # an agent name, or `type:id`, or {type, id, properties}
//!     action: read                # or {name, properties}
//!     resource: reports:q3        # `type:id` or {type, id, properties}
//!     context: {}                 # optional
//!     agents: []                  # optional: more agents, replacing same-named ones
//!     data: {}                    # optional: more documents
//!     expect:
//!       decision: allow           # allow | deny
//!       reasons: ["…"]            # optional: the exact list
//!       context: {}               # optional: the exact context
//!
//!   # A batch case: many questions in one call, as AuthZEN's Access
//!   # Evaluations API asks them. The case's subject, action, resource and
//!   # context are defaults that an evaluation's own key replaces whole.
//!   - name: the reporter reads reports but no invoices
//!     subject: reporter
//!     action: read
//!     semantic: deny_on_first_deny   # execute_all (default) | deny_on_first_deny
//!                                    # | permit_on_first_permit
//!     evaluations:                   # 1 to MAX_BATCH (100)
//!       - resource: reports:q3
//!       - resource: invoices:7
//!       - resource: reports:q4       # not answered: the call stopped at the deny
//!     expect:
//!       decisions:                   # one per evaluation answered, in order
//!         - allow
//!         - {decision: deny, reasons: ["…"]}   # reasons, context: optional, exact
//! ```
//!
//! A batch case is decided by the server's own batch pipeline
//! ([`ward::decision::Decider::decide_call`]): with `deny_on_first_deny`
//! the answer stops after the first deny, with `permit_on_first_permit`
//! after the first allow, exactly as `POST /access/v1/evaluations` does.
//!
//! The component is compiled once per run: it is uploaded once, as the
//! global policy [`POLICY_UNDER_TEST`] configured with the suite's
//! `config`. Every case runs in a tenant of its own whose `default_policy`
//! names it (a tenant has no policy of that name, so the global one
//! resolves), with the case's agents and data in that tenant's scope; the
//! tenant is deleted after the case, so cases never see each other's
//! agents or data. An agent bound to another policy (such as the builtin
//! `permissions`) is decided by that one, as on the server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use ward_types::{
    AgentStatus, AuthorizeRequest, CreateTenant, DecisionResponse, Entity, Permission, PutAgent,
    RequestAction, TenantKind, TenantSettings,
};

use ward::audit::AuditLog;
use ward::decision::{Item, ItemAnswer, MAX_BATCH, Schedule, Semantic, check_request};
use ward::gates::SystemClock;
use ward::registry::{RegistryError, ScopeId};
use ward::sandbox::{LoadError, Sandbox, SandboxConfig, SandboxStats};
use ward::server::Parts;
use ward::store::{SledStore, Store};

/// Largest cases file read.
pub const MAX_CASES_BYTES: usize = 4 << 20;
/// Most cases in one file.
pub const MAX_CASES: usize = 10_000;
/// Most evaluations in one batch case: the server's limit per call.
pub const MAX_EVALUATIONS: usize = MAX_BATCH;
/// The name the policy under test is uploaded as, in the global scope.
pub const POLICY_UNDER_TEST: &str = "under-test";

/// Who the runner's changes and decisions are by, in its audit log.
const ACTOR: &str = "cases";

/// Why the cases could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    /// The cases file is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The module was refused, or the throwaway store failed.
    #[error("{0}")]
    Setup(String),
}

fn setup(err: impl std::fmt::Display) -> CasesError {
    CasesError::Setup(err.to_string())
}

/// A cases file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// The policy's configuration.
    #[serde(default)]
    pub config: Option<Value>,
    /// Agents every case sees.
    #[serde(default)]
    pub agents: Vec<CaseAgent>,
    /// Data documents every case sees.
    #[serde(default)]
    pub data: Map<String, Value>,
    /// The cases.
    pub cases: Vec<Case>,
}

/// An agent in a cases file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseAgent {
    /// Its name (what `subject` names).
    pub name: String,
    /// Its type (default `agent`).
    #[serde(rename = "type", default = "agent_type")]
    pub kind: String,
    /// Active (default) or disabled.
    #[serde(default)]
    pub status: AgentStatus,
    /// Free attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Its permissions.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// A policy bound to it; by default the policy under test decides.
    #[serde(default)]
    pub policy: Option<String>,
}

fn agent_type() -> String {
    String::from("agent")
}

/// One case: one question, or a batch of them (`evaluations`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What it checks.
    pub name: String,
    /// Who asks (a batch's default).
    #[serde(default)]
    pub subject: Option<Subject>,
    /// What for (a batch's default).
    #[serde(default)]
    pub action: Option<ActionSpec>,
    /// On what (a batch's default).
    #[serde(default)]
    pub resource: Option<ResourceSpec>,
    /// Anything else (a batch's default).
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    /// The questions of a batch case, asked in one call.
    #[serde(default)]
    pub evaluations: Option<Vec<Evaluation>>,
    /// When a batch stops: `execute_all` (default), `deny_on_first_deny`
    /// or `permit_on_first_permit`, AuthZEN's names.
    #[serde(default)]
    pub semantic: Option<String>,
    /// Agents of this case only (replacing same-named shared ones).
    #[serde(default)]
    pub agents: Vec<CaseAgent>,
    /// Data documents of this case only.
    #[serde(default)]
    pub data: Map<String, Value>,
    /// What should come out.
    pub expect: Expect,
}

/// One question of a batch case; what it leaves out is the case's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// Who asks.
    #[serde(default)]
    pub subject: Option<Subject>,
    /// What for.
    #[serde(default)]
    pub action: Option<ActionSpec>,
    /// On what.
    #[serde(default)]
    pub resource: Option<ResourceSpec>,
    /// Anything else (replaces the case's context whole).
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

/// A subject: an agent name, `type:id`, or the full entity.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Subject {
    /// `reporter` or `user:alice`.
    Short(String),
    /// `{type, id, properties}`.
    Full(Entity),
}

/// An action: its name or the full object.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ActionSpec {
    /// `read`.
    Short(String),
    /// `{name, properties}`.
    Full(RequestAction),
}

/// A resource: `type:id` or the full entity.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ResourceSpec {
    /// `reports:q3`.
    Short(String),
    /// `{type, id, properties}`.
    Full(Entity),
}

/// The expected outcome: `decision` (with `reasons` and `context`) for a
/// single question, `decisions` for a batch case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `allow` or `deny`.
    #[serde(default)]
    pub decision: Option<Verdict>,
    /// The exact reasons, when given.
    #[serde(default)]
    pub reasons: Option<Vec<String>>,
    /// The exact context, when given.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    /// A batch case's answers, one per evaluation answered.
    #[serde(default)]
    pub decisions: Option<Vec<ExpectedItem>>,
}

/// One expected answer of a batch: `allow`, `deny`, or
/// `{decision, reasons, context}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedItem {
    /// `allow` or `deny`.
    pub decision: Verdict,
    /// The exact reasons, when given.
    pub reasons: Option<Vec<String>>,
    /// The exact context, when given.
    pub context: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullItem {
    decision: Verdict,
    #[serde(default)]
    reasons: Option<Vec<String>>,
    #[serde(default)]
    context: Option<Map<String, Value>>,
}

impl<'de> Deserialize<'de> for ExpectedItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor, value::MapAccessDeserializer};

        struct Shapes;

        impl<'de> Visitor<'de> for Shapes {
            type Value = ExpectedItem;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`allow`, `deny` or {decision, reasons, context}")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ExpectedItem, E> {
                let decision = match text {
                    "allow" => Verdict::Allow,
                    "deny" => Verdict::Deny,
                    other => return Err(E::unknown_variant(other, &["allow", "deny"])),
                };
                Ok(ExpectedItem {
                    decision,
                    reasons: None,
                    context: None,
                })
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<ExpectedItem, M::Error> {
                let full = FullItem::deserialize(MapAccessDeserializer::new(map))?;
                Ok(ExpectedItem {
                    decision: full.decision,
                    reasons: full.reasons,
                    context: full.context,
                })
            }
        }

        deserializer.deserialize_any(Shapes)
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

impl Verdict {
    fn of(decision: bool) -> Self {
        if decision {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        })
    }
}

/// What one case gave.
///
/// For a batch case, `expected` and `got` sum the decisions up (allow when
/// every one is allow; with `permit_on_first_permit`, when any is),
/// `reasons` and `context` are empty, and `evaluations` has each
/// evaluation's result; `differences` name the evaluation they are about
/// (`evaluations[1] decision: …`, counting from 0).
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Whether everything expected came out.
    pub passed: bool,
    /// The expected decision.
    pub expected: Verdict,
    /// The decision made.
    pub got: Verdict,
    /// The reasons given.
    pub reasons: Vec<String>,
    /// The context returned.
    pub context: Map<String, Value>,
    /// One line per difference from what was expected.
    pub differences: Vec<String>,
    /// A batch case's semantic (AuthZEN's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semantic: Option<String>,
    /// A batch case's evaluations: each one expected or answered, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluations: Option<Vec<EvaluationResult>>,
}

/// What one evaluation of a batch case gave.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationResult {
    /// Its position in the case's `evaluations`, from 0.
    pub index: usize,
    /// Whether it came out as expected.
    pub passed: bool,
    /// The expected decision; `None` when the call was expected to stop
    /// before this evaluation.
    pub expected: Option<Verdict>,
    /// The decision made; `None` when the call stopped before it.
    pub got: Option<Verdict>,
    /// The reasons given.
    pub reasons: Vec<String>,
    /// The context returned.
    pub context: Map<String, Value>,
    /// Why the server refused this evaluation's request (answered as a
    /// deny), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CaseResult {
    /// The expected decision as printed: `allow`, or a batch's decisions
    /// (`allow,deny`).
    pub fn expected_text(&self) -> String {
        match &self.evaluations {
            None => self.expected.to_string(),
            Some(items) => verdicts(items.iter().map(|item| item.expected)),
        }
    }

    /// The decision made as printed: `allow`, or a batch's decisions.
    pub fn got_text(&self) -> String {
        match &self.evaluations {
            None => self.got.to_string(),
            Some(items) => verdicts(items.iter().map(|item| item.got)),
        }
    }

    /// What the policy said, one line per decision that gave reasons (a
    /// batch's prefixed with its evaluation).
    pub fn said(&self) -> Vec<String> {
        match &self.evaluations {
            None if self.reasons.is_empty() => Vec::new(),
            None => vec![self.reasons.join("; ")],
            Some(items) => items
                .iter()
                .filter(|item| !item.reasons.is_empty())
                .map(|item| format!("evaluations[{}]: {}", item.index, item.reasons.join("; ")))
                .collect(),
        }
    }
}

fn verdicts(all: impl Iterator<Item = Option<Verdict>>) -> String {
    let all: Vec<String> = all.flatten().map(|v| v.to_string()).collect();
    match all.is_empty() {
        true => String::from("-"),
        false => all.join(","),
    }
}

/// Reads a cases file, and checks every case's requests and expectations.
pub fn parse(text: &str) -> Result<Suite, CasesError> {
    if text.len() > MAX_CASES_BYTES {
        return Err(CasesError::Invalid(format!(
            "the cases file is over {} MiB",
            MAX_CASES_BYTES >> 20
        )));
    }
    let suite: Suite = serde_yaml::from_str(text)
        .map_err(|err| CasesError::Invalid(format!("invalid cases file: {err}")))?;
    if suite.cases.is_empty() {
        return Err(CasesError::Invalid("the cases file has no cases".into()));
    }
    if suite.cases.len() > MAX_CASES {
        return Err(CasesError::Invalid(format!(
            "the cases file has {} cases; at most {MAX_CASES} are run",
            suite.cases.len()
        )));
    }
    for case in &suite.cases {
        plan(case)?;
    }
    Ok(suite)
}

/// What a case asks and expects, checked.
enum Plan {
    /// One question.
    One {
        request: Box<AuthorizeRequest>,
        expect: ExpectedItem,
    },
    /// One call of many.
    Batch {
        items: Vec<Item>,
        semantic: Semantic,
        semantic_name: String,
        expect: Vec<ExpectedItem>,
    },
}

fn plan(case: &Case) -> Result<Plan, CasesError> {
    plan_of(case).map_err(|err| CasesError::Invalid(format!("case `{}`: {err}", case.name)))
}

fn plan_of(case: &Case) -> Result<Plan, String> {
    let expect = &case.expect;
    let Some(evaluations) = &case.evaluations else {
        if case.semantic.is_some() {
            return Err("`semantic` is for a case with `evaluations`".into());
        }
        if expect.decisions.is_some() {
            return Err("`expect.decisions` is for a case with `evaluations`; \
                 expect one `decision` of a single question"
                .into());
        }
        let decision = expect
            .decision
            .ok_or("`expect` needs `decision: allow` or `decision: deny`")?;
        let single = Evaluation::default();
        let request = request_of(case, &single, "")?;
        check_request(&request)?;
        return Ok(Plan::One {
            request: Box::new(request),
            expect: ExpectedItem {
                decision,
                reasons: expect.reasons.clone(),
                context: expect.context.clone(),
            },
        });
    };
    if evaluations.is_empty() {
        return Err("`evaluations` is empty".into());
    }
    if evaluations.len() > MAX_EVALUATIONS {
        return Err(format!(
            "{} evaluations; a case has at most {MAX_EVALUATIONS}, the server's limit per call",
            evaluations.len()
        ));
    }
    let semantic_name = case.semantic.as_deref().unwrap_or("execute_all");
    let semantic = Semantic::from_authzen(semantic_name).ok_or_else(|| {
        format!(
            "semantic `{semantic_name}` is not execute_all, deny_on_first_deny or \
             permit_on_first_permit"
        )
    })?;
    if expect.decision.is_some() || expect.reasons.is_some() || expect.context.is_some() {
        return Err(
            "a case with `evaluations` expects `decisions: [...]`, one per \
             evaluation answered (each `allow`, `deny` or {decision, reasons, context})"
                .into(),
        );
    }
    let expected = expect.decisions.clone().ok_or(
        "a case with `evaluations` expects `decisions: [...]`, one per evaluation answered",
    )?;
    let (asked, answers) = (evaluations.len(), expected.len());
    if semantic == Semantic::ExecuteAll && answers != asked {
        return Err(format!(
            "`expect.decisions` has {answers} for {asked} evaluations; with execute_all \
             every evaluation is answered"
        ));
    }
    if answers == 0 || answers > asked {
        return Err(format!(
            "`expect.decisions` has {answers} for {asked} evaluations; expect 1 to {asked}, \
             one per evaluation answered"
        ));
    }
    let mut items = Vec::with_capacity(asked);
    for (index, evaluation) in evaluations.iter().enumerate() {
        let label = format!("evaluations[{index}]: ");
        let request = request_of(case, evaluation, &label)?;
        check_request(&request).map_err(|err| format!("{label}{err}"))?;
        items.push(Ok(request));
    }
    Ok(Plan::Batch {
        items,
        semantic,
        semantic_name: semantic_name.to_string(),
        expect: expected,
    })
}

/// The request of `evaluation`, what it leaves out taken from `case`.
fn request_of(
    case: &Case,
    evaluation: &Evaluation,
    label: &str,
) -> Result<AuthorizeRequest, String> {
    let split = |text: &str, what: &str| {
        Entity::parse_qualified(text)
            .ok_or_else(|| format!("{label}{what} `{text}` is not `type:id`"))
    };
    let missing = |what: &str| match case.evaluations {
        None => format!("no {what}: a case asks subject, action and resource, or `evaluations`"),
        Some(_) => format!("{label}no {what}, in the evaluation or the case"),
    };
    let subject = match evaluation.subject.as_ref().or(case.subject.as_ref()) {
        Some(Subject::Short(text)) if text.contains(':') => split(text, "subject")?,
        Some(Subject::Short(name)) => Entity::new("agent", name.as_str()),
        Some(Subject::Full(entity)) => entity.clone(),
        None => return Err(missing("subject")),
    };
    let action = match evaluation.action.as_ref().or(case.action.as_ref()) {
        Some(ActionSpec::Short(name)) => RequestAction::new(name.as_str()),
        Some(ActionSpec::Full(action)) => action.clone(),
        None => return Err(missing("action")),
    };
    let resource = match evaluation.resource.as_ref().or(case.resource.as_ref()) {
        Some(ResourceSpec::Short(text)) => split(text, "resource")?,
        Some(ResourceSpec::Full(entity)) => entity.clone(),
        None => return Err(missing("resource")),
    };
    Ok(AuthorizeRequest {
        subject,
        action,
        resource,
        context: evaluation.context.clone().or_else(|| case.context.clone()),
    })
}

/// Runs cases against policy components: the component compiled once per
/// run, each case in a fresh tenant.
pub struct Runner {
    parts: Parts,
    sandbox: Arc<Sandbox>,
    /// Batch cases wait on the server's async batch pipeline here.
    runtime: tokio::runtime::Runtime,
}

impl Runner {
    /// A runner with the server's default sandbox limits and an in-memory
    /// store that is gone when the runner is.
    pub fn new() -> Result<Self, CasesError> {
        Self::with_sandbox(SandboxConfig::default())
    }

    /// A runner whose sandbox has `config` (such as a `cache_dir` that
    /// keeps compiled code across runs), with an in-memory store.
    pub fn with_sandbox(config: SandboxConfig) -> Result<Self, CasesError> {
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().map_err(setup)?);
        let sandbox = Arc::new(Sandbox::new(config).map_err(setup)?);
        let audit = Arc::new(AuditLog::new(Arc::clone(&store)).map_err(setup)?);
        // Every decision runs with the tenant's full `timeout_ms` in the
        // one evaluation thread, as `decide_now` runs a single question,
        // and never runs twice (as a slow inline one would).
        let schedule = Schedule {
            inline: false,
            refusal_delay: Duration::ZERO,
        };
        let parts = Parts::assemble(
            store,
            Arc::clone(&sandbox),
            audit,
            Arc::new(SystemClock),
            schedule,
            1,
        )
        .map_err(setup)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| CasesError::Setup(format!("cannot start the async runtime: {err}")))?;
        Ok(Runner {
            parts,
            sandbox,
            runtime,
        })
    }

    /// The sandbox's counters: `compiled` is how many modules were
    /// compiled (one per run of a component not compiled before).
    pub fn stats(&self) -> SandboxStats {
        self.sandbox.stats()
    }

    /// Decides every case of `suite` with `module` and compares.
    pub fn run(&self, module: &[u8], suite: &Suite) -> Result<Vec<CaseResult>, CasesError> {
        let plans = suite
            .cases
            .iter()
            .map(plan)
            .collect::<Result<Vec<_>, _>>()?;
        self.install(module, suite.config.as_ref())?;
        suite
            .cases
            .iter()
            .zip(plans)
            .enumerate()
            .map(|(index, (case, plan))| self.run_case(index, suite, case, plan))
            .collect()
    }

    /// Uploads `module` as the global policy under test, compiling it
    /// (unless this runner or the sandbox's cache has it already), and
    /// configures it.
    fn install(&self, module: &[u8], config: Option<&Value>) -> Result<(), CasesError> {
        let refused = |err: &dyn std::fmt::Display| {
            CasesError::Setup(format!("the policy was refused: {err}"))
        };
        // A tenant's own upload limit, which the server applies: the
        // global scope has none of its own.
        let limit = TenantSettings::default().max_module_bytes;
        if module.len() as u64 > limit {
            return Err(refused(&LoadError::TooLarge {
                size: module.len(),
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            }));
        }
        let registry = &self.parts.registry;
        let upload =
            || registry.upload_policy(&ScopeId::Global, POLICY_UNDER_TEST, module, true, ACTOR);
        match upload() {
            Ok(_) => {}
            // A runner used for many runs starts its policy over when its
            // versions run out (no tenant names it between runs).
            Err(RegistryError::QuotaExceeded { .. }) => {
                registry
                    .delete_policy(&ScopeId::Global, POLICY_UNDER_TEST, ACTOR)
                    .map_err(setup)?;
                upload().map_err(|err| refused(&err))?;
            }
            Err(err) => return Err(refused(&err)),
        }
        // Also when there is none: a config of an earlier run must not stay.
        let config = config.cloned().unwrap_or(Value::Null);
        registry
            .configure_policy(&ScopeId::Global, POLICY_UNDER_TEST, config, ACTOR)
            .map_err(|err| CasesError::Invalid(format!("config: {err}")))?;
        Ok(())
    }

    /// Runs one case in a tenant of its own, deleted afterwards whatever
    /// happened.
    fn run_case(
        &self,
        index: usize,
        suite: &Suite,
        case: &Case,
        plan: Plan,
    ) -> Result<CaseResult, CasesError> {
        let mut settings = Map::new();
        settings.insert("default_policy".into(), Value::from(POLICY_UNDER_TEST));
        let tenant = self
            .parts
            .registry
            .create_tenant(
                CreateTenant {
                    slug: format!("case-{index}"),
                    name: format!("case {index}"),
                    kind: TenantKind::Organization,
                    settings: Some(settings),
                },
                ACTOR,
            )
            .map_err(setup)?;
        let result = self.decide_case(&tenant.id, suite, case, plan);
        // Each case's tenant is thrown away, so the next starts clean.
        let deleted = self.parts.registry.delete_tenant(&tenant.id, ACTOR);
        let result = result?;
        deleted.map_err(setup)?;
        Ok(result)
    }

    fn decide_case(
        &self,
        tenant: &str,
        suite: &Suite,
        case: &Case,
        plan: Plan,
    ) -> Result<CaseResult, CasesError> {
        let invalid = |err: String| CasesError::Invalid(format!("case `{}`: {err}", case.name));
        let scope = ScopeId::Tenant(tenant.to_string());
        let mut agents = BTreeMap::new();
        for agent in suite.agents.iter().chain(&case.agents) {
            agents.insert(agent.name.as_str(), agent);
        }
        for (name, agent) in agents {
            let body = PutAgent {
                kind: agent.kind.clone(),
                status: agent.status,
                attributes: agent.attributes.clone(),
                permissions: agent.permissions.clone(),
                policy: agent.policy.clone(),
                budgets: Default::default(),
            };
            self.parts
                .registry
                .put_agent(&scope, name, body, ACTOR)
                .map_err(|err| invalid(format!("agent `{name}`: {err}")))?;
        }
        for (key, value) in suite.data.iter().chain(&case.data) {
            self.parts
                .registry
                .put_data(&scope, key, value.clone(), ACTOR)
                .map_err(|err| invalid(format!("data `{key}`: {err}")))?;
        }
        match plan {
            Plan::One { request, expect } => {
                let outcome = self
                    .parts
                    .decider
                    .decide_now(tenant, ACTOR, &request)
                    .map_err(setup)?;
                Ok(single_result(case, &expect, outcome.response))
            }
            Plan::Batch {
                items,
                semantic,
                semantic_name,
                expect,
            } => {
                let decider = &self.parts.decider;
                let answers = self
                    .runtime
                    .block_on(decider.decide_call(tenant, ACTOR, items, semantic))
                    .map_err(setup)?;
                Ok(batch_result(
                    case,
                    semantic,
                    semantic_name,
                    &expect,
                    answers,
                ))
            }
        }
    }
}

fn single_result(case: &Case, expect: &ExpectedItem, answer: DecisionResponse) -> CaseResult {
    let got = Verdict::of(answer.decision);
    let mut differences = Vec::new();
    compare(
        expect,
        got,
        &answer.reasons,
        &answer.context,
        "",
        &mut differences,
    );
    CaseResult {
        name: case.name.clone(),
        passed: differences.is_empty(),
        expected: expect.decision,
        got,
        reasons: answer.reasons,
        context: answer.context,
        differences,
        semantic: None,
        evaluations: None,
    }
}

fn batch_result(
    case: &Case,
    semantic: Semantic,
    semantic_name: String,
    expect: &[ExpectedItem],
    answers: Vec<ItemAnswer>,
) -> CaseResult {
    let mut differences = Vec::new();
    let mut evaluations = Vec::new();
    let (expected_count, answered) = (expect.len(), answers.len());
    let mut answers = answers.into_iter();
    for index in 0..expected_count.max(answered) {
        let label = format!("evaluations[{index}] ");
        let before = differences.len();
        let expected = expect.get(index);
        let (got, reasons, context, error) = match answers.next() {
            None => (None, Vec::new(), Map::new(), None),
            Some(Ok(answer)) => (
                Some(Verdict::of(answer.decision)),
                answer.reasons,
                answer.context,
                None,
            ),
            // As `/access/v1/evaluations` answers a refused request.
            Some(Err(message)) => (Some(Verdict::Deny), Vec::new(), Map::new(), Some(message)),
        };
        match (expected, got) {
            (Some(expected), Some(got)) => {
                compare(expected, got, &reasons, &context, &label, &mut differences);
            }
            (Some(expected), None) => differences.push(format!(
                "{label}expected {}, but the call stopped after evaluations[{}] ({semantic_name})",
                expected.decision,
                answered.saturating_sub(1)
            )),
            (None, Some(got)) => differences.push(format!(
                "{label}answered {got}, but the call was expected to stop after evaluations[{}] \
                 ({semantic_name})",
                expected_count.saturating_sub(1)
            )),
            (None, None) => {}
        }
        if let Some(message) = &error {
            differences.push(format!("{label}was refused: {message}"));
        }
        evaluations.push(EvaluationResult {
            index,
            passed: differences.len() == before,
            expected: expected.map(|e| e.decision),
            got,
            reasons,
            context,
            error,
        });
    }
    let sum = |all: Vec<Verdict>| match semantic {
        Semantic::PermitOnFirstPermit => Verdict::of(all.contains(&Verdict::Allow)),
        _ => Verdict::of(all.iter().all(|v| *v == Verdict::Allow)),
    };
    CaseResult {
        name: case.name.clone(),
        passed: differences.is_empty(),
        expected: sum(expect.iter().map(|e| e.decision).collect()),
        got: sum(evaluations.iter().filter_map(|e| e.got).collect()),
        reasons: Vec::new(),
        context: Map::new(),
        differences,
        semantic: Some(semantic_name),
        evaluations: Some(evaluations),
    }
}

/// Adds to `differences` what of `expect` did not come out, each line
/// starting with `label`.
fn compare(
    expect: &ExpectedItem,
    got: Verdict,
    reasons: &[String],
    context: &Map<String, Value>,
    label: &str,
    differences: &mut Vec<String>,
) {
    if got != expect.decision {
        differences.push(format!(
            "{label}decision: expected {}, got {got}",
            expect.decision
        ));
    }
    if let Some(expected) = &expect.reasons
        && expected.as_slice() != reasons
    {
        differences.push(format!(
            "{label}reasons: expected {}, got {}",
            Value::from(expected.clone()),
            Value::from(reasons.to_vec())
        ));
    }
    if let Some(expected) = &expect.context
        && expected != context
    {
        differences.push(format!(
            "{label}context: expected {}, got {}",
            Value::Object(expected.clone()),
            Value::Object(context.clone())
        ));
    }
}
