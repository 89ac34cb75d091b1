//! The cost of one decision by a policy written in JavaScript and in
//! Python, each on a fresh instance per decision as the server runs them,
//! beside the builtin `permissions` policy (Rust), in one run.
//!
//! `cargo bench -j2 -p ward-cli --bench languages` (about 3 minutes; the
//! first run also installs the toolchains into `target/ward-cache` and
//! compiles each component optimised, 15–30 s each, kept in
//! `target/ward-cache/bench-compiled` for the next runs).
//!
//! 1. Builds `examples/approvals/js` and `examples/approvals/python` (the
//!    same rules) with the `ward` binary (`ward policy build --dir`).
//! 2. Criterion: one allowed request (`clerk` approves invoice 7 of 400
//!    under the limit of 1000 its tier reads through `data-get`) decided
//!    by each policy through `Sandbox::evaluate`, a fresh instance each
//!    time: with the default settings (group `languages`: on two cores or
//!    more, instances are made ahead and dropped by the sandbox's thread)
//!    and with `warm_instances = 0` (group `languages_inline`: every
//!    instance made and dropped on the deciding thread). A table follows:
//!    criterion's median (the p50) and mean per decision, each policy's
//!    ratio to the builtin in the same group, and the component's size.
//! 3. Single decisions timed one by one, outside criterion. Back to back
//!    with every instance made inline: p50 / p99, what the sandbox counts
//!    (making the instance and the call) against the wall time (the rest
//!    is dropping the instance), and minor page faults of the deciding
//!    thread. Paced (a pause between decisions, so that the sandbox's
//!    thread has made the next instance before it is needed): p50 with
//!    instances made inline and made ahead, and the share of decisions
//!    that finish within the 1–2 ms inline slice the server first gives
//!    each decision (`Slice::Inline`; the others are run again on a pool
//!    thread). Then the guest's peak linear memory, the copy-on-write
//!    memory images the pool maps (`/proc/self/maps`) and the process's
//!    peak RSS.
//!
//! Environment (all optional): `WARD_BENCH_JS` / `WARD_BENCH_PY` measure
//! another component of the same rules instead of building the examples;
//! `WARD_BENCH_PAGEMAP` (0 or 1), `WARD_BENCH_KEEP_KIB` and
//! `WARD_BENCH_TABLE_KIB` change the pool's `pagemap_scan`,
//! `memory_keep_resident` and `table_keep_resident` for this run;
//! `WARD_BENCH_BREAKDOWN=0` skips part 3.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use ward::plugins::PERMISSIONS_WASM;
use ward::sandbox::{
    Action, Agent, DataLookup, Entity, LoadedPolicy, MemoryData, Permission, Request, Sandbox,
    SandboxConfig, SandboxLimits, Scope, Slice, Tenant,
};

/// Criterion's groups: default settings, then every instance inline.
const GROUPS: [&str; 2] = ["languages", "languages_inline"];

/// What the JavaScript and Python policies answer (`cases.yaml`).
const REASON: &str = "`clerk` may `approve` `invoices:7`";
const CONTEXT: &str = r#"{"limit":1000}"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the CLI crate lives in the workspace")
        .to_path_buf()
}

/// Where cargo (and so criterion) puts its output.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn knob(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.parse().ok()
}

/// Builds the policy in `dir` with `ward policy build`, which prints the
/// component's path on its last line, or takes the component the variable
/// `instead` names.
fn component(dir: &str, instead: &str) -> (PathBuf, Vec<u8>) {
    let path = match std::env::var_os(instead) {
        Some(path) => PathBuf::from(path),
        None => {
            let started = Instant::now();
            let output = Command::new(env!("CARGO_BIN_EXE_ward"))
                .args(["policy", "build", "--dir"])
                .arg(workspace().join(dir))
                .env("WARD_CACHE_DIR", target_dir().join("ward-cache"))
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .expect("cannot run the `ward` binary");
            assert!(
                output.status.success(),
                "`ward policy build --dir {dir}` failed"
            );
            let stdout = String::from_utf8(output.stdout).expect("a UTF-8 path");
            let printed = stdout
                .lines()
                .rfind(|line| !line.trim().is_empty())
                .expect("`ward policy build` printed no path")
                .trim()
                .to_string();
            println!("built {dir} in {:.1} s", started.elapsed().as_secs_f64());
            PathBuf::from(printed)
        }
    };
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|err| panic!("cannot read `{}`: {err}", path.display()));
    println!("{}: {} bytes", path.display(), bytes.len());
    (path, bytes)
}

/// The clerk of `examples/approvals/cases.yaml`.
fn clerk() -> Agent {
    Agent {
        name: String::from("clerk"),
        scope: Scope::Tenant,
        type_: String::from("service"),
        attributes: String::from(r#"{"tier":"standard"}"#),
        permissions: vec![Permission {
            resource: String::from("invoices:*"),
            actions: vec![String::from("read"), String::from("approve")],
        }],
    }
}

/// The request every policy decides, and allows.
fn request() -> Request {
    Request {
        tenant: Tenant {
            id: String::from("tnt_01JBENCH"),
            slug: String::from("bench"),
        },
        subject: Entity {
            type_: String::from("agent"),
            id: String::from("clerk"),
            properties: String::from("{}"),
        },
        agent: Some(clerk()),
        action: Action {
            name: String::from("approve"),
            properties: String::from("{}"),
        },
        resource: Entity {
            type_: String::from("invoices"),
            id: String::from("7"),
            properties: String::from(r#"{"amount":400}"#),
        },
        context: String::from("{}"),
        config: String::from("null"),
    }
}

/// The tenant's data documents: one map, shared by every decision.
fn data() -> Arc<dyn DataLookup> {
    Arc::new(MemoryData(HashMap::from([(
        String::from("approval_limits"),
        String::from(r#"{"standard":1000,"senior":50000}"#),
    )])))
}

/// A sandbox that compiles every module once, optimised, and keeps the
/// code in a cache under the target directory between runs.
fn sandbox(warm_instances: Option<usize>) -> Sandbox {
    let defaults = SandboxConfig::default();
    Sandbox::new(SandboxConfig {
        cache_dir: Some(target_dir().join("ward-cache").join("bench-compiled")),
        quick_compile_bytes: usize::MAX,
        compile_timeout: Duration::from_secs(300),
        warm_instances: warm_instances.unwrap_or(defaults.warm_instances),
        pagemap_scan: knob("WARD_BENCH_PAGEMAP").map_or(defaults.pagemap_scan, |on| on != 0),
        memory_keep_resident: knob("WARD_BENCH_KEEP_KIB")
            .map_or(defaults.memory_keep_resident, |kib| kib << 10),
        table_keep_resident: knob("WARD_BENCH_TABLE_KIB")
            .map_or(defaults.table_keep_resident, |kib| kib << 10),
        ..defaults
    })
    .expect("the sandbox starts")
}

/// Removes from the bench's compiled-code cache every component but
/// `keep` (by sha256): two builds of the same example differ in a few
/// bytes, so without this each run would leave another 60 MB of code.
fn prune_cache(keep: &[&str]) {
    let root = target_dir().join("ward-cache").join("bench-compiled");
    let Ok(engines) = std::fs::read_dir(root) else {
        return;
    };
    for engine in engines.flatten() {
        let Ok(files) = std::fs::read_dir(engine.path()) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            let stem = path.file_stem().and_then(|stem| stem.to_str());
            let compiled = path.extension().is_some_and(|ext| ext == "cwasm");
            if compiled && stem.is_some_and(|stem| !keep.contains(&stem)) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

struct Policy {
    name: &'static str,
    loaded: Arc<LoadedPolicy>,
}

/// Loads the policies into `sandbox` and checks what each decides: all
/// allow, and the JavaScript and Python ones give the reason and context
/// of `cases.yaml`.
fn load(sandbox: &Sandbox, modules: &[(&'static str, Vec<u8>)]) -> Vec<Policy> {
    let limits = SandboxLimits::default();
    let request = request();
    modules
        .iter()
        .map(|(name, bytes)| {
            let started = Instant::now();
            let loaded = sandbox
                .load(bytes, usize::MAX)
                .unwrap_or_else(|err| panic!("{name} does not load: {err}"));
            if started.elapsed() > Duration::from_secs(1) {
                println!(
                    "{name}: compiled in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
            let outcome = sandbox.evaluate(&loaded, &request, &limits, data());
            assert!(
                outcome.allow,
                "{name} does not allow the request: {:?} {:?}",
                outcome.reasons, outcome.failure
            );
            if *name != "builtin_permissions" {
                assert_eq!(outcome.reasons, [REASON], "{name}'s reasons");
                let context: serde_json::Value = serde_json::from_str(&outcome.context).unwrap();
                assert_eq!(
                    context,
                    serde_json::from_str::<serde_json::Value>(CONTEXT).unwrap()
                );
            }
            Policy { name, loaded }
        })
        .collect()
}

fn main() {
    let (_, js) = component("examples/approvals/js", "WARD_BENCH_JS");
    let (_, py) = component("examples/approvals/python", "WARD_BENCH_PY");
    let modules = [
        ("builtin_permissions", PERMISSIONS_WASM.to_vec()),
        ("js_approvals", js),
        ("python_approvals", py),
    ];

    // About 12 s a policy and group: 2 s of warm-up, then at least 8 s.
    let mut criterion = Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    let limits = SandboxLimits::default();
    let request = request();
    let data = data();

    let ahead = sandbox(None);
    let inline = sandbox(Some(0));
    println!(
        "warm_instances: {} by default on this machine",
        ahead.config().warm_instances
    );
    let ahead_policies = load(&ahead, &modules);
    let inline_policies = load(&inline, &modules);
    let current: Vec<&str> = ahead_policies.iter().map(|p| p.loaded.sha256()).collect();
    prune_cache(&current);
    for (group, sandbox, policies) in [
        (GROUPS[0], &ahead, &ahead_policies),
        (GROUPS[1], &inline, &inline_policies),
    ] {
        let mut bench = criterion.benchmark_group(group);
        for policy in policies {
            bench.bench_function(policy.name, |b| {
                b.iter(|| {
                    sandbox.evaluate(
                        &policy.loaded,
                        black_box(&request),
                        &limits,
                        Arc::clone(&data),
                    )
                })
            });
        }
        bench.finish();
    }
    criterion.final_summary();

    summary(&modules);
    if knob("WARD_BENCH_BREAKDOWN") != Some(0) {
        breakdown(&ahead, &ahead_policies, &inline, &inline_policies);
    }
}

/// Criterion's median and mean per decision, from what it saved.
fn summary(modules: &[(&'static str, Vec<u8>)]) {
    println!();
    println!("per decision: criterion's median (p50) and mean, and the p50 over the builtin's");
    println!(
        "{:<18} {:<20} {:>10} {:>10} {:>8} {:>14}",
        "group", "policy", "p50 µs", "mean µs", "ratio", "component B"
    );
    for group in GROUPS {
        let mut baseline = None;
        for (name, bytes) in modules {
            let Some((median, mean)) = estimates(group, name) else {
                continue;
            };
            let base = *baseline.get_or_insert(median);
            println!(
                "{group:<18} {name:<20} {:>10.1} {:>10.1} {:>8.1} {:>14}",
                median / 1e3,
                mean / 1e3,
                median / base,
                bytes.len()
            );
        }
    }
}

/// The median and mean (ns) criterion estimated for `group/name`.
fn estimates(group: &str, name: &str) -> Option<(f64, f64)> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(name)
        .join("new")
        .join("estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let point = |key: &str| json.get(key)?.get("point_estimate")?.as_f64();
    Some((point("median")?, point("mean")?))
}

/// Minor page faults of the calling thread so far.
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // After the command name: state, ppid, pgrp, session, tty_nr, tpgid,
    // flags, minflt.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(7))
        .and_then(|field| field.parse().ok())
        .unwrap_or(0)
}

/// `VmHWM` (peak RSS) and `VmRSS` of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The copy-on-write memory images mapped into pool slots now: how many
/// mappings, and their bytes.
fn memory_images() -> (usize, u64) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter(|line| line.contains("wasm-memory-image"))
        .filter_map(|line| {
            let (start, end) = line.split_whitespace().next()?.split_once('-')?;
            let start = u64::from_str_radix(start, 16).ok()?;
            let end = u64::from_str_radix(end, 16).ok()?;
            Some(end - start)
        })
        .fold((0, 0), |(count, bytes), size| (count + 1, bytes + size))
}

/// The `p` quantile (0–1) of `values`.
fn quantile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or(f64::NAN)
}

/// Single decisions, timed one by one.
#[derive(Default)]
struct Timings {
    /// Wall time of the call into the sandbox, µs.
    wall: Vec<f64>,
    /// What the sandbox counted (`Consumed::duration`: the instance's
    /// making, unless made ahead, and the call), µs.
    counted: Vec<f64>,
    /// Minor page faults of this thread, in all.
    faults: u64,
    /// Decisions abandoned at the end of their inline slice.
    abandoned: usize,
    /// Largest linear memory a guest grew to, bytes.
    peak_memory: u64,
}

/// `calls` decisions, `pause` apart (so that the sandbox's thread has
/// made the next instance before it is needed), with `slice` if given.
fn time_calls(
    sandbox: &Sandbox,
    policy: &LoadedPolicy,
    calls: usize,
    pause: Duration,
    slice: Option<Slice>,
) -> Timings {
    let limits = SandboxLimits::default();
    let request = request();
    let data = data();
    let mut timings = Timings::default();
    for _ in 0..calls {
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let faults = minor_faults();
        let started = Instant::now();
        let outcome = match slice {
            Some(slice) => {
                sandbox.evaluate_within(policy, &request, &limits, Arc::clone(&data), slice)
            }
            None => Some(sandbox.evaluate(policy, &request, &limits, Arc::clone(&data))),
        };
        let wall = started.elapsed();
        timings.faults += minor_faults() - faults;
        let Some(outcome) = outcome else {
            timings.abandoned += 1;
            continue;
        };
        assert!(outcome.allow);
        timings.wall.push(wall.as_secs_f64() * 1e6);
        timings
            .counted
            .push(outcome.usage.duration.as_secs_f64() * 1e6);
        timings.peak_memory = timings.peak_memory.max(outcome.usage.peak_memory_bytes);
    }
    timings
}

/// Where a decision's time goes, from outside the sandbox.
fn breakdown(
    ahead: &Sandbox,
    ahead_policies: &[Policy],
    inline: &Sandbox,
    inline_policies: &[Policy],
) {
    const CALLS: usize = 300;
    println!();
    println!(
        "{CALLS} single decisions a policy, µs. Back to back, every instance made and dropped \
         on the deciding thread: p50, p99, `made` the sandbox's own count (making the instance \
         and the call), `drop` the rest of the wall time, `faults` minor page faults of the \
         deciding thread a decision. Paced, one decision every 3 back-to-back p50s: p50 with \
         instances made inline and made ahead (the default settings; faults a decision), and \
         `in slice`, the share of decisions made ahead that finish within the server's \
         1-2 ms inline slice."
    );
    println!(
        "{:<20} {:>8} {:>8} {:>8} {:>6} {:>6} | {:>8} {:>8} {:>8} {:>6} {:>8} | {:>9}",
        "policy",
        "p50",
        "p99",
        "made",
        "drop",
        "faults",
        "inline",
        "ahead",
        "a. p99",
        "faults",
        "in slice",
        "peak mem"
    );
    for (here, there) in inline_policies.iter().zip(ahead_policies) {
        let back_to_back = time_calls(inline, &here.loaded, CALLS, Duration::ZERO, None);
        let wall_p50 = quantile(&back_to_back.wall, 0.5);
        let pace = Duration::from_secs_f64(wall_p50 * 3e-6).max(Duration::from_micros(200));
        let paced = time_calls(inline, &here.loaded, CALLS, pace, None);
        let taken = ahead.stats().warm_taken;
        let made_ahead = time_calls(ahead, &there.loaded, CALLS, pace, None);
        let taken = ahead.stats().warm_taken - taken;
        let sliced = time_calls(ahead, &there.loaded, CALLS, pace, Some(Slice::Inline));
        let made = quantile(&back_to_back.counted, 0.5);
        println!(
            "{:<20} {:>8.1} {:>8.1} {:>8.1} {:>6.1} {:>6} | {:>8.1} {:>8.1} {:>8.1} {:>6} {:>7.0}% | {:>5} KiB",
            here.name,
            wall_p50,
            quantile(&back_to_back.wall, 0.99),
            made,
            wall_p50 - made,
            back_to_back.faults / CALLS as u64,
            quantile(&paced.wall, 0.5),
            quantile(&made_ahead.wall, 0.5),
            quantile(&made_ahead.wall, 0.99),
            made_ahead.faults / CALLS as u64,
            100.0 * (CALLS - sliced.abandoned) as f64 / CALLS as f64,
            back_to_back.peak_memory >> 10,
        );
        if taken < CALLS as u64 {
            println!(
                "{:<20} ({taken} of {CALLS} paced decisions found an instance made ahead)",
                ""
            );
        }
    }
    let (images, image_bytes) = memory_images();
    let (hwm, rss) = rss_kib();
    println!(
        "copy-on-write memory images mapped: {images} mappings, {} MiB; process RSS {} MiB, \
         peak {} MiB",
        image_bytes >> 20,
        rss >> 10,
        hwm >> 10
    );
}
