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
//! ```
//!
//! Every case runs in a tenant of its own whose `default_policy` is the
//! policy under test, so cases never see each other's agents or data, and
//! an agent bound to another policy (such as the builtin `permissions`)
//! is decided by that one, as on the server.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ward_types::{
    AgentStatus, AuthorizeRequest, CreateTenant, Entity, Permission, PutAgent, RequestAction,
    TenantKind, UpdateTenant,
};

use ward::audit::AuditLog;
use ward::registry::ScopeId;
use ward::sandbox::{Sandbox, SandboxConfig};
use ward::server::Parts;
use ward::store::{SledStore, Store};

/// Largest cases file read.
pub const MAX_CASES_BYTES: usize = 4 << 20;
/// Most cases in one file.
pub const MAX_CASES: usize = 10_000;
/// The name the policy under test is uploaded as.
pub const POLICY_UNDER_TEST: &str = "under-test";

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

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What it checks.
    pub name: String,
    /// Who asks.
    pub subject: Subject,
    /// What for.
    pub action: ActionSpec,
    /// On what.
    pub resource: ResourceSpec,
    /// Anything else.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    /// Agents of this case only (replacing same-named shared ones).
    #[serde(default)]
    pub agents: Vec<CaseAgent>,
    /// Data documents of this case only.
    #[serde(default)]
    pub data: Map<String, Value>,
    /// What should come out.
    pub expect: Expect,
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

/// The expected outcome.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `allow` or `deny`.
    pub decision: Verdict,
    /// The exact reasons, when given.
    #[serde(default)]
    pub reasons: Option<Vec<String>>,
    /// The exact context, when given.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
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
}

/// Reads a cases file.
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
    Ok(suite)
}

fn request_of(case: &Case) -> Result<AuthorizeRequest, String> {
    let split = |text: &str, what: &str| {
        Entity::parse_qualified(text).ok_or_else(|| format!("{what} `{text}` is not `type:id`"))
    };
    let subject = match &case.subject {
        Subject::Short(text) if text.contains(':') => split(text, "subject")?,
        Subject::Short(name) => Entity::new("agent", name.as_str()),
        Subject::Full(entity) => entity.clone(),
    };
    let action = match &case.action {
        ActionSpec::Short(name) => RequestAction::new(name.as_str()),
        ActionSpec::Full(action) => action.clone(),
    };
    let resource = match &case.resource {
        ResourceSpec::Short(text) => split(text, "resource")?,
        ResourceSpec::Full(entity) => entity.clone(),
    };
    Ok(AuthorizeRequest {
        subject,
        action,
        resource,
        context: case.context.clone(),
    })
}

/// Runs cases against policy components, each case in a fresh tenant.
pub struct Runner {
    parts: Parts,
}

impl Runner {
    /// A runner with the server's default sandbox limits and an in-memory
    /// store that is gone when the runner is.
    pub fn new() -> Result<Self, CasesError> {
        let setup = |err: &dyn std::fmt::Display| CasesError::Setup(err.to_string());
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().map_err(|e| setup(&e))?);
        let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).map_err(|e| setup(&e))?);
        let audit = Arc::new(AuditLog::new(Arc::clone(&store)).map_err(|e| setup(&e))?);
        let parts = Parts::local(store, sandbox, audit).map_err(|e| setup(&e))?;
        Ok(Runner { parts })
    }

    /// Decides every case of `suite` with `module` and compares.
    pub fn run(&self, module: &[u8], suite: &Suite) -> Result<Vec<CaseResult>, CasesError> {
        suite
            .cases
            .iter()
            .enumerate()
            .map(|(index, case)| self.run_case(index, module, suite, case))
            .collect()
    }

    fn run_case(
        &self,
        index: usize,
        module: &[u8],
        suite: &Suite,
        case: &Case,
    ) -> Result<CaseResult, CasesError> {
        let invalid = |err: String| CasesError::Invalid(format!("case `{}`: {err}", case.name));
        let request = request_of(case).map_err(invalid)?;
        let tenant = self
            .parts
            .registry
            .create_tenant(
                CreateTenant {
                    slug: format!("case-{index}"),
                    name: format!("case {index}"),
                    kind: TenantKind::Organization,
                    settings: None,
                },
                "cases",
            )
            .map_err(|err| CasesError::Setup(err.to_string()))?;
        let scope = ScopeId::Tenant(tenant.id.clone());
        self.parts
            .registry
            .upload_policy(&scope, POLICY_UNDER_TEST, module, true, "cases")
            .map_err(|err| CasesError::Setup(format!("the policy was refused: {err}")))?;
        // A default policy must exist when it is set, so it is set once
        // the policy is uploaded.
        let mut settings = Map::new();
        settings.insert("default_policy".into(), Value::from(POLICY_UNDER_TEST));
        self.parts
            .registry
            .update_tenant(
                &tenant.id,
                UpdateTenant {
                    name: None,
                    settings: Some(settings),
                },
                "cases",
            )
            .map_err(|err| CasesError::Setup(err.to_string()))?;
        if let Some(config) = &suite.config {
            self.parts
                .registry
                .configure_policy(&scope, POLICY_UNDER_TEST, config.clone(), "cases")
                .map_err(|err| CasesError::Invalid(format!("config: {err}")))?;
        }
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
                .put_agent(&scope, name, body, "cases")
                .map_err(|err| invalid(format!("agent `{name}`: {err}")))?;
        }
        for (key, value) in suite.data.iter().chain(&case.data) {
            self.parts
                .registry
                .put_data(&scope, key, value.clone(), "cases")
                .map_err(|err| invalid(format!("data `{key}`: {err}")))?;
        }
        let outcome = self
            .parts
            .decider
            .decide_now(&tenant.id, "cases", &request)
            .map_err(|err| CasesError::Setup(err.to_string()))?;
        let answer = outcome.response;
        let got = Verdict::of(answer.decision);
        let mut differences = Vec::new();
        if got != case.expect.decision {
            differences.push(format!(
                "decision: expected {}, got {got}",
                case.expect.decision
            ));
        }
        if let Some(reasons) = &case.expect.reasons
            && *reasons != answer.reasons
        {
            differences.push(format!(
                "reasons: expected {}, got {}",
                Value::from(reasons.clone()),
                Value::from(answer.reasons.clone())
            ));
        }
        if let Some(context) = &case.expect.context
            && *context != answer.context
        {
            differences.push(format!(
                "context: expected {}, got {}",
                Value::Object(context.clone()),
                Value::Object(answer.context.clone())
            ));
        }
        // Each case's tenant is thrown away, so the next starts clean.
        self.parts
            .registry
            .delete_tenant(&tenant.id, "cases")
            .map_err(|err| CasesError::Setup(err.to_string()))?;
        Ok(CaseResult {
            name: case.name.clone(),
            passed: differences.is_empty(),
            expected: case.expect.decision,
            got,
            reasons: answer.reasons,
            context: answer.context,
            differences,
        })
    }
}
