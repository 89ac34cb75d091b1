//! Compiled policy code on disk, so that a restart does not recompile.
//!
//! One file per module: `<dir>/<engine hash>/<module sha256>.cwasm`. The
//! engine hash changes whenever wasmtime or its settings change, so stale
//! artifacts are never offered to an engine that cannot run them. Each file
//! carries the sha256 of its own contents, and only files that check out are
//! deserialized: a torn or altered file is recompiled, not loaded.

use std::fs::{self, File};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"WARDCW01";
const HEADER_LEN: usize = MAGIC.len() + 32;

pub(super) struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub(super) fn open(root: &Path, engine: &Engine) -> std::io::Result<Self> {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let dir = root.join(format!("{:016x}", hasher.finish()));
        fs::create_dir_all(&dir)?;
        Ok(ArtifactCache { dir })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.cwasm"))
    }

    /// The cached compilation of module `sha256`, when there is a sound one.
    pub(super) fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let file = fs::read(self.path(sha256)).ok()?;
        let (header, artifact) = file.split_at_checked(HEADER_LEN)?;
        let (magic, digest) = header.split_at(MAGIC.len());
        if magic != MAGIC || Sha256::digest(artifact).as_slice() != digest {
            tracing::warn!(sha256, "discarding a damaged compiled-code cache entry");
            let _ = fs::remove_file(self.path(sha256));
            return None;
        }
        deserialize(engine, artifact)
    }

    /// Whether compiled code of module `sha256` is on disk (not checked).
    pub(super) fn holds(&self, sha256: &str) -> bool {
        self.path(sha256).is_file()
    }

    /// Stores the compilation of module `sha256`: written to a temporary
    /// file, synced, then renamed into place so readers never see half.
    pub(super) fn put(&self, sha256: &str, component: &Component) {
        let result = component
            .serialize()
            .map_err(|err| std::io::Error::other(err.to_string()))
            .and_then(|artifact| {
                let tmp = self
                    .dir
                    .join(format!("{sha256}.{}.tmp", std::process::id()));
                let mut file = File::create(&tmp)?;
                file.write_all(MAGIC)?;
                file.write_all(&Sha256::digest(&artifact))?;
                file.write_all(&artifact)?;
                file.sync_all()?;
                fs::rename(&tmp, self.path(sha256))?;
                File::open(&self.dir)?.sync_all()
            });
        if let Err(err) = result {
            tracing::warn!(sha256, %err, "could not write compiled code to the cache");
        }
    }

    /// Removes the compiled code of a module nobody uses any more.
    pub(super) fn remove(&self, sha256: &str) {
        let _ = fs::remove_file(self.path(sha256));
    }
}

fn deserialize(engine: &Engine, artifact: &[u8]) -> Option<Component> {
    // The artifact was written by `ArtifactCache::put` from our own
    // compilation, under a directory keyed by this engine's compatibility
    // hash, and its checksum was just verified.
    match load_artifact(engine, artifact) {
        Ok(component) => Some(component),
        Err(err) => {
            tracing::warn!(%err, "cached compiled code is unusable; recompiling");
            None
        }
    }
}

/// Loads compiled code into `engine`. Only for artifacts this process
/// produced: read back from this cache, or made a moment ago by the quick
/// engine (`Sandbox::compile`).
#[allow(unsafe_code)]
pub(super) fn load_artifact(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` runs native code from its input, so
    // the input must be an artifact wasmtime produced; both callers above
    // guarantee that. wasmtime additionally checks that the settings the
    // artifact records are compatible with `engine`'s.
    unsafe { Component::deserialize(engine, artifact) }
}
