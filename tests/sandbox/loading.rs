//! Loading: what is refused, compile bounds, the compiled-code cache.

use super::*;

#[test]
fn load_refuses_garbage_bytes() {
    let err = shared_sandbox()
        .load(b"this is not webassembly at all", usize::MAX)
        .unwrap_err();
    assert!(matches!(err, LoadError::NotComponent(_)), "{err}");
}

#[test]
fn load_refuses_a_core_module() {
    let err = shared_sandbox()
        .load(b"\0asm\x01\0\0\0", usize::MAX)
        .unwrap_err();
    assert_eq!(err, LoadError::CoreModule);
}

#[test]
fn load_refuses_a_corrupt_component() {
    let mut bytes = guest("permissions");
    let middle = bytes.len() / 2;
    bytes.truncate(middle);
    let err = shared_sandbox().load(&bytes, usize::MAX).unwrap_err();
    assert!(matches!(err, LoadError::Invalid(_)), "{err}");
}

#[test]
fn load_refuses_a_component_without_evaluate() {
    // The smallest valid component: a preamble and nothing else.
    let empty = b"\0asm\x0d\0\x01\0";
    let err = shared_sandbox().load(empty, usize::MAX).unwrap_err();
    assert!(matches!(err, LoadError::MissingExport(_)), "{err}");
    assert!(err.to_string().contains("evaluate"), "{err}");
}

#[test]
fn load_refuses_an_import_outside_wasi_and_ward_naming_it() {
    let err = shared_sandbox()
        .load(&guest("forbidden_import"), usize::MAX)
        .unwrap_err();
    match &err {
        LoadError::ForbiddenImport(name) => assert!(name.starts_with("acme:exfil/net"), "{name}"),
        other => panic!("expected a forbidden import, got {other}"),
    }
    assert!(err.to_string().contains("acme:exfil/net"));
}

#[test]
fn module_size_limit_is_obeyed_and_violated() {
    let bytes = guest("permissions");
    assert!(shared_sandbox().load(&bytes, bytes.len()).is_ok());
    let err = shared_sandbox().load(&bytes, bytes.len() - 1).unwrap_err();
    assert_eq!(
        err,
        LoadError::TooLarge {
            size: bytes.len(),
            limit: bytes.len() - 1
        }
    );
}

#[test]
fn host_module_size_cap_applies_whatever_the_tenant_allows() {
    let bytes = guest("permissions");
    let sandbox = Sandbox::new(SandboxConfig {
        max_module_bytes: 1024,
        ..small_config()
    })
    .unwrap();
    let err = sandbox.load(&bytes, usize::MAX).unwrap_err();
    assert!(
        matches!(err, LoadError::TooLarge { limit: 1024, .. }),
        "{err}"
    );
}

#[test]
fn compile_time_bound_is_obeyed_and_violated() {
    let bytes = guest("rbac");
    let strict = Sandbox::new(SandboxConfig {
        compile_timeout: Duration::from_millis(1),
        ..small_config()
    })
    .unwrap();
    let err = strict.load(&bytes, usize::MAX).unwrap_err();
    assert_eq!(err, LoadError::CompileTimeout { limit_ms: 1 });

    let relaxed = Sandbox::new(small_config()).unwrap();
    assert!(relaxed.load(&bytes, usize::MAX).is_ok());
    assert_eq!(relaxed.stats().compiled, 1);
}

/// `max_concurrent_compiles` counts every first compile still running,
/// abandoned ones included; a compile frees its place when it ends, before
/// its caller hears of it.
#[test]
fn concurrent_compiles_are_bounded_and_each_frees_its_place_when_done() {
    let one_place = |config: SandboxConfig| {
        Sandbox::new(SandboxConfig {
            max_concurrent_compiles: 1,
            ..config
        })
        .unwrap()
    };
    let names = ["rbac", "probe", "spin", "deep_recursion", "huge_output"];

    // Modules loaded one after another never find the place taken.
    let sandbox = one_place(SandboxConfig {
        quick_compile_bytes: usize::MAX,
        ..small_config()
    });
    for name in names {
        let loaded = sandbox.load(&guest(name), usize::MAX);
        assert!(loaded.is_ok(), "{name}: {loaded:?}");
    }
    let stats = sandbox.stats();
    assert_eq!((stats.compiled, stats.compiling), (5, 0), "{stats:?}");

    // An abandoned compile holds its place until it ends.
    let sandbox = one_place(SandboxConfig {
        compile_timeout: Duration::ZERO,
        ..small_config()
    });
    let abandoned = LoadError::CompileTimeout { limit_ms: 0 };
    assert_eq!(
        sandbox.load(&guest("rbac"), usize::MAX).unwrap_err(),
        abandoned
    );
    assert_eq!(
        sandbox.load(&guest("probe"), usize::MAX).unwrap_err(),
        LoadError::Busy
    );
    wait_until(&sandbox, |stats| stats.compiling == 0);
    assert_eq!(
        sandbox.load(&guest("probe"), usize::MAX).unwrap_err(),
        abandoned
    );

    // A quick compile frees its place when it is done; the optimised
    // compile that follows holds none, and counts as compiling until the
    // policy counts as optimised.
    let sandbox = one_place(SandboxConfig {
        quick_compile_bytes: 0,
        ..small_config()
    });
    for (done, name) in (1..).zip(names) {
        let loaded = sandbox.load(&guest(name), usize::MAX);
        assert!(loaded.is_ok(), "{name}: {loaded:?}");
        wait_until_optimised(&sandbox, done);
    }
    let stats = sandbox.stats();
    assert_eq!((stats.compiled, stats.compiling), (5, 0), "{stats:?}");
}

#[test]
fn identical_bytes_share_one_compilation() {
    let sandbox = Sandbox::new(small_config()).unwrap();
    let bytes = guest("permissions");
    let first = sandbox.load(&bytes, usize::MAX).unwrap();
    let second = sandbox.load(&bytes, usize::MAX).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(sandbox.stats().compiled, 1);
    assert_eq!(first.sha256().len(), 64);
    assert_eq!(first.size(), bytes.len());
}

/// Run by `compiled_code_survives_a_process_restart` in a child process.
#[test]
#[ignore = "helper: runs only as a child process of another test"]
fn child_process_loads_from_cache() {
    let Ok(dir) = std::env::var("WARD_TEST_CACHE_DIR") else {
        return;
    };
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.into()),
        ..small_config()
    })
    .unwrap();
    let policy = sandbox.load(&guest("permissions"), usize::MAX).unwrap();
    let outcome = sandbox.evaluate(
        &policy,
        &request(
            Some(agent("a", &[("doc:*", &["read"])])),
            "read",
            "doc:1",
            "null",
        ),
        &SandboxLimits::default(),
        Arc::new(NoData),
    );
    let stats = sandbox.stats();
    println!(
        "\nCHILD-STATS compiled={} cache_hits={} allow={}",
        stats.compiled, stats.cache_hits, outcome.allow
    );
}

#[test]
fn compiled_code_survives_a_process_restart() {
    let dir = tempfile::tempdir().unwrap();
    let run_child = || {
        let output = child_test("sandbox::loading::child_process_loads_from_cache")
            .env("WARD_TEST_CACHE_DIR", dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "child failed: {stdout}");
        stdout
            .lines()
            .find(|line| line.starts_with("CHILD-STATS"))
            .unwrap_or_else(|| panic!("no stats in child output: {stdout}"))
            .to_string()
    };
    assert_eq!(
        run_child(),
        "CHILD-STATS compiled=1 cache_hits=0 allow=true"
    );
    assert_eq!(
        run_child(),
        "CHILD-STATS compiled=0 cache_hits=1 allow=true"
    );
}

#[test]
fn a_damaged_cache_entry_is_recompiled_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let config = || SandboxConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..small_config()
    };
    let bytes = guest("permissions");
    let first = Sandbox::new(config()).unwrap();
    let sha = first.load(&bytes, usize::MAX).unwrap().sha256().to_string();
    drop(first);

    let entry = walk(dir.path())
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy() == format!("{sha}.cwasm"))
        .expect("cache entry written");
    let mut artifact = std::fs::read(&entry).unwrap();
    let last = artifact.len() - 1;
    artifact[last] ^= 0xff;
    std::fs::write(&entry, artifact).unwrap();

    let second = Sandbox::new(config()).unwrap();
    let policy = second.load(&bytes, usize::MAX).unwrap();
    assert_eq!(second.stats().compiled, 1);
    assert_eq!(second.stats().cache_hits, 0);
    let outcome = second.evaluate(
        &policy,
        &request(
            Some(agent("a", &[("doc:*", &["read"])])),
            "read",
            "doc:1",
            "null",
        ),
        &SandboxLimits::default(),
        Arc::new(NoData),
    );
    assert!(outcome.allow);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
