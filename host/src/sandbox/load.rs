//! Turning uploaded bytes into a policy that is ready to instantiate:
//! size check, compile (bounded in time, or taken from the disk cache),
//! import check against what Ward offers, and type check of `evaluate`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, ComponentExportIndex, Linker};

use super::bindings::PolicyPre;
use super::host::StoreState;
use super::{LoadError, Sandbox};

/// A policy module validated, compiled and type-checked against the
/// `ward:policy` world. Cheap to share: evaluations instantiate it afresh.
pub struct LoadedPolicy {
    pub(super) sha256: String,
    pub(super) size: usize,
    /// The code evaluations instantiate: replaced once, by the optimised
    /// code, when the module was compiled quickly first. An evaluation
    /// that took the quick code finishes on it.
    pub(super) linked: ArcSwap<Linked>,
    optimised: AtomicBool,
    pub(super) used: super::resident::UseFlag,
}

/// A compiled component linked against Ward's imports.
pub(super) struct Linked {
    pub(super) pre: PolicyPre<StoreState>,
    /// Where `evaluate` is among the component's exports.
    pub(super) evaluate: ComponentExportIndex,
}

impl LoadedPolicy {
    /// Hex sha256 of the module's bytes: its content version.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Size of the uploaded module in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Marks the policy as recently used, so that it stays in memory.
    pub fn touch(&self) {
        self.used.touch();
    }

    /// Whether decisions run on optimised code: false only between a
    /// quick first compilation and the end of the optimised one.
    pub fn is_optimised(&self) -> bool {
        self.optimised.load(Ordering::Acquire)
    }

    /// Replaces the quick code with `linked`, optimised code of the same
    /// module.
    pub(super) fn swap_in_optimised(&self, linked: Linked) {
        self.linked.store(Arc::new(linked));
        self.optimised.store(true, Ordering::Release);
    }
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .finish()
    }
}

/// Interfaces a policy may import: WASI 0.2 as linked (with a deny-all
/// context) and Ward's own host interface.
const ALLOWED_IMPORTS: &[(&str, &str)] = &[
    ("wasi:cli/", "0.2."),
    ("wasi:clocks/", "0.2."),
    ("wasi:filesystem/", "0.2."),
    ("wasi:io/", "0.2."),
    ("wasi:random/", "0.2."),
    ("wasi:sockets/", "0.2."),
    ("ward:policy/", "0.1."),
];

fn import_allowed(name: &str) -> bool {
    let Some((interface, version)) = name.split_once('@') else {
        return false;
    };
    ALLOWED_IMPORTS.iter().any(|(prefix, major_minor)| {
        interface.starts_with(prefix) && version.starts_with(major_minor)
    })
}

/// The WebAssembly binary preamble: magic, then version and layer.
const WASM_MAGIC: &[u8; 4] = b"\0asm";
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

fn check_preamble(bytes: &[u8]) -> Result<(), LoadError> {
    match (bytes.get(..4), bytes.get(4..8)) {
        (Some(magic), Some(version)) if magic == WASM_MAGIC => {
            if version == COMPONENT_VERSION {
                Ok(())
            } else if version[2..] == [0, 0] {
                Err(LoadError::CoreModule)
            } else {
                Err(LoadError::NotComponent(
                    "unsupported WebAssembly version".into(),
                ))
            }
        }
        _ => Err(LoadError::NotComponent(
            "missing the WebAssembly magic number".into(),
        )),
    }
}

impl Sandbox {
    /// Validates and compiles `bytes` as a policy component, refusing it
    /// when it is larger than `max_bytes` (and the engine's own cap).
    ///
    /// The same bytes loaded twice share one compilation; bytes compiled by
    /// an earlier process are taken from the on-disk cache, never compiled
    /// again. A module of at least `quick_compile_bytes` is compiled
    /// quickly first and optimised in the background (see
    /// [`SandboxConfig::quick_compile_bytes`](super::SandboxConfig)).
    /// Blocks the calling thread while compiling: call it from a blocking
    /// task.
    pub fn load(&self, bytes: &[u8], max_bytes: usize) -> Result<Arc<LoadedPolicy>, LoadError> {
        self.load_for(UNNAMED, bytes, max_bytes)
    }

    /// [`Sandbox::load`] for `owner` (a scope): its compiles share the
    /// places and the optimiser with other owners' fairly (see
    /// [`places`](super::places) and [`optimiser`](super::optimiser)).
    pub fn load_for(
        &self,
        owner: &str,
        bytes: &[u8],
        max_bytes: usize,
    ) -> Result<Arc<LoadedPolicy>, LoadError> {
        self.load_with(owner, bytes, max_bytes, true)
    }

    /// Loads a module ahead of its decisions, from a thread of its own:
    /// compiled once, optimised, since nobody waits for it.
    pub fn load_ahead(&self, bytes: &[u8]) -> Result<Arc<LoadedPolicy>, LoadError> {
        self.load_with(AHEAD, bytes, usize::MAX, false)
    }

    fn load_with(
        &self,
        owner: &str,
        bytes: &[u8],
        max_bytes: usize,
        may_be_quick: bool,
    ) -> Result<Arc<LoadedPolicy>, LoadError> {
        let limit = max_bytes.min(self.config.max_module_bytes);
        if bytes.len() > limit {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        check_preamble(bytes)?;
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(policy) = self.loaded_by_hash(&sha256) {
            return Ok(policy);
        }

        if let Some(policy) = self.load_cached(&sha256, bytes.len()) {
            return Ok(policy);
        }

        self.flights.once(&sha256, || {
            self.compile_and_link(owner, bytes, sha256.clone(), may_be_quick)
        })
    }

    /// Compiles `bytes` (quickly first when they are large and
    /// `may_be_quick`) and links them into a policy.
    fn compile_and_link(
        &self,
        owner: &str,
        bytes: &[u8],
        sha256: String,
        may_be_quick: bool,
    ) -> Result<Arc<LoadedPolicy>, LoadError> {
        let quick = !self.config.optimise
            || (may_be_quick && bytes.len() >= self.config.quick_compile_bytes);
        let optimise_later = quick && self.config.optimise;
        if optimise_later && !self.optimiser.has_room(owner, bytes.len()) {
            return Err(LoadError::Busy);
        }
        let component = self.compile(owner, bytes, quick)?;
        self.stats.compiled.fetch_add(1, Ordering::Relaxed);
        let policy = Arc::new(self.link(component.clone(), sha256, bytes.len(), !quick)?);
        if optimise_later {
            self.optimiser
                .queue(owner, &policy.sha256, bytes, Arc::downgrade(&policy));
        } else if let Some(cache) = &self.cache {
            cache.put(&policy.sha256, &component);
        }
        self.remember(&policy);
        Ok(policy)
    }

    /// The policy whose module has hash `sha256` (and `size` bytes), when
    /// it is in memory or its compiled code is in the disk cache: a module
    /// that was loaded before needs neither its bytes read nor hashed
    /// again. `None`: load it with [`Sandbox::load`].
    pub fn load_cached(&self, sha256: &str, size: usize) -> Option<Arc<LoadedPolicy>> {
        if let Some(policy) = self.loaded_by_hash(sha256) {
            return Some(policy);
        }
        let component = self.cache.as_ref()?.get(&self.engine, sha256)?;
        let policy = Arc::new(self.link(component, sha256.to_string(), size, true).ok()?);
        self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
        self.remember(&policy);
        Some(policy)
    }

    /// Compiles `bytes` on a thread of its own, quickly or optimised,
    /// bounded by `compile_timeout` and holding one of `owner`'s places
    /// among `max_concurrent_compiles` until it is done compiling.
    fn compile(&self, owner: &str, bytes: &[u8], quick: bool) -> Result<Component, LoadError> {
        let place = self
            .places
            .take(owner, self.config.max_concurrent_compiles)
            .ok_or(LoadError::Busy)?;
        let (done, result) = mpsc::channel();
        let bytes_len = bytes.len();
        let engine = self.engine.clone();
        let compiler = quick.then(|| self.quick.clone());
        let bytes = bytes.to_vec();
        let spawned = thread::Builder::new()
            .name("ward-compile".into())
            .spawn(move || {
                // Compiling competes for the cores with every tenant's
                // decisions: at a lower priority it takes what they leave.
                super::places::lower_priority();
                let compiled = match compiler {
                    Some(quick) => quick
                        .precompile_component(&bytes)
                        .and_then(|artifact| super::cache::load_artifact(&engine, &artifact)),
                    None => Component::new(&engine, &bytes),
                };
                // Free the place before the caller hears of the result, so
                // that a caller loading modules one after another never
                // finds its own finished compile still counted.
                drop(place);
                let _ = done.send(compiled);
            });
        if let Err(err) = spawned {
            return Err(LoadError::Internal(format!("cannot start compiler: {err}")));
        }
        // A compile that overruns is abandoned: its thread finishes in the
        // background (holding its place until then) and its result is
        // dropped.
        let timeout = compile_timeout(self.config.compile_timeout, bytes_len);
        match result.recv_timeout(timeout) {
            Ok(Ok(component)) => Ok(component),
            Ok(Err(err)) => Err(LoadError::Invalid(format!("{err:#}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(LoadError::CompileTimeout {
                limit_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(LoadError::Internal("the compiler thread died".into()))
            }
        }
    }

    fn link(
        &self,
        component: Component,
        sha256: String,
        size: usize,
        optimised: bool,
    ) -> Result<LoadedPolicy, LoadError> {
        let linked = link(&self.engine, &self.linker, &component)?;
        Ok(LoadedPolicy {
            sha256,
            size,
            linked: ArcSwap::from_pointee(linked),
            optimised: AtomicBool::new(optimised),
            used: Default::default(),
        })
    }
}

/// How long compiling a module of `size` bytes may take: `per_step` for
/// each started [`COMPILE_STEP_BYTES`], since compile time grows with the
/// size (a 12 MB JavaScript component takes about 8 s to compile quickly on
/// one core).
pub fn compile_timeout(per_step: Duration, size: usize) -> Duration {
    let steps = u32::try_from(size.div_ceil(COMPILE_STEP_BYTES).max(1)).unwrap_or(u32::MAX);
    per_step.saturating_mul(steps)
}

/// Who compiles modules ahead of their decisions, among the owners of
/// compiles (no scope's key has a space).
const AHEAD: &str = " ahead";

/// Who compiles for [`Sandbox::load`]: a decision that found no code, a
/// tool or a test.
const UNNAMED: &str = " load";

/// The module size `compile_timeout` is granted for.
pub const COMPILE_STEP_BYTES: usize = 8 << 20;

/// Checks `component`'s imports against what Ward offers and its
/// `evaluate` against the world, and links it.
pub(super) fn link(
    engine: &Engine,
    linker: &Linker<StoreState>,
    component: &Component,
) -> Result<Linked, LoadError> {
    let component_type = component.component_type();
    for (name, _) in component_type.imports(engine) {
        if !import_allowed(name) {
            return Err(LoadError::ForbiddenImport(name.to_string()));
        }
    }
    let instance_pre = linker
        .instantiate_pre(component)
        .map_err(|err| LoadError::ImportMismatch(format!("{err:#}")))?;
    let pre =
        PolicyPre::new(instance_pre).map_err(|err| LoadError::MissingExport(format!("{err:#}")))?;
    let evaluate = component
        .get_export_index(None, "evaluate")
        .ok_or_else(|| LoadError::MissingExport(String::from("no export `evaluate`")))?;
    Ok(Linked { pre, evaluate })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasi_02_and_ward_policy_01_imports_are_allowed() {
        assert!(import_allowed("wasi:cli/environment@0.2.3"));
        assert!(import_allowed("wasi:io/streams@0.2.0"));
        assert!(import_allowed("ward:policy/host@0.1.0"));
        assert!(!import_allowed("wasi:cli/environment@0.3.0"));
        assert!(!import_allowed("wasi:http/outgoing-handler@0.2.0"));
        assert!(!import_allowed("ward:policy/host@0.2.0"));
        assert!(!import_allowed("ward:policy/host"));
        assert!(!import_allowed("acme:exfil/net@1.0.0"));
        assert!(!import_allowed("env"));
    }

    #[test]
    fn preamble_tells_components_from_modules_and_garbage() {
        let component = [b"\0asm".as_slice(), &COMPONENT_VERSION].concat();
        assert!(check_preamble(&component).is_ok());
        let module = [b"\0asm".as_slice(), &[1, 0, 0, 0]].concat();
        assert!(matches!(
            check_preamble(&module),
            Err(LoadError::CoreModule)
        ));
        assert!(matches!(
            check_preamble(b"\0as"),
            Err(LoadError::NotComponent(_))
        ));
        assert!(matches!(
            check_preamble(b"hello world"),
            Err(LoadError::NotComponent(_))
        ));
    }
}
