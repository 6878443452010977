//! moor-checker: runs inside a container made by moor's runtime and reports, from the
//! inside, what the runtime promised. It is built as a fully static binary because the
//! container's root filesystem has no C library.
//!
//! ```text
//! moor-checker report                      key=value lines, sorted
//! moor-checker expect K=V K~SUB K! K?      "ok", or mismatches on stderr and exit 1
//! moor-checker probe KIND ARGS...          probe.KIND=ok | probe.KIND=ERRNO
//! moor-checker probe open /dev/null r -- report      commands chain with "--"
//! ```
//!
//! Output escaping: `\\`, `\n`, `\r`, `\t`, and `\xNN` for other control bytes and
//! invalid UTF-8; in keys `=` is written `\x3d`, so the first `=` always ends the key.
//! It deliberately has no `main` from std's runtime: that would reopen closed fds 0-2 on
//! /dev/null and ignore SIGPIPE, both things the report is meant to observe.
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod exe_hunt;
mod expect;
mod probe;
mod report;
mod sys;

use std::ffi::{c_char, c_int};
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStringExt;

const USAGE: &str =
    "usage: moor-checker report | expect K=V|K~SUB|K!|K?... | probe KIND ARGS... [-- ...]";

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = run(&args);
    flush();
    code
}

/// Runs each `--`-separated command in turn, stopping at the first non-zero status.
fn run(args: &[String]) -> c_int {
    if args.is_empty() {
        return usage(USAGE);
    }
    for command in args.split(|a| a == "--") {
        let code = match command.split_first() {
            Some((verb, rest)) if verb == "report" && rest.is_empty() => {
                report::collect().print();
                0
            }
            Some((verb, rest)) if verb == "expect" => expect::run(rest),
            Some((verb, rest)) if verb == "probe" => probe::run(rest),
            _ => usage(USAGE),
        };
        if code != 0 {
            return code;
        }
    }
    0
}

/// Reports bad usage on stderr; returns the exit status for it.
pub fn usage(msg: &str) -> c_int {
    let _ = writeln!(io::stderr(), "moor-checker: {msg}");
    2
}

/// Prints one `key=value` line, escaping both sides.
pub fn emit(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
    let line = format!(
        "{}={}\n",
        escape(key.as_ref(), true),
        escape(value.as_ref(), false)
    );
    raw(line.as_bytes());
}

/// Writes bytes to stdout as they are; a closed or broken stdout is not our failure.
pub fn raw(bytes: &[u8]) {
    let _ = io::stdout().lock().write_all(bytes);
}

/// A value, or `?error:<ERRNO or message>` in its place.
pub fn show<V: AsRef<[u8]>>(value: io::Result<V>) -> Vec<u8> {
    match value {
        Ok(v) => v.as_ref().to_vec(),
        Err(e) => error_value(&e).into_bytes(),
    }
}

/// A symlink's target as bytes.
pub fn link(path: impl AsRef<std::path::Path>) -> io::Result<Vec<u8>> {
    std::fs::read_link(path).map(|t| t.into_os_string().into_vec())
}

pub fn error_value(e: &io::Error) -> String {
    format!("?error:{}", sys::error_name(e))
}

pub fn flush() {
    let _ = io::stdout().flush();
}

/// Escapes so that one value is one line and one key holds no `=`.
pub fn escape(bytes: &[u8], key: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '=' if key => out.push_str("\\x3d"),
                c if c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}
