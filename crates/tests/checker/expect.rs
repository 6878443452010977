//! The `expect` command: computes the report and checks expectations against it.
//! `K=V` exact, `K~SUB` contains, `K!` absent, `K?` present. Keys and values are
//! written unescaped on the command line and compared in the report's escaped form.

use crate::{escape, raw, report, usage};
use std::io::{self, Write as _};

/// (key, operator, escaped value); the value is empty for `!` and `?`.
fn parse(arg: &str) -> Option<(&str, char, String)> {
    let (key, op, value) = match arg.find(['=', '~']) {
        Some(at) => (&arg[..at], arg[at..].chars().next()?, &arg[at + 1..]),
        None => match arg.strip_suffix('!') {
            Some(key) => (key, '!', ""),
            None => (arg.strip_suffix('?')?, '?', ""),
        },
    };
    (!key.is_empty()).then(|| (key, op, escape(value.as_bytes(), false)))
}

pub fn run(args: &[String]) -> i32 {
    let mut wants = Vec::new();
    for arg in args {
        match parse(arg) {
            Some(want) => wants.push(want),
            None => {
                return usage(&format!(
                    "bad expectation {arg:?}: use K=V, K~SUB, K! or K?"
                ));
            }
        }
    }
    if wants.is_empty() {
        return usage("expect needs at least one expectation");
    }
    let report = report::collect();
    let mut failures = String::new();
    for (key, op, value) in &wants {
        let got = report.get(key);
        let ok = match (op, got) {
            ('=', Some(got)) => got == value,
            ('~', Some(got)) => got.contains(value.as_str()),
            ('!', None) | ('?', Some(_)) => true,
            _ => false,
        };
        if !ok {
            let wanted = match op {
                '!' => "absent".to_string(),
                '?' => "present".to_string(),
                _ => format!("{op}{value}"),
            };
            let got = got.map_or_else(|| "absent".to_string(), |g| format!("={g}"));
            let key = escape(key.as_bytes(), true);
            failures.push_str(&format!("expect {key}: wanted {wanted}, got {got}\n"));
        }
    }
    if failures.is_empty() {
        raw(b"ok\n");
        0
    } else {
        let _ = io::stderr().write_all(failures.as_bytes());
        1
    }
}
