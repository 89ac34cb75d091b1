//! Turning uploaded bytes into a policy that is ready to instantiate:
//! size check, compile (bounded in time, or taken from the disk cache),
//! import check against what Ward offers, and type check of `evaluate`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use wasmtime::component::ComponentExportIndex;

use super::bindings::PolicyPre;
use super::host::StoreState;
use super::{LoadError, Sandbox};

/// A policy module validated, compiled and type-checked against the
/// `ward:policy` world. Cheap to share: evaluations instantiate it afresh.
pub struct LoadedPolicy {
    pub(super) sha256: String,
    pub(super) size: usize,
    pub(super) pre: PolicyPre<StoreState>,
    /// Where `evaluate` is among the component's exports.
    pub(super) evaluate: ComponentExportIndex,
    pub(super) used: super::resident::UseFlag,
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
    /// again. Blocks the calling thread while compiling: call it from a
    /// blocking task.
    pub fn load(&self, bytes: &[u8], max_bytes: usize) -> Result<Arc<LoadedPolicy>, LoadError> {
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

        let component = match self
            .cache
            .as_ref()
            .and_then(|c| c.get(&self.engine, &sha256))
        {
            Some(component) => {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                component
            }
            None => {
                let component = self.compile(bytes)?;
                self.stats.compiled.fetch_add(1, Ordering::Relaxed);
                if let Some(cache) = &self.cache {
                    cache.put(&sha256, &component);
                }
                component
            }
        };

        let policy = Arc::new(self.link(component, sha256, bytes.len())?);
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
        let policy = Arc::new(self.link(component, sha256.to_string(), size).ok()?);
        self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
        self.remember(&policy);
        Some(policy)
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        let in_flight = Arc::clone(&self.compiles_in_flight);
        if in_flight.fetch_add(1, Ordering::AcqRel) >= self.config.max_concurrent_compiles {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(LoadError::Busy);
        }
        let (done, result) = mpsc::channel();
        let engine = self.engine.clone();
        let bytes = bytes.to_vec();
        let spawned = thread::Builder::new()
            .name("ward-compile".into())
            .spawn(move || {
                let compiled = Component::new(&engine, &bytes);
                in_flight.fetch_sub(1, Ordering::AcqRel);
                let _ = done.send(compiled);
            });
        if let Err(err) = spawned {
            self.compiles_in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(LoadError::Internal(format!("cannot start compiler: {err}")));
        }
        // A compile that overruns is abandoned: its thread finishes in the
        // background (counted against `max_concurrent_compiles` until then)
        // and its result is dropped.
        match result.recv_timeout(self.config.compile_timeout) {
            Ok(Ok(component)) => Ok(component),
            Ok(Err(err)) => Err(LoadError::Invalid(format!("{err:#}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(LoadError::CompileTimeout {
                limit_ms: u64::try_from(self.config.compile_timeout.as_millis())
                    .unwrap_or(u64::MAX),
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
    ) -> Result<LoadedPolicy, LoadError> {
        let component_type = component.component_type();
        for (name, _) in component_type.imports(&self.engine) {
            if !import_allowed(name) {
                return Err(LoadError::ForbiddenImport(name.to_string()));
            }
        }
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|err| LoadError::ImportMismatch(format!("{err:#}")))?;
        let pre = PolicyPre::new(instance_pre)
            .map_err(|err| LoadError::MissingExport(format!("{err:#}")))?;
        let evaluate = component
            .get_export_index(None, "evaluate")
            .ok_or_else(|| LoadError::MissingExport(String::from("no export `evaluate`")))?;
        Ok(LoadedPolicy {
            sha256,
            size,
            pre,
            evaluate,
            used: Default::default(),
        })
    }
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
