//! The data directory is Ward's alone, whatever the umask it was started
//! with: the real `ward serve`, started with umask 000 on a data directory
//! an earlier install left readable by everyone.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::support::KillOnDrop;

const TOKEN: &str = "files-test-operator-token";

/// Starts `ward serve` under `umask 000` and returns it with its base URL.
fn spawn_with_open_umask(data_dir: &Path) -> (KillOnDrop, String) {
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg("umask 000 && exec \"$0\" serve --listen 127.0.0.1:0 --data-dir \"$1\"")
        .arg(env!("CARGO_BIN_EXE_ward"))
        .arg(data_dir)
        .env("WARD_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = KillOnDrop(command.spawn().unwrap());
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("ward exited early").unwrap();
        if let Some(rest) = line.split("listen=").nth(1)
            && line.contains("ward is serving")
        {
            break format!("http://{}", rest.split_whitespace().next().unwrap());
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

/// Every entry under `dir` (itself included) whose mode is not 0700 for a
/// directory or 0600 for a file.
fn loose_entries(dir: &Path) -> Vec<String> {
    let mut loose = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    let mode = |path: &Path| {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    if mode(dir) != 0o700 {
        loose.push(format!("{} {:o}", dir.display(), mode(dir)));
    }
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let want = if meta.is_dir() {
                pending.push(path.clone());
                0o700
            } else {
                0o600
            };
            if mode(&path) != want {
                loose.push(format!("{} {:o}", path.display(), mode(&path)));
            }
        }
    }
    loose
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_readable_by_ward_only_whatever_the_umask() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("ward-data");
    // What an earlier install may have left: open directories and files.
    std::fs::create_dir_all(data.join("compiled")).unwrap();
    std::fs::write(data.join("compiled").join("old"), b"x").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        data.join("compiled"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    std::fs::set_permissions(
        data.join("compiled").join("old"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    let (mut child, base) = spawn_with_open_umask(&data);
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(TOKEN)
        .json(&json!({"slug": "acme", "name": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // A policy (compiled-code cache), data, and decisions (audit).
    let uploaded = http
        .put(format!("{base}/v1/policies/mine"))
        .bearer_auth(TOKEN)
        .header("x-tenant-id", "acme")
        .header("content-type", "application/wasm")
        .body(crate::support::guest("probe"))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let data_put = http
        .put(format!("{base}/v1/data/big"))
        .bearer_auth(TOKEN)
        .header("x-tenant-id", "acme")
        .json(&json!({"blob": "b".repeat(200_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(data_put.status(), 200);
    for _ in 0..20 {
        let decided = http
            .post(format!("{base}/v1/authorize"))
            .bearer_auth(TOKEN)
            .header("x-tenant-id", "acme")
            .json(&json!({"agent": "a", "action": "read", "resource": "docs:1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(decided.status(), 200);
    }
    // Let the batched audit writer and sled flush what they hold.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let loose = loose_entries(&data);
    assert!(loose.is_empty(), "while serving: {loose:#?}");
    let files = walk_count(&data);
    assert!(files >= 4, "the store and the journal exist: {files} files");

    child.kill();
    let loose = loose_entries(&data);
    assert!(loose.is_empty(), "after stopping: {loose:#?}");
}

fn walk_count(dir: &Path) -> usize {
    let mut count = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                count += 1;
            }
        }
    }
    count
}
