//! `rcs web-setup --dest DIR`: writes the browser package (`DIR/remote-cache-sync/`: package.json,
//! the page-side `remote-cache.js`, `worker.js`, `index.d.ts`, and wasm-bindgen's `.js`/`.wasm`)
//! and an example page (a todo list syncing with `rcs serve`).
//!
//! The JavaScript files are part of this binary. The `.wasm` is built: from a source checkout
//! (the one this binary was built from, or `--source`), `rcs web-setup` runs `cargo build
//! -p remote-cache-sync-web --target wasm32-unknown-unknown --release` and `wasm-bindgen
//! --target web`, after checking that what they need is installed (and naming what is not).
//! `--wasm-pkg DIR` takes an already built wasm-bindgen output instead. `--profile dev` builds
//! without optimising the crate itself (faster to build, slower and larger: for tests).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Arguments of `rcs web-setup`.
#[derive(clap::Args)]
pub struct Args {
    /// Where to write the package (`DEST/remote-cache-sync/`) and the example page.
    #[arg(long)]
    pub dest: PathBuf,
    /// A source checkout of remote-cache-sync to build the wasm from (default: the one this
    /// `rcs` was built from, when it is still there).
    #[arg(long, conflicts_with = "wasm_pkg")]
    pub source: Option<PathBuf>,
    /// A directory with wasm-bindgen's output for remote-cache-sync-web (`--target web`):
    /// skips the build.
    #[arg(long)]
    pub wasm_pkg: Option<PathBuf>,
    /// The cargo profile of the wasm build: `release` (what to ship) or `dev` (builds faster and
    /// shares its dependencies with the browser test build; for tests).
    #[arg(long, value_enum, default_value_t = WasmProfile::Release)]
    pub profile: WasmProfile,
    /// The remote the example page syncs with by default (`?remote=` overrides it).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub remote: String,
    /// The token the example page sends by default (`?token=` overrides it).
    #[arg(long, default_value = "dev-token")]
    pub token: String,
}

/// The cargo profile `rcs web-setup` builds the wasm with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WasmProfile {
    /// `cargo build --release`, without debug info: the package to ship.
    #[default]
    Release,
    /// `cargo build` (the workspace's dev profile optimises dependencies at level 2).
    Dev,
}

impl WasmProfile {
    /// The folder under `target/wasm32-unknown-unknown/` cargo writes this profile to.
    fn dir(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Dev => "debug",
        }
    }
}

/// The package's own files, kept in the web crate's `js/` folder.
const PACKAGE_FILES: [(&str, &str); 4] = [
    (
        "package.json",
        include_str!("../../remote-cache-sync-web/js/package.json"),
    ),
    (
        "remote-cache.js",
        include_str!("../../remote-cache-sync-web/js/remote-cache.js"),
    ),
    (
        "worker.js",
        include_str!("../../remote-cache-sync-web/js/worker.js"),
    ),
    (
        "index.d.ts",
        include_str!("../../remote-cache-sync-web/js/index.d.ts"),
    ),
];

/// wasm-bindgen's output files for the web crate.
const BINDGEN_FILES: [&str; 4] = [
    "remote_cache_sync_web.js",
    "remote_cache_sync_web.d.ts",
    "remote_cache_sync_web_bg.wasm",
    "remote_cache_sync_web_bg.wasm.d.ts",
];

/// The example page.
const EXAMPLE_FILES: [(&str, &str); 3] = [
    ("index.html", include_str!("web_example/index.html")),
    ("app.js", include_str!("web_example/app.js")),
    ("README.md", include_str!("web_example/README.md")),
];

/// The package directory inside `dest`.
pub const PACKAGE_DIR: &str = "remote-cache-sync";

pub async fn run(args: Args) -> anyhow::Result<()> {
    let dest = &args.dest;
    let pkg = dest.join(PACKAGE_DIR);
    write_package(
        &pkg,
        args.source.as_deref(),
        args.wasm_pkg.as_deref(),
        args.profile,
    )?;
    for (name, text) in EXAMPLE_FILES {
        write(&dest.join(name), text)?;
    }
    let config = format!(
        "// Written by `rcs web-setup`: the example's defaults (the page's ?remote= and ?token= \
         override them).\nexport const REMOTE = {};\nexport const TOKEN = {};\n",
        serde_json::to_string(&args.remote)?,
        serde_json::to_string(&args.token)?
    );
    write(&dest.join("config.js"), &config)?;
    let wasm = pkg.join("remote_cache_sync_web_bg.wasm");
    let size = std::fs::metadata(&wasm)?.len();
    println!("package: {}", pkg.display());
    println!("example: {}", dest.join("index.html").display());
    println!("wasm_bytes: {size}");
    println!(
        "serve it: python3 -m http.server -b 127.0.0.1 -d {} 8000, then \
         rcs serve --cors-origin http://127.0.0.1:8000 ...",
        dest.display()
    );
    Ok(())
}

/// Writes the npm-shaped package into `pkg`: wasm-bindgen's output copied from `wasm_pkg`, or
/// built from the checkout `source` (default: the one this binary was built from), then the
/// package's own JavaScript files.
pub fn write_package(
    pkg: &Path,
    source: Option<&Path>,
    wasm_pkg: Option<&Path>,
    profile: WasmProfile,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(pkg).with_context(|| format!("cannot create {}", pkg.display()))?;
    match wasm_pkg {
        Some(dir) => copy_bindgen_output(dir, pkg)?,
        None => {
            let source = match source {
                Some(s) => s.to_path_buf(),
                None => default_source().context(
                    "no source checkout to build the wasm package from: pass --source DIR (a \
                     remote-cache-sync checkout) or --wasm-pkg DIR (wasm-bindgen's output)",
                )?,
            };
            build_package(&source, pkg, profile)?;
        }
    }
    for (name, text) in PACKAGE_FILES {
        write(&pkg.join(name), text)?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The checkout this binary was built from, if it is still a workspace with the web crate.
fn default_source() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .to_path_buf();
    root.join("remote-cache-sync-web/Cargo.toml")
        .is_file()
        .then_some(root)
}

fn copy_bindgen_output(from: &Path, pkg: &Path) -> anyhow::Result<()> {
    for name in BINDGEN_FILES {
        let src = from.join(name);
        std::fs::copy(&src, pkg.join(name)).with_context(|| {
            format!(
                "--wasm-pkg {}: no {name} (give wasm-bindgen's --target web output of \
                 remote-cache-sync-web)",
                from.display()
            )
        })?;
    }
    Ok(())
}

/// The version of a crate in the checkout's Cargo.lock.
fn locked_version(source: &Path, krate: &str) -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(source.join("Cargo.lock"))
        .with_context(|| format!("no Cargo.lock in {}", source.display()))?;
    let needle = format!("name = \"{krate}\"\nversion = \"");
    let start = lock
        .find(&needle)
        .with_context(|| format!("{krate} is not in {}/Cargo.lock", source.display()))?
        + needle.len();
    Ok(lock[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// What a command prints, or `None` when it cannot run.
fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Checks the toolchain, then builds the wasm and runs wasm-bindgen into `pkg`.
fn build_package(source: &Path, pkg: &Path, profile: WasmProfile) -> anyhow::Result<()> {
    let wb_version = locked_version(source, "wasm-bindgen")?;
    let mut missing = Vec::new();
    if output_of("cargo", &["--version"]).is_none() {
        missing.push("cargo (the Rust toolchain)".to_owned());
    }
    let targets = output_of("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !targets.lines().any(|t| t == "wasm32-unknown-unknown") {
        missing.push(
            "the wasm32-unknown-unknown target (rustup target add wasm32-unknown-unknown)".into(),
        );
    }
    if output_of("clang", &["--version"]).is_none() {
        missing.push("clang, which compiles SQLite for wasm (apt-get install clang)".into());
    }
    let want = format!("wasm-bindgen {wb_version}");
    if output_of("wasm-bindgen", &["--version"]).as_deref() != Some(want.as_str()) {
        missing.push(format!(
            "wasm-bindgen {wb_version} (cargo install wasm-bindgen-cli --version {wb_version} \
             --locked)"
        ));
    }
    if !missing.is_empty() {
        bail!(
            "cannot build the wasm package, missing: {} (scripts/test-web.sh installs them all)",
            missing.join("; ")
        );
    }
    let profile_arg = match profile {
        WasmProfile::Release => "--release",
        WasmProfile::Dev => "--profile=dev",
    };
    eprintln!("building remote-cache-sync-web for wasm32 (cargo build {profile_arg}) ...");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| source.join("target"));
    let status = Command::new("cargo")
        .current_dir(source)
        .args([
            "build",
            "-p",
            "remote-cache-sync-web",
            "--target",
            "wasm32-unknown-unknown",
            profile_arg,
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        // The package needs no debug info (wasm-bindgen would drop it anyway).
        .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build of remote-cache-sync-web for wasm32 failed ({status})");
    }
    let wasm = target_dir
        .join("wasm32-unknown-unknown")
        .join(profile.dir())
        .join("remote_cache_sync_web.wasm");
    let status = Command::new("wasm-bindgen")
        .args(["--target", "web", "--out-dir"])
        .arg(pkg)
        .arg(&wasm)
        .status()
        .context("cannot run wasm-bindgen")?;
    if !status.success() {
        bail!("wasm-bindgen failed ({status})");
    }
    Ok(())
}
