//! `mounts` (oci-spec) to [`MountConfig`]: destinations, kinds and fstab-style options.
//!
//! Options are read the way runc reads them: the ones `mount(2)` takes as `MS_*` flags are
//! set or cleared in order (`ro,rw` ends read-write), propagation options become a list
//! applied after mounting, and everything else (`mode=755`, `size=64k`, `newinstance`) is
//! filesystem data. `bind` and `rbind` decide the [`MountKind`] and are not repeated as
//! `MS_BIND`/`MS_REC` in the flags: the kind says it.
//!
//! Not here: whether the source exists, whether the filesystem type is known to this
//! kernel, and the mounting itself.

use std::path::Path;

use oci_spec::runtime::Mount;

use super::error::{FieldError, index, join, quoted};
use super::paths::{container_path, host_path, no_nul};
use crate::config::{MountConfig, MountKind, Propagation};

/// The most filesystem data `mount(2)` accepts in one page, with room to spare.
const MAX_DATA_LEN: usize = 4096;

/// An option that sets or clears `MS_*` flags.
struct FlagOption {
    name: &'static str,
    clear: bool,
    flag: u64,
}

// `c_ulong` is 32 bits on 32-bit ARM, so the casts widen there and do nothing here.
#[allow(clippy::unnecessary_cast)]
const fn set(name: &'static str, flag: libc::c_ulong) -> FlagOption {
    FlagOption {
        name,
        clear: false,
        flag: flag as u64,
    }
}

#[allow(clippy::unnecessary_cast)]
const fn clear(name: &'static str, flag: libc::c_ulong) -> FlagOption {
    FlagOption {
        name,
        clear: true,
        flag: flag as u64,
    }
}

const FLAG_OPTIONS: &[FlagOption] = &[
    set("defaults", 0),
    set("ro", libc::MS_RDONLY),
    clear("rw", libc::MS_RDONLY),
    set("nosuid", libc::MS_NOSUID),
    clear("suid", libc::MS_NOSUID),
    set("nodev", libc::MS_NODEV),
    clear("dev", libc::MS_NODEV),
    set("noexec", libc::MS_NOEXEC),
    clear("exec", libc::MS_NOEXEC),
    set("sync", libc::MS_SYNCHRONOUS),
    clear("async", libc::MS_SYNCHRONOUS),
    set("dirsync", libc::MS_DIRSYNC),
    set("mand", libc::MS_MANDLOCK),
    clear("nomand", libc::MS_MANDLOCK),
    set("noatime", libc::MS_NOATIME),
    clear("atime", libc::MS_NOATIME),
    set("nodiratime", libc::MS_NODIRATIME),
    clear("diratime", libc::MS_NODIRATIME),
    set("relatime", libc::MS_RELATIME),
    clear("norelatime", libc::MS_RELATIME),
    set("strictatime", libc::MS_STRICTATIME),
    clear("nostrictatime", libc::MS_STRICTATIME),
    set("lazytime", libc::MS_LAZYTIME),
    clear("nolazytime", libc::MS_LAZYTIME),
    set("iversion", libc::MS_I_VERSION),
    clear("noiversion", libc::MS_I_VERSION),
    set("silent", libc::MS_SILENT),
    clear("loud", libc::MS_SILENT),
    set("nosymfollow", libc::MS_NOSYMFOLLOW),
];

const PROPAGATION_OPTIONS: &[(&str, Propagation, bool)] = &[
    ("private", Propagation::Private, false),
    ("rprivate", Propagation::Private, true),
    ("shared", Propagation::Shared, false),
    ("rshared", Propagation::Shared, true),
    ("slave", Propagation::Slave, false),
    ("rslave", Propagation::Slave, true),
    ("unbindable", Propagation::Unbindable, false),
    ("runbindable", Propagation::Unbindable, true),
];

/// A propagation name (`rootfsPropagation`, or a mount option) and whether it is recursive.
pub(crate) fn propagation(name: &str) -> Option<(Propagation, bool)> {
    PROPAGATION_OPTIONS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|&(_, p, recursive)| (p, recursive))
}

/// The options of one mount, sorted out.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) flags: u64,
    pub(crate) propagation: Vec<(Propagation, bool)>,
    pub(crate) data: Vec<String>,
    /// `Some(recursive)` when `bind` or `rbind` was given.
    pub(crate) bind: Option<bool>,
}

/// Sorts `options` (the array at `field`) into flags, propagation, data and bind.
pub(crate) fn parse_options(options: &[String], field: &str) -> Result<Options, FieldError> {
    let mut out = Options::default();
    let mut data_len = 0usize;
    for (i, option) in options.iter().enumerate() {
        let at = index(field, i);
        no_nul(&at, option)?;
        if let Some(flag) = FLAG_OPTIONS.iter().find(|f| f.name == option) {
            if flag.clear {
                out.flags &= !flag.flag;
            } else {
                out.flags |= flag.flag;
            }
        } else if let Some(p) = propagation(option) {
            out.propagation.push(p);
        } else if option == "bind" || option == "rbind" {
            let recursive = option == "rbind" || out.bind == Some(true);
            out.bind = Some(recursive);
        } else if option == "remount" {
            return Err(FieldError::invalid(
                at,
                "a mount option other than remount (every entry is a new mount)",
                quoted(option),
            ));
        } else {
            if option.is_empty() || option.contains(',') {
                return Err(FieldError::invalid(
                    at,
                    "one mount option, without commas",
                    quoted(option),
                ));
            }
            data_len += option.len() + 1;
            if data_len > MAX_DATA_LEN {
                return Err(FieldError::invalid(
                    field,
                    format!("at most {MAX_DATA_LEN} bytes of filesystem options"),
                    format!("{data_len} bytes"),
                ));
            }
            out.data.push(option.clone());
        }
    }
    Ok(out)
}

/// Converts every entry of `mounts`, in order.
pub(crate) fn convert(mounts: &[Mount], bundle: &Path) -> Result<Vec<MountConfig>, FieldError> {
    mounts
        .iter()
        .enumerate()
        .map(|(i, m)| convert_one(m, &index("mounts", i), bundle))
        .collect()
}

fn convert_one(m: &Mount, at: &str, bundle: &Path) -> Result<MountConfig, FieldError> {
    let destination = container_path(&join(at, "destination"), m.destination())?;
    let options = parse_options(
        m.options().as_deref().unwrap_or_default(),
        &join(at, "options"),
    )?;
    let fstype = m.typ().as_deref().unwrap_or_default();
    no_nul(&join(at, "type"), fstype)?;

    let kind = if fstype == "bind" || options.bind.is_some() {
        let source_field = join(at, "source");
        let source = m.source().as_deref().ok_or_else(|| {
            FieldError::new(
                &source_field,
                super::error::Problem::Missing {
                    expected: "the host path to bind",
                },
            )
        })?;
        MountKind::Bind {
            source: host_path(&source_field, source, bundle)?,
            recursive: options.bind.unwrap_or(false),
        }
    } else if fstype == "cgroup" || fstype == "cgroup2" {
        MountKind::Cgroup
    } else {
        if !is_fstype(fstype) {
            return Err(FieldError::invalid(
                join(at, "type"),
                "a filesystem type such as tmpfs (lowercase letters, digits, '.', '_', '-')",
                quoted(fstype),
            ));
        }
        let source = m
            .source()
            .as_deref()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| fstype.to_string());
        no_nul(&join(at, "source"), &source)?;
        MountKind::Filesystem {
            fstype: fstype.to_string(),
            source,
        }
    };

    Ok(MountConfig {
        destination,
        kind,
        flags: options.flags,
        propagation: options.propagation,
        data: options.data,
    })
}

fn is_fstype(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(options: &[&str]) -> Options {
        let options: Vec<String> = options.iter().map(|s| s.to_string()).collect();
        parse_options(&options, "mounts[0].options").unwrap()
    }

    #[allow(clippy::unnecessary_cast)]
    fn ms(flag: libc::c_ulong) -> u64 {
        flag as u64
    }

    /// Options in; flags, propagation, data and bind out.
    type Case = (
        &'static [&'static str],
        u64,
        &'static [(Propagation, bool)],
        &'static [&'static str],
        Option<bool>,
    );

    #[test]
    fn mount_options_parse_like_runc() {
        let cases: &[Case] = &[
            (&["ro"], ms(libc::MS_RDONLY), &[], &[], None),
            (&["ro", "rw"], 0, &[], &[], None),
            (
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
                ms(libc::MS_NOSUID | libc::MS_STRICTATIME),
                &[],
                &["mode=755", "size=65536k"],
                None,
            ),
            (
                &[
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
                ms(libc::MS_NOSUID | libc::MS_NOEXEC),
                &[],
                &["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
                None,
            ),
            (
                &["nosuid", "noexec", "nodev", "relatime", "ro"],
                ms(libc::MS_NOSUID
                    | libc::MS_NOEXEC
                    | libc::MS_NODEV
                    | libc::MS_RELATIME
                    | libc::MS_RDONLY),
                &[],
                &[],
                None,
            ),
            (&["noatime", "atime"], 0, &[], &[], None),
            (&["relatime", "norelatime"], 0, &[], &[], None),
            (
                &["sync", "async", "dirsync"],
                ms(libc::MS_DIRSYNC),
                &[],
                &[],
                None,
            ),
            (
                &["mand", "nodiratime"],
                ms(libc::MS_MANDLOCK | libc::MS_NODIRATIME),
                &[],
                &[],
                None,
            ),
            (&["nosymfollow"], ms(libc::MS_NOSYMFOLLOW), &[], &[], None),
            (&["bind"], 0, &[], &[], Some(false)),
            (&["rbind", "ro"], ms(libc::MS_RDONLY), &[], &[], Some(true)),
            (
                &["rbind", "rprivate", "slave"],
                0,
                &[(Propagation::Private, true), (Propagation::Slave, false)],
                &[],
                Some(true),
            ),
            (
                &["shared", "runbindable"],
                0,
                &[
                    (Propagation::Shared, false),
                    (Propagation::Unbindable, true),
                ],
                &[],
                None,
            ),
        ];
        for (options, flags, propagation, data, bind) in cases {
            let got = parse(options);
            assert_eq!(got.flags, *flags, "{options:?}");
            assert_eq!(got.propagation, *propagation, "{options:?}");
            assert_eq!(got.data, *data, "{options:?}");
            assert_eq!(got.bind, *bind, "{options:?}");
        }
    }

    #[test]
    fn bad_mount_options_are_refused() {
        let long = "x".repeat(5000);
        for bad in ["remount", "a,b", "", "a\0b", long.as_str()] {
            let options = vec!["ro".to_string(), bad.to_string()];
            let err = parse_options(&options, "mounts[3].options").unwrap_err();
            assert!(
                err.field.starts_with("mounts[3].options"),
                "{bad}: {}",
                err.field
            );
        }
    }
}
