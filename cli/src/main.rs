//! The `ward` command: the server, and a client of its HTTP API for
//! operators and policy authors.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use ward::config::{Config, LogFormat};
use ward::server::Ward;

use cli::{
    AgentCommand, AuditCommand, DataCommand, KeyCommand, PolicyCommand, StoreCommand, TenantCommand,
};

#[derive(Parser)]
#[command(name = "ward", version, about = "Multi-tenant WebAssembly policy host")]
struct Cli {
    #[command(flatten)]
    remote: cli::Remote,
    /// How to log: `text`, or `json` for one JSON object per line
    /// [default: the config's `log_format`, else text].
    #[arg(long, global = true, env = "WARD_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on [default: 127.0.0.1:7373].
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Where data lives [default: ./ward-data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML config file (flags win over it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A shared store for several replicas (`postgres://…`) instead
        /// of the embedded one [config: store.url].
        #[arg(long, env = "WARD_STORE_URL")]
        store: Option<String>,
    },
    /// Tenants (operator token).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Agents.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Policies: scaffold, build, test locally, push, manage versions.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Data documents.
    #[command(subcommand)]
    Data(DataCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// This month's decisions and the tenant's limits.
    Usage,
    /// Ask for one decision. Exit code 0: allowed, 1: denied, 2: error.
    Check(cli::CheckArgs),
    /// The server's store, offline (stop the server first).
    #[command(subcommand)]
    Store(StoreCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve { .. } | Command::Store(_));
    // The config file's log format counts when the flag is absent; a
    // config that cannot be read is reported by `serve` itself.
    let configured = match &cli.command {
        Command::Serve {
            config: Some(path), ..
        } => Config::from_file(path)
            .map(|c| c.log_format)
            .unwrap_or_default(),
        _ => LogFormat::default(),
    };
    init_logs(serving, cli.log_format.unwrap_or(configured));
    let result = match cli.command {
        Command::Serve {
            listen,
            data_dir,
            config,
            store,
        } => serve(listen, data_dir, config, store).map(|()| ExitCode::SUCCESS),
        Command::Tenant(command) => cli::run(&cli.remote, |c| cli::tenant(c, command)),
        Command::Key(command) => cli::run(&cli.remote, |c| cli::key(c, command)),
        Command::Agent(command) => cli::run(&cli.remote, |c| cli::agent(c, command)),
        Command::Policy(command) => cli::policy(&cli.remote, command),
        Command::Data(command) => cli::run(&cli.remote, |c| cli::data(c, command)),
        Command::Audit(command) => cli::run(&cli.remote, |c| cli::audit(c, command)),
        Command::Usage => cli::run(&cli.remote, cli::usage),
        Command::Check(args) => cli::run(&cli.remote, |c| cli::check(c, args)),
        Command::Store(command) => cli::store(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", cli::one_line(&err));
            cli::EXIT_ERROR.into()
        }
    }
}

/// Logs to stderr: colour only on a terminal (and never with `NO_COLOR`),
/// JSON lines when asked.
fn init_logs(serving: bool, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // The client commands print their own output; only the server
        // logs at info.
        EnvFilter::new(if serving { "info" } else { "warn" })
    });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().with_current_span(true).init(),
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            logs.with_ansi(colour).init();
        }
    }
}

fn serve(
    listen: Option<std::net::SocketAddr>,
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    store: Option<String>,
) -> anyhow::Result<()> {
    let mut config = match &config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    let config_path = config.path.clone();
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(data_dir) = data_dir {
        config.data_dir = data_dir;
    }
    if let Some(url) = store {
        config.store.url = Some(url);
    }
    let env_token = std::env::var("WARD_ADMIN_TOKEN").ok();
    let ward = Ward::open(&config, env_token.as_deref())?;
    if let Some(token) = &ward.generated_operator_token {
        // Shown once, here, and never again: only its hash is kept.
        eprintln!("\nOperator token (shown only now; keep it safe):\n\n    {token}\n");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let store = config
            .store
            .url
            .as_deref()
            .map_or_else(|| String::from("embedded"), ward::store::postgres::redacted);
        tracing::info!(listen = %listener.local_addr()?, data_dir = %config.data_dir.display(), %store, "ward is serving");
        if let Some(path) = config_path {
            tokio::spawn(reload_on_hangup(path, ward.tenant_reloader()));
        }
        ward.serve(listener, shutdown_signal()).await.context("server failed")
    });
    // Requests still blocked after the grace period are not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

/// On every `SIGHUP`, reads the config file again and puts its
/// `[tenants]` and `[[plans]]` in force; a file that does not read or
/// check leaves the running configuration as it was.
#[cfg(unix)]
async fn reload_on_hangup(path: PathBuf, reloader: ward::server::TenantReloader) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: the config file is read at start only");
        return;
    };
    while hangups.recv().await.is_some() {
        let (path, reloader) = (path.clone(), reloader.clone());
        let reloaded = tokio::task::spawn_blocking(move || {
            let config = Config::from_file(&path)?;
            anyhow::Ok(reloader.reload(&config)?)
        })
        .await;
        match reloaded {
            Ok(Ok(changes)) if changes.is_empty() => {
                tracing::info!("config reloaded: tenants and plans unchanged");
            }
            Ok(Ok(changes)) => {
                tracing::info!(changes = %changes.join("; "), "config reloaded: tenants and plans");
            }
            Ok(Err(err)) => {
                tracing::error!(err = %format!("{err:#}"), "config not reloaded: keeping the running one");
            }
            Err(err) => tracing::error!(%err, "config reload failed"),
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_hangup(_path: PathBuf, _reloader: ward::server::TenantReloader) {}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
