//! What a policy can reach: the `ward:policy/host` imports, and a WASI 0.2
//! context that denies everything (no files, environment, arguments or
//! network; stdin closed; stdout and stderr captured up to a cap).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::ward::policy::{host, types};
use super::limits::Limiter;

/// Data documents as a policy sees them through `data-get`: already scoped
/// to the calling tenant (its own documents first, then global ones).
pub trait DataLookup: Send + Sync {
    /// The document stored under `key`, as JSON text.
    fn data_get(&self, key: &str) -> Option<String>;
}

/// No data documents at all.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoData;

impl DataLookup for NoData {
    fn data_get(&self, _key: &str) -> Option<String> {
        None
    }
}

/// Data documents held in memory, keyed by name.
#[derive(Debug, Default, Clone)]
pub struct MemoryData(pub HashMap<String, String>);

impl DataLookup for MemoryData {
    fn data_get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

/// Where the guest's log lines and stdio go: the host log, tagged with the
/// tenant and policy, until the per-evaluation byte budget is spent.
/// Lines are held until the evaluation ends ([`LogSink::flush`]), so that an
/// evaluation that is abandoned and run again logs once.
pub(super) struct LogSink {
    pub(super) tenant: String,
    pub(super) policy: String,
    budget: usize,
    pub(super) dropped: bool,
    held: Vec<(host::Level, String)>,
}

impl LogSink {
    pub(super) fn new(tenant: String, policy: String, budget: usize) -> Self {
        LogSink {
            tenant,
            policy,
            budget,
            dropped: false,
            held: Vec::new(),
        }
    }

    fn emit(&mut self, level: host::Level, message: &str) {
        if message.len() > self.budget {
            self.budget = 0;
            self.dropped = true;
            return;
        }
        self.budget -= message.len();
        self.held.push((level, message.to_string()));
    }

    /// Starts another evaluation on the same store with a fresh budget.
    pub(super) fn restart(&mut self, budget: usize) {
        self.budget = budget;
        self.dropped = false;
        self.held.clear();
    }

    /// Writes the held lines to the host log.
    pub(super) fn flush(&mut self) {
        let (tenant, policy) = (self.tenant.as_str(), self.policy.as_str());
        for (level, message) in self.held.drain(..) {
            Self::write(level, tenant, policy, &message);
        }
    }

    fn write(level: host::Level, tenant: &str, policy: &str, message: &str) {
        match level {
            host::Level::Trace => {
                tracing::trace!(target: "ward::policy", tenant, policy, "{message}")
            }
            host::Level::Debug => {
                tracing::debug!(target: "ward::policy", tenant, policy, "{message}")
            }
            host::Level::Info => {
                tracing::info!(target: "ward::policy", tenant, policy, "{message}")
            }
            host::Level::Warn => {
                tracing::warn!(target: "ward::policy", tenant, policy, "{message}")
            }
            host::Level::Error => {
                tracing::error!(target: "ward::policy", tenant, policy, "{message}")
            }
        }
    }

    /// Forwards what the guest wrote to stdout/stderr, line by line.
    pub(super) fn emit_stdio(&mut self, captured: &CapturedOutput) {
        let bytes = captured.take();
        if bytes.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines() {
            self.emit(host::Level::Info, line);
        }
        if captured.take_overflowed() {
            self.dropped = true;
        }
    }
}

/// The data of one store: one evaluation's WASI context, limits and host
/// state. Never reused across evaluations.
pub(super) struct StoreState {
    /// Built on the guest's first WASI call: most policies make none, and
    /// building it (seeding its random sources, its clocks and streams)
    /// was a measurable part of every fresh instance.
    wasi: Option<WasiCtx>,
    stdio: CapturedOutput,
    pub(super) table: ResourceTable,
    pub(super) limiter: Limiter,
    pub(super) data: Arc<dyn DataLookup>,
    pub(super) log: LogSink,
    /// When the evaluation's deadline passes: a WASI call that waits (a
    /// clock, a stream) gives up then, since the epoch deadline only
    /// interrupts running guest code.
    pub(super) wait_until: Option<Instant>,
}

impl StoreState {
    pub(super) fn new(
        limiter: Limiter,
        data: Arc<dyn DataLookup>,
        log: LogSink,
        stdio: &CapturedOutput,
    ) -> Self {
        StoreState {
            wasi: None,
            stdio: stdio.clone(),
            table: ResourceTable::new(),
            limiter,
            data,
            log,
            wait_until: None,
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let stdio = &self.stdio;
        let ctx = self.wasi.get_or_insert_with(|| {
            WasiCtxBuilder::new()
                .stdout(stdio.clone())
                .stderr(stdio.clone())
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build()
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

impl types::Host for StoreState {}

impl host::Host for StoreState {
    fn log(&mut self, level: host::Level, message: String) {
        self.log.emit(level, &message);
    }

    fn now_millis(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
            })
    }

    fn data_get(&mut self, key: String) -> Option<String> {
        self.data.data_get(&key)
    }
}

/// A stdout/stderr that keeps at most `capacity` bytes and silently drops
/// the rest, so a chatty guest can neither fill the host's memory nor fail
/// its decision by printing.
#[derive(Clone)]
pub(super) struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    bytes: Vec<u8>,
    capacity: usize,
    overflowed: bool,
}

impl CapturedOutput {
    pub(super) fn new(capacity: usize) -> Self {
        CapturedOutput {
            inner: Arc::new(Mutex::new(Captured {
                bytes: Vec::new(),
                capacity,
                overflowed: false,
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Captured) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn append(&self, data: &[u8]) {
        self.with(|captured| {
            let room = captured.capacity.saturating_sub(captured.bytes.len());
            let kept = data.len().min(room);
            captured.bytes.extend_from_slice(&data[..kept]);
            captured.overflowed |= kept < data.len();
        });
    }

    fn take(&self) -> Vec<u8> {
        self.with(|captured| std::mem::take(&mut captured.bytes))
    }

    /// Whether output was dropped since the last call.
    fn take_overflowed(&self) -> bool {
        self.with(|captured| std::mem::take(&mut captured.overflowed))
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Writes never block and never fail: past the cap they are dropped.
const WRITE_PERMIT: usize = 64 << 10;

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
