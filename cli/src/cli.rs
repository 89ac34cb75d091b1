//! The client commands of `ward`: each is one or a few calls through the
//! Rust client SDK, printed as a table (or as JSON with `--json`).

mod lang;
mod manage;
mod output;
mod policy;
mod store;

use std::future::Future;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::Value;
use ward_client::Client;

pub use manage::{agent, audit, check, data, key, tenant, usage};
pub use policy::policy;
pub use store::{StoreCommand, store};

/// Exit code of a command that failed (a deny of `check` and a failed
/// `policy test` exit with 1).
pub const EXIT_ERROR: u8 = 2;

/// Where the server is and who is asking.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// The server's URL.
    #[arg(
        long,
        global = true,
        env = "WARD_URL",
        default_value = "http://127.0.0.1:7373"
    )]
    server: String,
    /// API key, operator token or JWT.
    #[arg(long, global = true, env = "WARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The tenant (id or slug) an operator acts on.
    #[arg(long, global = true, env = "WARD_TENANT")]
    tenant: Option<String>,
    /// Work on the global scope (operator): agents, policies, data, audit.
    #[arg(long, global = true)]
    global: bool,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// How long one request may take, in seconds [default: 30; 600 for
    /// `policy push`, which waits while the server compiles].
    #[arg(long, global = true)]
    timeout: Option<u64>,
}

impl Remote {
    /// The same, waiting `seconds` for each request unless told otherwise.
    pub fn patient(&self, seconds: u64) -> Remote {
        Remote {
            timeout: Some(self.timeout.unwrap_or(seconds)),
            ..self.clone()
        }
    }
}

/// What a command works with.
pub struct Ctx {
    client: Client,
    json: bool,
}

impl Ctx {
    fn new(remote: &Remote) -> anyhow::Result<Ctx> {
        let mut builder = Client::builder(&remote.server)
            .timeout(std::time::Duration::from_secs(remote.timeout.unwrap_or(30)));
        if let Some(token) = &remote.token {
            builder = builder.token(token.as_str());
        }
        let mut client = builder.build()?;
        if let Some(tenant) = remote.tenant.as_ref().filter(|_| !remote.global) {
            client = client.for_tenant(tenant)?;
        }
        // `--global` wins over a tenant set in the environment.
        if remote.global {
            client = client.global();
        }
        Ok(Ctx {
            client,
            json: remote.json,
        })
    }

    /// Prints `value` as JSON with `--json`, else as `human` says.
    fn show<T: serde::Serialize>(&self, value: &T, human: impl FnOnce(&T)) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            human(value);
        }
        Ok(())
    }

    /// Says what was done (nothing with `--json`: scripts read the exit code).
    fn done(&self, message: impl std::fmt::Display) {
        if !self.json {
            println!("{message}");
        }
    }
}

/// Runs one client command to completion.
pub fn run<F, Fut>(remote: &Remote, command: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = anyhow::Result<ExitCode>>,
{
    let ctx = Ctx::new(remote)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(command(ctx))
}

/// An error as one line: the server's code and message, or the chain of
/// causes.
pub fn one_line(err: &anyhow::Error) -> String {
    err.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// A JSON argument: inline text, `@path` for a file, or `-` for stdin.
fn json_arg(text: &str, what: &str) -> anyhow::Result<Value> {
    let text = match text {
        "-" => std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?,
        _ => match text.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {what} from `{path}`"))?,
            None => text.to_string(),
        },
    };
    serde_json::from_str(&text).with_context(|| format!("{what} is not valid JSON"))
}

/// A JSON object argument.
fn object_arg(text: &str, what: &str) -> anyhow::Result<serde_json::Map<String, Value>> {
    match json_arg(text, what)? {
        Value::Object(map) => Ok(map),
        _ => anyhow::bail!("{what} must be a JSON object"),
    }
}

/// Tenant commands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Short unique name: lowercase letters, digits and dashes.
        slug: String,
        /// Display name [default: the slug].
        #[arg(long)]
        name: Option<String>,
        /// `organization` or `personal`.
        #[arg(long, default_value = "organization")]
        kind: String,
        /// Settings to override, as JSON (`@file` or `-` for stdin).
        #[arg(long)]
        settings: Option<String>,
    },
    /// List tenants.
    List,
    /// Show one tenant with its effective settings.
    Get {
        /// Id or slug.
        tenant: String,
    },
    /// Rename a tenant or change its settings (a JSON merge patch).
    Update {
        /// Id or slug.
        tenant: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// Settings patch as JSON; `null` resets a field.
        #[arg(long)]
        settings: Option<String>,
        /// Put the tenant on this plan (its trial, if any, starting now).
        #[arg(long, conflicts_with = "no_plan")]
        plan: Option<String>,
        /// Take the tenant off its plan.
        #[arg(long)]
        no_plan: bool,
    },
    /// The plans the server's configuration defines.
    Plans,
    /// Suspend a tenant: its decisions become denies.
    Suspend {
        /// Id or slug.
        tenant: String,
    },
    /// Serve a suspended tenant again.
    Activate {
        /// Id or slug.
        tenant: String,
    },
    /// Delete a tenant and everything it owns.
    Delete {
        /// Id or slug.
        tenant: String,
    },
}

/// API key commands (of the caller's tenant, or of `--tenant`).
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key; its secret is printed once.
    Create {
        /// What the key is for.
        name: String,
        /// `admin` (manage the tenant) or `authorize` (decisions only).
        #[arg(long, default_value = "authorize")]
        role: String,
        /// Print only the secret (for `export WARD_TOKEN=$(…)`).
        #[arg(long)]
        secret_only: bool,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key at once.
    Revoke {
        /// The key's id.
        id: String,
    },
}

/// Agent commands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create or replace an agent.
    Put {
        /// The agent's name.
        name: String,
        /// Its type, such as `service` or `assistant`.
        #[arg(long = "type", default_value = "agent")]
        kind: String,
        /// A permission, `RESOURCE=ACTION,ACTION` (`reports:*=read,export`).
        #[arg(long = "permission", short = 'p')]
        permissions: Vec<String>,
        /// Attributes as a JSON object.
        #[arg(long)]
        attributes: Option<String>,
        /// The policy that decides for it.
        #[arg(long)]
        policy: Option<String>,
        /// Create it disabled: every decision is a deny.
        #[arg(long)]
        disabled: bool,
    },
    /// List the agents visible, own and inherited global ones, by name:
    /// all of them, or one page with `--limit` or `--cursor`.
    List {
        /// Only `active` or `disabled` agents.
        #[arg(long)]
        status: Option<String>,
        /// Only agents of this type.
        #[arg(long = "type")]
        kind: Option<String>,
        /// Page size, 1-1000; the next page's cursor is printed after it.
        #[arg(long)]
        limit: Option<u32>,
        /// Where a page starts: the cursor printed after the previous one.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one agent.
    Get {
        /// The agent's name.
        name: String,
    },
    /// Delete an agent.
    Delete {
        /// The agent's name.
        name: String,
    },
}

/// Data document commands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Store a document.
    Put {
        /// Its key.
        key: String,
        /// The JSON value, `@file`, or `-` for stdin.
        value: String,
    },
    /// Print a document.
    Get {
        /// Its key.
        key: String,
    },
    /// Delete a document.
    Delete {
        /// Its key.
        key: String,
    },
}

/// Audit commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the latest entries, then follow new ones as they come.
    Tail {
        /// How many entries to show first.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// Only this kind (`decision`, `agent_put`…).
        #[arg(long)]
        kind: Option<String>,
        /// Only decisions about this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Only `allow` or `deny` decisions.
        #[arg(long)]
        decision: Option<String>,
        /// Print and stop instead of following.
        #[arg(long)]
        no_follow: bool,
        /// How often to look for new entries, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
}

/// Policy commands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Scaffold a policy: an example policy and its cases.yaml, in Rust
    /// (a crate), JavaScript, TypeScript or Python.
    New {
        /// The policy's name.
        name: String,
        /// The language: rust, js, ts or python.
        #[arg(long, default_value = "rust")]
        lang: String,
        /// Where to create it [default: ./NAME].
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Path of the `ward-policy` SDK crate [default: this build's].
        #[arg(long)]
        sdk: Option<std::path::PathBuf>,
    },
    /// Build the policy in DIR into a component: a crate for wasm32-wasip2
    /// (release); JavaScript, TypeScript or Python with their toolchains,
    /// installed into Ward's cache on first use.
    Build {
        /// The policy's directory.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
    },
    /// Install the toolchains that build policies in these languages into
    /// Ward's cache now, so that later builds work offline.
    Setup {
        /// Languages: js, ts, python, or all.
        #[arg(long, value_delimiter = ',', default_value = "all")]
        lang: Vec<String>,
    },
    /// Evaluate test cases locally, in the same sandbox as the server.
    /// Without a component, the crate in --dir is built first.
    Test {
        /// The policy component.
        wasm: Option<std::path::PathBuf>,
        /// The cases (YAML) [default: cases.yaml in --dir].
        cases: Option<std::path::PathBuf>,
        /// The policy to build when no component is given.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
    },
    /// Upload a policy version (and activate it, unless --no-activate).
    Push {
        /// The policy's name.
        name: String,
        /// The component; without it the crate in --dir is built first.
        wasm: Option<std::path::PathBuf>,
        /// The policy to build when no component is given.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
        /// Stage the version without serving it.
        #[arg(long)]
        no_activate: bool,
    },
    /// List policies and their versions.
    List,
    /// Show one policy.
    Get {
        /// The policy's name.
        name: String,
    },
    /// Serve another version (rollback or roll forward).
    Activate {
        /// The policy's name.
        name: String,
        /// The version.
        version: u32,
    },
    /// Set the configuration passed to the policy (JSON, `@file`, `-`).
    Config {
        /// The policy's name.
        name: String,
        /// The configuration.
        config: String,
    },
    /// Delete a policy and all its versions.
    Delete {
        /// The policy's name.
        name: String,
    },
}

/// Arguments of `ward check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The subject: an agent name, or `type:id`.
    subject: String,
    /// The action.
    action: String,
    /// The resource, `type:id`.
    resource: String,
    /// Context as a JSON object.
    #[arg(long)]
    context: Option<String>,
    /// The subject's properties, as a JSON object.
    #[arg(long, value_name = "JSON")]
    subject_properties: Option<String>,
    /// The action's properties, as a JSON object.
    #[arg(long, value_name = "JSON")]
    action_properties: Option<String>,
    /// The resource's properties, as a JSON object.
    #[arg(long, value_name = "JSON")]
    resource_properties: Option<String>,
}
