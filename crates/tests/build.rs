//! Builds the in-container checker (`checker/main.rs`) as a fully static binary and
//! hands its path to the crate as `MOOR_CHECKER`.
//!
//! It calls rustc directly rather than a nested cargo: the checker uses std only, and a
//! nested cargo would contend with the outer one for the target directory's lock. The
//! binary must be static because container root filesystems carry no C library.

use std::env;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("building moor-checker: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn build() -> Result<(), String> {
    let var = |name: &str| env::var_os(name).ok_or(format!("cargo did not set {name}"));
    let sources = PathBuf::from(var("CARGO_MANIFEST_DIR")?).join("checker");
    let output = PathBuf::from(var("OUT_DIR")?).join("moor-checker");
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());

    println!("cargo:rerun-if-changed={}", sources.display());
    let entries = sources
        .read_dir()
        .map_err(|e| format!("listing {}: {e}", sources.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("listing {}: {e}", sources.display()))?
            .path();
        println!("cargo:rerun-if-changed={}", path.display());
    }

    let mut rustc = Command::new(rustc);
    rustc.args([
        "--edition",
        "2021",
        "--crate-name",
        "moor_checker",
        "--crate-type",
        "bin",
    ]);
    rustc.args([
        "-O",
        "-C",
        "target-feature=+crt-static",
        "-C",
        "panic=abort",
    ]);
    rustc.args(["-C", "debuginfo=0", "-C", "strip=symbols"]);
    // Build for the same target as the tests, with its linker when one is configured.
    if let Some(target) = env::var_os("TARGET") {
        rustc.arg("--target").arg(target);
    }
    if let Some(linker) = env::var_os("RUSTC_LINKER") {
        rustc
            .arg("-C")
            .arg(format!("linker={}", PathBuf::from(linker).display()));
    }
    rustc.arg("-o").arg(&output).arg(sources.join("main.rs"));
    let status = rustc
        .status()
        .map_err(|e| format!("running {rustc:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{rustc:?} failed with {status}"));
    }
    println!("cargo:rustc-env=MOOR_CHECKER={}", output.display());
    Ok(())
}
