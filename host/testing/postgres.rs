//! A throwaway PostgreSQL server for tests and benchmarks of the shared
//! store: `initdb` and `pg_ctl` in a fresh temporary directory, listening
//! on a free loopback port, stopped and deleted when dropped.
//!
//! Std only, so that both the integration tests and the benchmarks can
//! include it with `#[path]` without extra dependencies.
//!
//! The server binaries come from `$WARD_PG_BIN`, else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian's layout), else `initdb` on
//! `PATH`. PostgreSQL refuses to run as root, so when the caller is root
//! every PostgreSQL program runs as the `postgres` system user, which then
//! owns the temporary directory.
//!
//! A `Postgres` kept in a `static` is never dropped, and a process killed
//! outright never runs `Drop`; a small watchdog process, started with the
//! server, stops the server and deletes the directory once the process
//! that started it is gone, so neither case leaves a server running.

use std::fs::{self, File};
use std::io::Read as _;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the server gets to accept connections after `pg_ctl start`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Start attempts, each on a new port: another process may take the port
/// between our probe releasing it and PostgreSQL binding it.
const START_ATTEMPTS: u32 = 5;

/// Distinguishes the directories and command logs of one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Client environment variables that would otherwise override or add to
/// the explicit connection options given to `psql`.
const CLIENT_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGSSLMODE",
    "PGTARGETSESSIONATTRS",
];

/// A running PostgreSQL server, owned by this process.
pub struct Postgres {
    /// The temporary directory: data directory, sockets, logs.
    dir: PathBuf,
    /// `<dir>/data`.
    data: PathBuf,
    /// `pg_ctl`, `initdb`, `postgres` (and usually `psql`) live here.
    bin: PathBuf,
    psql: PathBuf,
    port: u16,
    /// Run PostgreSQL programs as the `postgres` user (the caller is root).
    as_postgres: bool,
    /// Stops the server once this process is gone; its stdin is a pipe
    /// whose only writer is `watchdog_stdin`.
    watchdog: Option<Child>,
    watchdog_stdin: Option<ChildStdin>,
}

impl Postgres {
    /// Starts a fresh cluster: `initdb` and `pg_ctl` in a temporary
    /// directory, on a free loopback port, with `trust` authentication for
    /// the `postgres` superuser.
    pub fn start() -> Result<Postgres, String> {
        let bin = find_bin()?;
        let psql = find_psql(&bin)?;
        let as_postgres = is_root()?;
        if as_postgres {
            postgres_user_exists()?;
        }
        let dir = make_dir(as_postgres)?;
        let data = dir.join("data");
        let mut pg = Postgres {
            dir,
            data,
            bin,
            psql,
            port: 0,
            as_postgres,
            watchdog: None,
            watchdog_stdin: None,
        };
        // From here on, a failure drops `pg`, which removes the directory
        // (and stops the server, if it got that far).
        pg.init()?;
        pg.start_watchdog()?;
        pg.launch()?;
        pg.wait_ready()?;
        Ok(pg)
    }

    /// The URL of a new, empty database called `name`, owned by the
    /// `postgres` superuser: `postgres://postgres@127.0.0.1:<port>/<name>`.
    ///
    /// `name` is limited to ASCII letters, digits, `_` and `-` (at most 63
    /// bytes, PostgreSQL's identifier limit) so that it needs no escaping
    /// in the URL.
    pub fn database(&self, name: &str) -> Result<String, String> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(format!(
                "invalid database name {name:?}: use 1 to 63 ASCII letters, digits, `_` or `-`"
            ));
        }
        // Quoted, so that upper case and `-` are kept as given.
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .map_err(|e| format!("cannot create database {name:?}: {e}"))?;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    #[allow(dead_code)]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `initdb` into `<dir>/data`, then the settings every start uses.
    fn init(&self) -> Result<(), String> {
        let mut initdb = self.pg_command(&self.bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&self.data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale"])
            // Not needed with fsync off, and it is a large share of the
            // time initdb takes.
            .arg("--no-sync");
        self.run(initdb, Duration::from_secs(120))
            .map_err(|e| format!("initdb failed: {e}"))?;

        // Set in the configuration file rather than on the `pg_ctl -o`
        // command line, which a shell splits: the socket directory is a
        // path and may contain spaces.
        let conf = self.data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf)
            .map_err(|e| format!("cannot read {}: {e}", conf.display()))?;
        text.push_str(&format!(
            "\n# Throwaway server for tests.\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             max_connections = 200\n\
             # The cluster is deleted when the tests end, so surviving an OS\n\
             # crash is worthless; not flushing to disk makes it much faster.\n\
             fsync = off\n\
             full_page_writes = off\n",
            self.dir.display().to_string().replace('\'', "''")
        ));
        fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))
    }

    /// `pg_ctl start` on a free port, retried on a new port when the
    /// chosen one was taken meanwhile.
    fn launch(&mut self) -> Result<(), String> {
        let log = self.dir.join("server.log");
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            self.port = free_port()?;
            // Removed so that the checks below see only this attempt; not
            // created here, as the server's user must own it.
            let _ = fs::remove_file(&log);
            let mut start = self.pg_command(&self.bin.join("pg_ctl"));
            start
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", &READY_TIMEOUT.as_secs().to_string()])
                .args(["-o", &format!("-p {}", self.port)])
                .arg("start");
            match self.run(start, READY_TIMEOUT + Duration::from_secs(10)) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let server_log = fs::read_to_string(&log).unwrap_or_default();
                    last_error = format!(
                        "pg_ctl start failed on port {}: {e}\nserver log:\n{}",
                        self.port,
                        tail(&server_log, 40)
                    );
                    // A failed start may still leave a postmaster behind.
                    self.stop();
                    let port_taken = server_log.contains("could not bind")
                        || server_log.contains("already in use");
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        Err(last_error)
    }

    /// Until a query succeeds over TCP, as the tests will connect.
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let reachable = TcpStream::connect_timeout(
                &(Ipv4Addr::LOCALHOST, self.port).into(),
                Duration::from_secs(1),
            )
            .is_ok();
            let answer = if reachable {
                self.psql("postgres", "SELECT 1")
            } else {
                Err(format!("nothing listens on 127.0.0.1:{}", self.port))
            };
            match answer {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    let server_log =
                        fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                    return Err(format!(
                        "PostgreSQL on port {} not ready after {}s: {e}\nserver log:\n{}",
                        self.port,
                        READY_TIMEOUT.as_secs(),
                        tail(&server_log, 40)
                    ));
                }
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// One SQL command through `psql` over TCP, failing on any SQL error.
    fn psql(&self, database: &str, sql: &str) -> Result<(), String> {
        let mut psql = self.pg_command(&self.psql);
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-c", sql])
            .env("PGCONNECT_TIMEOUT", "5");
        self.run(psql, Duration::from_secs(60))
    }

    /// Stops the server at once (no checkpoint: the data is thrown away),
    /// and if `pg_ctl` cannot, kills the postmaster named in its pid file.
    fn stop(&self) {
        if !self.data.join("postmaster.pid").exists() {
            return;
        }
        let mut stop = self.pg_command(&self.bin.join("pg_ctl"));
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "10", "stop"]);
        if self.run(stop, Duration::from_secs(15)).is_ok() {
            return;
        }
        let pid = fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::trim).map(str::to_owned))
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if let Some(pid) = pid {
            // The children of a killed postmaster notice and exit by
            // themselves.
            let mut kill = Command::new("kill");
            kill.args(["-KILL", &pid]);
            let _ = self.run(kill, Duration::from_secs(5));
        }
    }

    /// A process that waits for end of file on its stdin, which comes
    /// when this process closes the pipe or exits in any way, then stops
    /// the server and deletes the directory.
    fn start_watchdog(&mut self) -> Result<(), String> {
        let mut sh = self.pg_command(Path::new("/bin/sh"));
        sh.arg("-c")
            .arg(
                "read _ignored; \
                 \"$1\" -D \"$2\" -m immediate -w -t 10 stop >/dev/null 2>&1; \
                 rm -rf \"$3\"",
            )
            .arg("ward-postgres-watchdog")
            .arg(self.bin.join("pg_ctl"))
            .arg(&self.data)
            .arg(&self.dir)
            .stdin(Stdio::piped())
            // Not inherited: a test harness reading this process's output
            // would otherwise wait for the watchdog too.
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = sh
            .spawn()
            .map_err(|e| format!("cannot start the PostgreSQL watchdog: {e}"))?;
        self.watchdog_stdin = child.stdin.take();
        self.watchdog = Some(child);
        Ok(())
    }

    /// A command for a PostgreSQL program, as the `postgres` user when
    /// this process is root, run from the temporary directory (the
    /// `postgres` user may not be allowed into the current one).
    fn pg_command(&self, program: &Path) -> Command {
        let mut command = if self.as_postgres {
            let mut runuser = Command::new(runuser());
            runuser.args(["-u", "postgres", "--"]).arg(program);
            runuser
        } else {
            Command::new(program)
        };
        command.current_dir(&self.dir);
        for var in CLIENT_ENV {
            command.env_remove(var);
        }
        command
    }

    /// Runs `command` to completion within `timeout` (killing it then),
    /// with its output in a file rather than a pipe, so that a server it
    /// starts in the background cannot hold the output open.
    fn run(&self, mut command: Command, timeout: Duration) -> Result<(), String> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let out_path = self.dir.join(format!("command-{n}.log"));
        let out = File::create(&out_path)
            .map_err(|e| format!("cannot create {}: {e}", out_path.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot duplicate {}: {e}", out_path.display()))?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let shown = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|part| part.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let result = match command.spawn() {
            Err(e) => Err(format!("cannot run {shown}: {e}")),
            Ok(mut child) => match wait_timeout(&mut child, timeout) {
                Some(status) if status.success() => Ok(()),
                Some(status) => Err(format!("{shown} exited with {status}")),
                None => Err(format!(
                    "{shown} did not finish within {}s",
                    timeout.as_secs()
                )),
            },
        };
        let mut output = String::new();
        if let Ok(mut file) = File::open(&out_path) {
            let _ = file.read_to_string(&mut output);
        }
        let _ = fs::remove_file(&out_path);
        result.map_err(|e| {
            let output = output.trim();
            if output.is_empty() {
                e
            } else {
                format!("{e}:\n{}", tail(output, 40))
            }
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        // Closing the pipe lets the watchdog finish; with the server
        // stopped, it has nothing left to do but is still waited for, so
        // that no process outlives this value.
        drop(self.watchdog_stdin.take());
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = wait_timeout(&mut watchdog, Duration::from_secs(15));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Waits for `child` until `timeout`, then kills it and returns `None`.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn find_bin() -> Result<PathBuf, String> {
    let has_server = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|program| dir.join(program).is_file())
    };
    if let Some(dir) = std::env::var_os("WARD_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "WARD_PG_BIN={} does not hold initdb, pg_ctl and postgres",
                dir.display()
            ))
        };
    }
    // Debian installs each major version side by side; the newest wins.
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(bin) = on_path("initdb").and_then(|initdb| initdb.parent().map(Path::to_path_buf))
        && has_server(&bin)
    {
        return Ok(bin);
    }
    Err(
        "PostgreSQL server binaries not found: install Debian's `postgresql` package \
         (apt-get install postgresql) or set WARD_PG_BIN"
            .to_owned(),
    )
}

/// `psql` beside the server binaries, else on `PATH`.
fn find_psql(bin: &Path) -> Result<PathBuf, String> {
    let beside = bin.join("psql");
    if beside.is_file() {
        return Ok(beside);
    }
    on_path("psql").ok_or_else(|| {
        format!(
            "psql not found in {} nor on PATH: install Debian's `postgresql-client` package",
            bin.display()
        )
    })
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `runuser` switches user without a password or PAM prompt; Debian ships
/// it in util-linux.
fn runuser() -> PathBuf {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("runuser"))
}

/// Whether this process's effective user is root.
fn is_root() -> Result<bool, String> {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        // "Uid:\treal\teffective\tsaved\tfilesystem"
        if let Some(effective) = status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
        {
            return Ok(effective == "0");
        }
    }
    let output = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("cannot run `id -u`: {e}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn postgres_user_exists() -> Result<(), String> {
    let found = Command::new("id")
        .args(["-u", "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        Ok(())
    } else {
        Err(
            "running as root, but there is no `postgres` user to run PostgreSQL as: \
             install Debian's `postgresql` package (apt-get install postgresql), which creates it"
                .to_owned(),
        )
    }
}

/// A new directory under the temporary directory (or `/tmp`, when the
/// `postgres` user cannot reach the former), owned by `postgres` when it
/// will run the server.
fn make_dir(as_postgres: bool) -> Result<PathBuf, String> {
    let mut parents = vec![std::env::temp_dir()];
    if as_postgres && parents[0] != Path::new("/tmp") {
        parents.push(PathBuf::from("/tmp"));
    }
    let mut errors = Vec::new();
    for parent in parents {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = parent.join(format!(
            "ward-pg-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // `create_dir`, not `create_dir_all`: fails rather than reuses.
        if let Err(e) = fs::create_dir(&dir) {
            errors.push(format!("cannot create {}: {e}", dir.display()));
            continue;
        }
        if !as_postgres {
            return Ok(dir);
        }
        let chowned = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .is_ok_and(|status| status.success());
        let reachable = chowned
            && Command::new(runuser())
                .args(["-u", "postgres", "--", "test", "-w"])
                .arg(&dir)
                .current_dir("/")
                .status()
                .is_ok_and(|status| status.success());
        if reachable {
            return Ok(dir);
        }
        errors.push(format!(
            "the postgres user cannot write to {} (chown {})",
            dir.display(),
            if chowned { "done" } else { "failed" }
        ));
        let _ = fs::remove_dir_all(&dir);
    }
    Err(format!(
        "no temporary directory for PostgreSQL: {}",
        errors.join("; ")
    ))
}

/// A port on 127.0.0.1 that nothing listened on a moment ago.
fn free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
