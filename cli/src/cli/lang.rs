//! Policies written in JavaScript, TypeScript and Python: the toolchains
//! that turn them into `ward:policy` components, installed on first use
//! into a cache, and the builds that run them.
//!
//! A project is one directory with its entry file (`policy.js`,
//! `policy.ts` or `policy.py`, defining `evaluate`) and `cases.yaml`. The
//! build writes everything it generates into `.ward/` inside it: the
//! author SDK and the WIT this `ward` carries, the entry module that
//! adapts the author's `evaluate` to the world's export, and the component
//! (`.ward/policy.wasm`).

use std::fs::{self, File};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context as _;

use super::output::bytes;

/// A language a policy can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// A crate built with cargo for wasm32-wasip2.
    Rust,
    /// An ES module, bundled and componentized with componentize-js.
    JavaScript,
    /// TypeScript: type-checked with tsc, then built as JavaScript.
    TypeScript,
    /// A module componentized with componentize-py.
    Python,
}

impl Lang {
    /// `rust`, `js`, `ts`, `python` (and their long names).
    pub fn parse(text: &str) -> anyhow::Result<Lang> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Lang::Rust,
            "js" | "javascript" => Lang::JavaScript,
            "ts" | "typescript" => Lang::TypeScript,
            "python" | "py" => Lang::Python,
            other => anyhow::bail!("unknown language `{other}`: use rust, js, ts or python"),
        })
    }

    /// The language of the project in `dir`, from the files it holds.
    pub fn detect(dir: &Path) -> anyhow::Result<Lang> {
        let found: Vec<Lang> = [
            ("Cargo.toml", Lang::Rust),
            ("policy.ts", Lang::TypeScript),
            ("policy.js", Lang::JavaScript),
            ("policy.py", Lang::Python),
        ]
        .into_iter()
        .filter(|(file, _)| dir.join(file).is_file())
        .map(|(_, lang)| lang)
        .collect();
        match found.as_slice() {
            [lang] => Ok(*lang),
            [] => anyhow::bail!(
                "`{}` holds no policy: expected Cargo.toml, policy.js, policy.ts or policy.py \
                 (create one with `ward policy new NAME --lang rust|js|ts|python`)",
                dir.display()
            ),
            _ => anyhow::bail!(
                "`{}` holds more than one of Cargo.toml, policy.js, policy.ts and policy.py; \
                 keep the one you build",
                dir.display()
            ),
        }
    }

    /// The file that defines `evaluate`.
    pub fn entry(self) -> &'static str {
        match self {
            Lang::Rust => "src/lib.rs",
            Lang::JavaScript => "policy.js",
            Lang::TypeScript => "policy.ts",
            Lang::Python => "policy.py",
        }
    }

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::JavaScript => "JavaScript",
            Lang::TypeScript => "TypeScript",
            Lang::Python => "Python",
        }
    }
}

// ---- what this `ward` carries ------------------------------------------------

/// The WIT world every policy implements.
const WIT: &str = include_str!("../../../wit/policy.wit");

/// The JavaScript/TypeScript author SDK (`import … from "ward-policy"`).
const JS_SDK: &[(&str, &str)] = &[
    (
        "package.json",
        include_str!("../../../sdk/policy-js/package.json"),
    ),
    ("index.js", include_str!("../../../sdk/policy-js/index.js")),
    (
        "index.d.ts",
        include_str!("../../../sdk/policy-js/index.d.ts"),
    ),
];

/// The Python author SDK (`import ward_policy`).
const PY_SDK: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../../sdk/policy-py/ward_policy/__init__.py"),
    ),
    ("py.typed", ""),
];

/// Versions of the tools a build installs: pinned, so that a build on
/// another machine or next year makes the same component.
const COMPONENTIZE_JS: &str = "0.23.0";
const ESBUILD: &str = "0.25.12";
const TYPESCRIPT: &str = "5.9.3";
const COMPONENTIZE_PY: &str = "0.25.1";
/// componentize-js imports this package without declaring it (it finds the
/// copy npm hoists for jco); installing it by name makes sure it is there.
const PREVIEW2_SHIM: &str = "0.25.0";

/// What componentize-js is told: the world and which WASI features the
/// component does without, so that it imports Ward's `host` interface and
/// nothing a policy has no use for.
const COMPONENTIZE_JS_SCRIPT: &str = r#"// Written by `ward policy build`: componentizes one bundled ES module.
import { componentize } from "@bytecodealliance/componentize-js";
import { readFile, writeFile } from "node:fs/promises";

const [source, witPath, out] = process.argv.slice(2);
const { component } = await componentize(await readFile(source, "utf8"), {
  witPath,
  worldName: "policy",
  disableFeatures: ["stdio", "random", "clocks", "http", "fetch-event"],
});
await writeFile(out, component);
"#;

// ---- the cache -------------------------------------------------------------

/// Where toolchains and compiled code are kept between runs:
/// `$WARD_CACHE_DIR`, else `$XDG_CACHE_HOME/ward`, else `~/.cache/ward`.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("WARD_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("ward"));
    }
    let home = std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .context("no cache directory: set WARD_CACHE_DIR (or HOME)")?;
    Ok(PathBuf::from(home).join(".cache").join("ward"))
}

/// The toolchain `name` in the cache, installed by `install` the first
/// time. Concurrent builds wait for one another's install. The directory
/// counts as installed once it holds the marker written last, so an
/// install that fails or is cut short is redone from scratch (in place: a
/// Python virtual environment cannot be moved once made).
fn toolchain(
    name: &str,
    what: &str,
    install: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    const INSTALLED: &str = ".installed";
    let root = cache_dir()?.join("toolchains");
    let dir = root.join(name);
    if dir.join(INSTALLED).is_file() {
        return Ok(dir);
    }
    fs::create_dir_all(&root).with_context(|| format!("cannot create `{}`", root.display()))?;
    let lock = File::create(root.join(format!("{name}.lock")))
        .with_context(|| format!("cannot lock `{}`", root.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock `{}`", root.display()))?;
    if dir.join(INSTALLED).is_file() {
        return Ok(dir);
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cannot clear `{}`", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    eprintln!(
        "installing {what} into {} (first build only)…",
        dir.display()
    );
    let started = Instant::now();
    install(&dir)?;
    fs::write(dir.join(INSTALLED), what)
        .with_context(|| format!("cannot write into `{}`", dir.display()))?;
    eprintln!(
        "installed {what} in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(dir)
}

/// Runs `command`, all its output going to our stderr (our stdout is
/// the component's path); fails naming `what`.
fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("cannot pass on stderr")?;
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    anyhow::ensure!(status.success(), "{what} failed (see its output above)");
    Ok(())
}

/// The version `program --version` prints, or a message naming what to
/// install.
fn version_of(program: &str, needed_for: &str, install: &str) -> anyhow::Result<String> {
    let output = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    match output {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Ok(if text.is_empty() {
                String::from_utf8_lossy(&out.stderr).trim().to_string()
            } else {
                text
            })
        }
        _ => anyhow::bail!("`{program}` was not found on PATH: {needed_for} needs it; {install}"),
    }
}

/// The major version in `v20.1.0` or `Python 3.11.7`.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let digits = version.trim_start_matches(|c: char| !c.is_ascii_digit());
    let mut parts = digits.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()
        .map(|m| m.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(""))
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    Some((major, minor))
}

fn js_toolchain() -> anyhow::Result<PathBuf> {
    const NEED: &str = "building a JavaScript or TypeScript policy";
    const INSTALL: &str =
        "install Node.js 18 or later with npm (Debian: `apt-get install nodejs npm`)";
    let node = version_of("node", NEED, INSTALL)?;
    anyhow::ensure!(
        major_minor(&node).is_some_and(|(major, _)| major >= 18),
        "Node.js {node} is too old: {NEED} needs 18 or later"
    );
    let name = format!(
        "js-componentize-{COMPONENTIZE_JS}-esbuild-{ESBUILD}-ts-{TYPESCRIPT}-shim-{PREVIEW2_SHIM}"
    );
    let what = format!(
        "the JavaScript toolchain (componentize-js {COMPONENTIZE_JS}, esbuild {ESBUILD}, \
         TypeScript {TYPESCRIPT})"
    );
    toolchain(&name, &what, |dir| {
        version_of("npm", NEED, INSTALL)?;
        fs::write(
            dir.join("package.json"),
            "{\"name\": \"ward-js-toolchain\", \"private\": true, \"type\": \"module\"}\n",
        )?;
        run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--save-exact"])
                .arg(format!(
                    "@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"
                ))
                .arg(format!("esbuild@{ESBUILD}"))
                .arg(format!("typescript@{TYPESCRIPT}"))
                .arg(format!("@bytecodealliance/preview2-shim@{PREVIEW2_SHIM}"))
                .current_dir(dir),
            "npm install",
        )
    })
}

fn python_toolchain() -> anyhow::Result<PathBuf> {
    const NEED: &str = "building a Python policy";
    const INSTALL: &str =
        "install Python 3.10 or later with venv (Debian: `apt-get install python3 python3-venv`)";
    let python = std::env::var("WARD_PYTHON").unwrap_or_else(|_| String::from("python3"));
    let version = version_of(&python, NEED, INSTALL)?;
    anyhow::ensure!(
        major_minor(&version).is_some_and(|v| v >= (3, 10)),
        "{version} is too old: {NEED} needs Python 3.10 or later"
    );
    let name = format!("python-componentize-py-{COMPONENTIZE_PY}");
    let what = format!("the Python toolchain (componentize-py {COMPONENTIZE_PY})");
    toolchain(&name, &what, |dir| {
        run(
            Command::new(&python).args(["-m", "venv"]).arg(dir),
            &format!("`{python} -m venv` ({INSTALL})"),
        )?;
        run(
            Command::new(dir.join("bin").join("pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("componentize-py=={COMPONENTIZE_PY}")),
            "pip install componentize-py",
        )
    })
}

/// Installs the toolchain of `lang` when missing; returns where it is
/// (`None` for Rust, whose toolchain is rustup's).
pub fn setup(lang: Lang) -> anyhow::Result<Option<PathBuf>> {
    match lang {
        Lang::Rust => Ok(None),
        Lang::JavaScript | Lang::TypeScript => js_toolchain().map(Some),
        Lang::Python => python_toolchain().map(Some),
    }
}

// ---- builds ----------------------------------------------------------------

/// Writes `files` into `dir`, replacing what an earlier build left.
fn write_all(dir: &Path, files: &[(&str, &str)]) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    for (name, text) in files {
        let path = dir.join(name);
        fs::write(&path, text).with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(())
}

/// `.ward/` in the project, with the WIT and `sdk` written into `sdk_dir`.
fn prepare(project: &Path, sdk_dir: &str, sdk: &[(&str, &str)]) -> anyhow::Result<PathBuf> {
    let work = project.join(".ward");
    write_all(&work.join("wit"), &[("policy.wit", WIT)])?;
    write_all(&work.join(sdk_dir), sdk)?;
    Ok(work)
}

/// A path as a JavaScript or Python string literal (JSON's escapes are
/// valid in both).
fn literal(path: &Path) -> anyhow::Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("`{}` is not valid UTF-8", path.display()))?;
    Ok(serde_json::Value::from(text).to_string())
}

/// Builds the policy in `project` (a JavaScript, TypeScript or Python
/// one) and returns the component's path.
pub fn build(project: &Path, lang: Lang) -> anyhow::Result<PathBuf> {
    let project = project
        .canonicalize()
        .with_context(|| format!("no directory `{}`", project.display()))?;
    let entry = project.join(lang.entry());
    anyhow::ensure!(
        entry.is_file(),
        "no `{}` in `{}`",
        lang.entry(),
        project.display()
    );
    let started = Instant::now();
    let wasm = match lang {
        Lang::Rust => anyhow::bail!("a Rust policy is built with cargo"),
        Lang::JavaScript | Lang::TypeScript => build_js(&project, &entry, lang)?,
        Lang::Python => build_python(&project)?,
    };
    let size = fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "built {} ({}) in {:.1} s",
        wasm.display(),
        bytes(size),
        started.elapsed().as_secs_f64()
    );
    Ok(wasm)
}

fn build_js(project: &Path, entry: &Path, lang: Lang) -> anyhow::Result<PathBuf> {
    let tools = js_toolchain()?;
    let work = prepare(project, "ward-policy", JS_SDK)?;
    let modules = tools.join("node_modules");
    if lang == Lang::TypeScript {
        eprintln!("type-checking {}…", entry.display());
        // The project's own settings when it has them (`ward policy new`
        // writes them); these otherwise.
        let mut tsconfig = project.join("tsconfig.json");
        let config = serde_json::json!({
            "compilerOptions": {
                "strict": true,
                "noEmit": true,
                "target": "es2022",
                "module": "es2022",
                "moduleResolution": "bundler",
                "lib": ["es2022"],
                "types": [],
                "skipLibCheck": true,
                "paths": {"ward-policy": ["./ward-policy/index.d.ts"]},
            },
            "files": [entry],
        });
        if !tsconfig.is_file() {
            tsconfig = work.join("tsconfig.json");
            fs::write(&tsconfig, serde_json::to_string_pretty(&config)?)?;
        }
        run(
            Command::new("node")
                .arg(modules.join("typescript").join("bin").join("tsc"))
                .arg("-p")
                .arg(&tsconfig)
                .arg("--pretty")
                .arg("false"),
            "the TypeScript check",
        )?;
    }
    let generated = work.join("entry.js");
    fs::write(
        &generated,
        format!(
            "// Written by `ward policy build`: the component's export.\n\
             import * as policy from {};\n\
             import {{ __evaluate }} from \"ward-policy\";\n\
             export function evaluate(request) {{\n  return __evaluate(policy.evaluate, request);\n}}\n",
            literal(entry)?
        ),
    )?;
    let bundle = work.join("bundle.js");
    eprintln!("bundling {}…", entry.display());
    run(
        Command::new(modules.join(".bin").join("esbuild"))
            .arg(&generated)
            .args([
                "--bundle",
                "--format=esm",
                "--platform=neutral",
                "--target=es2022",
                "--log-level=warning",
                "--external:ward:*",
            ])
            .arg(format!(
                "--alias:ward-policy={}",
                work.join("ward-policy").display()
            ))
            .arg(format!("--outfile={}", bundle.display())),
        "esbuild",
    )?;
    // Written whole under another name and renamed into place: a build
    // running beside this one never reads half of it.
    let script = tools.join("componentize.mjs");
    let partial = tools.join(format!("componentize.mjs.{}", std::process::id()));
    fs::write(&partial, COMPONENTIZE_JS_SCRIPT)?;
    fs::rename(&partial, &script)?;
    let wasm = work.join("policy.wasm");
    eprintln!("componentizing with componentize-js {COMPONENTIZE_JS}…");
    run(
        Command::new("node")
            .arg(&script)
            .arg(&bundle)
            .arg(work.join("wit"))
            .arg(&wasm),
        "componentize-js",
    )?;
    Ok(wasm)
}

fn build_python(project: &Path) -> anyhow::Result<PathBuf> {
    let tools = python_toolchain()?;
    let work = prepare(project, "ward_policy", PY_SDK)?;
    fs::write(
        work.join("ward_entry.py"),
        "# Written by `ward policy build`: the component's export.\n\
         import wit_world\n\
         import policy as _policy\n\
         import ward_policy\n\n\n\
         class WitWorld(wit_world.WitWorld):\n    \
             def evaluate(self, request):\n        \
                 return ward_policy._evaluate(getattr(_policy, \"evaluate\", None), request)\n",
    )?;
    let wasm = work.join("policy.wasm");
    eprintln!("componentizing with componentize-py {COMPONENTIZE_PY}…");
    run(
        Command::new(tools.join("bin").join("componentize-py"))
            .arg("-d")
            .arg(work.join("wit"))
            .args(["-w", "policy", "componentize", "--stub-wasi", "-p"])
            .arg(project)
            .arg("-p")
            .arg(&work)
            .args(["ward_entry", "-o"])
            .arg(&wasm),
        "componentize-py",
    )?;
    // componentize-py names no language; Ward records the one the
    // component's producers section names.
    let mut component = fs::read(&wasm)?;
    component.extend(producers_section("Python"));
    fs::write(&wasm, component)?;
    Ok(wasm)
}

/// A component-level custom section `producers` (the WebAssembly tool
/// conventions) naming `language` and this `ward` as the tool that
/// processed the component. Appended to a component, it is its last
/// section.
fn producers_section(language: &str) -> Vec<u8> {
    fn leb(out: &mut Vec<u8>, mut value: usize) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn name(out: &mut Vec<u8>, text: &str) {
        leb(out, text.len());
        out.extend_from_slice(text.as_bytes());
    }
    let mut payload = Vec::new();
    name(&mut payload, "producers");
    leb(&mut payload, 2);
    for (field, value, version) in [
        ("language", language, ""),
        ("processed-by", "ward", env!("CARGO_PKG_VERSION")),
    ] {
        name(&mut payload, field);
        leb(&mut payload, 1);
        name(&mut payload, value);
        name(&mut payload, version);
    }
    let mut section = vec![0];
    leb(&mut section, payload.len());
    section.extend(payload);
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_what_tools_print() {
        assert_eq!(major_minor("v20.20.2"), Some((20, 20)));
        assert_eq!(major_minor("Python 3.11.7"), Some((3, 11)));
        assert_eq!(major_minor("Python 3.10rc1"), Some((3, 10)));
        assert_eq!(major_minor("nothing"), None);
    }

    #[test]
    fn the_producers_section_names_the_language() {
        // The smallest component: its preamble, then the section.
        let mut component = b"\0asm\x0d\0\x01\0".to_vec();
        component.extend(producers_section("Python"));
        assert_eq!(
            ward::sandbox::component_language(&component).as_deref(),
            Some("Python")
        );
    }

    #[test]
    fn languages_have_short_and_long_names() {
        assert_eq!(Lang::parse("ts").ok(), Some(Lang::TypeScript));
        assert_eq!(Lang::parse("Python").ok(), Some(Lang::Python));
        assert!(Lang::parse("cobol").is_err());
    }

    #[test]
    fn the_sdks_carry_the_same_wit_as_ward() {
        let js = include_str!("../../../sdk/policy-js/wit/policy.wit");
        let py = include_str!("../../../sdk/policy-py/wit/policy.wit");
        assert_eq!(js, WIT);
        assert_eq!(py, WIT);
    }
}
