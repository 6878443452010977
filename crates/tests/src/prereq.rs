//! Prerequisites of privileged tests.
//!
//! libtest shows a test that returns early as passed, so a test that cannot run here
//! says so on stderr (`skipped: needs …`) and, when `MOOR_TEST_STRICT=1` (as in CI),
//! fails instead: a missing prerequisite in CI is a broken machine, not a green test.

use std::path::{Path, PathBuf};

/// The environment variable that turns skips into failures.
pub const STRICT_VAR: &str = "MOOR_TEST_STRICT";

/// Whether missing prerequisites fail tests.
pub fn strict() -> bool {
    std::env::var(STRICT_VAR).is_ok_and(|v| v == "1")
}

/// Returns `ok`; when false, skips loudly or (strict) panics naming `what`.
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if strict() {
        panic!("missing prerequisite: {what} ({STRICT_VAR}=1 makes this a failure)");
    }
    eprintln!("skipped: needs {what}");
    false
}

/// Running as root.
pub fn root() -> bool {
    // SAFETY: geteuid cannot fail.
    require("root", unsafe { libc::geteuid() } == 0)
}

/// The static busybox from Debian's busybox-static, the base of the test images.
pub fn busybox() -> Option<PathBuf> {
    let path = Path::new("/bin/busybox");
    let ok = path.is_file() && is_static(path);
    require("a static /bin/busybox (apt-get install busybox-static)", ok).then(|| path.into())
}

/// A program on the PATH (`runc`, `hyperfine`…).
pub fn program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    require(&format!("the program {name}"), found.is_some()).then(|| found.unwrap_or_default())
}

/// Whether an ELF file has no interpreter (is statically linked).
pub fn is_static(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[o..o + 8]);
        u64::from_le_bytes(b) as usize
    };
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    (0..phnum).all(|i| {
        let off = phoff + i * phentsize;
        // PT_INTERP = 3
        off + 4 > bytes.len()
            || u32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]]) != 3
    })
}
