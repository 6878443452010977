//! `process` (oci-spec) to [`ProcessConfig`]: shared by `config.json` and `exec --process`.
//!
//! Owns the checks on the process itself: arguments, environment, working directory, user,
//! terminal size, rlimits, capabilities, `noNewPrivileges`, `oomScoreAdj`. Whether the
//! process can actually run (the program exists, the user may do what is asked) is found
//! out when it starts, not here.

use std::collections::BTreeSet;

use oci_spec::runtime::{Capabilities as OciCapabilities, LinuxCapabilities, Process};

use super::error::{FieldError, Problem, SpecError, index, join, quoted};
use super::paths::no_nul;
use crate::config::{
    Capabilities, ProcessConfig, Rlimit, RlimitResource, UserConfig, capability_number,
};

/// Converts an OCI `process` object. `field_prefix` is prepended to field paths in errors:
/// `"process"` for the process in `config.json`, `""` for a process file of its own. The
/// errors carry no file name; [`super::parse_config`] and [`super::parse_process`] add it.
pub fn process_from_oci(p: &Process, field_prefix: &str) -> Result<ProcessConfig, SpecError> {
    convert(p, field_prefix).map_err(FieldError::without_file)
}

pub(crate) fn convert(p: &Process, prefix: &str) -> Result<ProcessConfig, FieldError> {
    let field = |name: &str| join(prefix, name);

    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(FieldError::new(
            field("args"),
            Problem::Missing {
                expected: "at least one argument (the program to run)",
            },
        ));
    }
    for (i, arg) in args.iter().enumerate() {
        no_nul(&index(&field("args"), i), arg)?;
    }
    if args.first().is_some_and(|program| program.is_empty()) {
        return Err(FieldError::invalid(
            index(&field("args"), 0),
            "the program to run",
            quoted(""),
        ));
    }

    let env = p.env().clone().unwrap_or_default();
    for (i, entry) in env.iter().enumerate() {
        let at = index(&field("env"), i);
        no_nul(&at, entry)?;
        if !entry.contains('=') {
            return Err(FieldError::invalid(at, "KEY=value", quoted(entry)));
        }
    }

    let cwd = p.cwd();
    let cwd_text = cwd.to_string_lossy();
    no_nul(&field("cwd"), &cwd_text)?;
    if !cwd.is_absolute() {
        return Err(FieldError::invalid(
            field("cwd"),
            "an absolute path inside the container",
            quoted(&cwd_text),
        ));
    }

    let console_size = match p.console_size() {
        Some(size) => Some((
            fit_u16(&field("consoleSize.height"), size.height())?,
            fit_u16(&field("consoleSize.width"), size.width())?,
        )),
        None => None,
    };

    let oom_score_adj = p.oom_score_adj();
    if let Some(adj) = oom_score_adj
        && !(-1000..=1000).contains(&adj)
    {
        return Err(FieldError::invalid(
            field("oomScoreAdj"),
            "a value from -1000 to 1000",
            adj,
        ));
    }

    Ok(ProcessConfig {
        args,
        env,
        cwd: cwd.clone(),
        user: user(p, prefix)?,
        terminal: p.terminal().unwrap_or(false),
        console_size,
        rlimits: rlimits(p, prefix)?,
        capabilities: match p.capabilities() {
            Some(caps) => capabilities(caps, &field("capabilities"))?,
            None => Capabilities::default(),
        },
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        oom_score_adj,
    })
}

fn fit_u16(field: &str, value: u64) -> Result<u16, FieldError> {
    u16::try_from(value).map_err(|_| FieldError::invalid(field, "a value up to 65535", value))
}

fn user(p: &Process, prefix: &str) -> Result<UserConfig, FieldError> {
    let user = p.user();
    let umask = user.umask();
    if let Some(mask) = umask
        && mask > 0o777
    {
        return Err(FieldError::invalid(
            join(prefix, "user.umask"),
            "a umask up to 0777 (511)",
            mask,
        ));
    }
    Ok(UserConfig {
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask,
    })
}

fn rlimits(p: &Process, prefix: &str) -> Result<Vec<Rlimit>, FieldError> {
    let base = join(prefix, "rlimits");
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, rlimit) in p.rlimits().iter().flatten().enumerate() {
        let at = index(&base, i);
        let name = rlimit.typ().to_string();
        let resource = RlimitResource::from_name(&name).ok_or_else(|| {
            FieldError::new(
                join(&at, "type"),
                Problem::Unknown {
                    kind: "rlimit type",
                    name: name.clone(),
                },
            )
        })?;
        if !seen.insert(resource) {
            return Err(FieldError::new(
                join(&at, "type"),
                Problem::Duplicate {
                    what: format!("rlimit {}", resource.name()),
                },
            ));
        }
        let (soft, hard) = (rlimit.soft(), rlimit.hard());
        if soft > hard {
            return Err(FieldError::new(at, Problem::SoftAboveHard { soft, hard }));
        }
        out.push(Rlimit {
            resource,
            soft,
            hard,
        });
    }
    Ok(out)
}

fn capabilities(caps: &LinuxCapabilities, base: &str) -> Result<Capabilities, FieldError> {
    let sets = Capabilities {
        bounding: mask(caps.bounding(), &join(base, "bounding"))?,
        effective: mask(caps.effective(), &join(base, "effective"))?,
        inheritable: mask(caps.inheritable(), &join(base, "inheritable"))?,
        permitted: mask(caps.permitted(), &join(base, "permitted"))?,
        ambient: mask(caps.ambient(), &join(base, "ambient"))?,
    };
    // The kernel only lets a capability be ambient if it is permitted and inheritable.
    // runc drops the others silently; saying which is wrong is kinder than a container
    // that runs with fewer capabilities than its configuration lists.
    let stray = sets.ambient & !(sets.permitted & sets.inheritable);
    if stray != 0 {
        let number = stray.trailing_zeros() as u8;
        return Err(FieldError::new(
            join(base, "ambient"),
            Problem::Invalid {
                expected: "ambient capabilities that are also in permitted and inheritable".into(),
                found: crate::config::capability_name(number),
            },
        ));
    }
    Ok(sets)
}

fn mask(set: &Option<OciCapabilities>, field: &str) -> Result<u64, FieldError> {
    let mut bits = 0u64;
    for cap in set.iter().flatten() {
        // oci-spec's names are the kernel's without the `CAP_` prefix.
        let name = cap.to_string();
        let number = capability_number(&name)
            .filter(|n| *n < 64)
            .ok_or_else(|| {
                FieldError::new(
                    field,
                    Problem::Unknown {
                        kind: "capability",
                        name,
                    },
                )
            })?;
        bits |= 1u64 << number;
    }
    Ok(bits)
}

#[cfg(test)]
mod ambient_tests {
    use super::*;

    fn caps(json: &str) -> Result<Capabilities, FieldError> {
        let c: LinuxCapabilities = serde_json::from_str(json).expect("capabilities json");
        capabilities(&c, "process.capabilities")
    }

    #[test]
    fn ambient_capabilities_must_be_permitted_and_inheritable() {
        let ok =
            caps(r#"{"permitted":["CAP_KILL"],"inheritable":["CAP_KILL"],"ambient":["CAP_KILL"]}"#)
                .expect("valid ambient set");
        assert_eq!(ok.ambient, 1 << 5);
        let err = caps(r#"{"permitted":["CAP_KILL"],"ambient":["CAP_KILL"]}"#)
            .expect_err("ambient without inheritable");
        let text = err.without_file().to_string();
        assert!(
            text.contains("process.capabilities.ambient") && text.contains("CAP_KILL"),
            "{text}"
        );
    }
}
