//! `ward store check`: the offline look at a stopped server's store. It
//! reads every record whose shape Ward knows, sets aside the ones that do
//! not decode (as the server does when it meets them), lists what is set
//! aside, and removes set-aside records on request.
//!
//! `ward store migrate`: brings a shared store's schema up to date, or
//! copies an embedded installation into a shared store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use ward::store::{PostgresStore, SledStore, set_aside};

/// The store, with the server stopped.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Set aside unreadable records and list every record set aside.
    Check(CheckStoreArgs),
    /// Migrate a shared store's schema (`--store`), or copy an embedded
    /// installation into one (`--from DIR --to URL`).
    Migrate(MigrateArgs),
}

/// Arguments of `ward store migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The shared store whose schema to bring up to date.
    #[arg(long, env = "WARD_STORE_URL", conflicts_with_all = ["from", "to"])]
    store: Option<String>,
    /// The data directory of an embedded installation to copy (its
    /// server stopped).
    #[arg(long, requires = "to")]
    from: Option<PathBuf>,
    /// The shared store to copy it into (`postgres://…`), which must hold
    /// no tenant yet.
    #[arg(long, requires = "from")]
    to: Option<String>,
}

/// Arguments of `ward store check`.
#[derive(Debug, Args)]
pub struct CheckStoreArgs {
    /// The server's data directory [default: ./ward-data].
    #[arg(long, default_value = "./ward-data")]
    data_dir: PathBuf,
    /// Remove the record set aside with this id (repeatable).
    #[arg(long)]
    remove: Vec<String>,
    /// Remove every record set aside.
    #[arg(long, conflicts_with = "remove")]
    remove_all: bool,
    /// Print each record's bytes (hex) too.
    #[arg(long)]
    show: bool,
    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `ward store`.
pub fn store(command: StoreCommand) -> anyhow::Result<ExitCode> {
    match command {
        StoreCommand::Check(args) => check(args),
        StoreCommand::Migrate(args) => migrate(args),
    }
}

fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    if let (Some(from), Some(to)) = (&args.from, &args.to) {
        let dir = from.join("db");
        if !dir.is_dir() {
            anyhow::bail!("no store in {} (is --from right?)", from.display());
        }
        let source = SledStore::open(&dir).with_context(|| {
            format!(
                "cannot open the store in {} (stop the server that has it open first)",
                dir.display()
            )
        })?;
        // Entries the journal holds that a crash kept out of the store
        // go in first.
        let journal = from.join("audit.journal");
        if journal.exists() {
            ward::audit::journal::Journal::open(&journal, &source)?;
        }
        let target = PostgresStore::open(to)?;
        let report = ward::store::copy::copy_store(&source, &target)?;
        println!(
            "copied {} tenant(s) from {} to {}; records by kind (audit: entries), all verified:",
            report.tenants,
            from.display(),
            ward::store::postgres::redacted(to)
        );
        for (kind, count) in &report.copied {
            println!("  {kind}\t{count}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(url) = &args.store else {
        anyhow::bail!(
            "name the store: --store postgres://… (or WARD_STORE_URL), or --from DIR --to URL"
        );
    };
    let store = PostgresStore::connect(url)?;
    let applied = store.migrate()?;
    let version = store.schema_version()?;
    if applied.is_empty() {
        println!("schema at version {version}; nothing to migrate");
    } else {
        println!("schema migrated to version {version} (applied {applied:?})");
    }
    Ok(ExitCode::SUCCESS)
}

fn check(args: CheckStoreArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data_dir.join("db");
    if !dir.is_dir() {
        anyhow::bail!(
            "no store in {} (is --data-dir right?)",
            args.data_dir.display()
        );
    }
    let store = SledStore::open(&dir).with_context(|| {
        format!(
            "cannot open the store in {} (stop the server that has it open first)",
            dir.display()
        )
    })?;
    let found = ward::registry::check_records(&store)?;
    let mut removed = 0;
    let targets: Vec<String> = if args.remove_all {
        set_aside::list(&store)?
            .into_iter()
            .map(|aside| aside.id)
            .collect()
    } else {
        args.remove.clone()
    };
    for id in &targets {
        if set_aside::remove(&store, id)? {
            removed += 1;
        } else {
            anyhow::bail!("no record is set aside with id `{id}`");
        }
    }
    let listed = set_aside::list(&store)?;
    if args.json {
        for aside in &listed {
            let mut line = serde_json::to_value(aside)?;
            if !args.show
                && let Some(fields) = line.as_object_mut()
            {
                fields.remove("bytes_hex");
            }
            println!("{line}");
        }
    } else {
        println!(
            "{found} unreadable record(s) newly set aside; {removed} removed; {} set aside",
            listed.len()
        );
        for aside in &listed {
            println!(
                "{}\t{} bytes\t{}",
                aside.id,
                aside.bytes_hex.len() / 2,
                aside.reason
            );
            if args.show {
                println!("\t{}", aside.bytes_hex);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
