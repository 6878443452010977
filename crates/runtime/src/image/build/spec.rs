//! The build spec: `image.yaml` in the build directory.
//!
//! ```yaml
//! from: scratch                 # or an image reference already in the store
//! platform: linux/amd64         # default: the base's, else this host's
//! copy:                         # files and trees; src relative to the build dir or absolute
//!   - { src: /bin/busybox, dest: /bin/busybox, mode: "0755", owner: "0:0" }
//!   - { src: www, dest: /www }  # a directory: copied recursively, modes kept
//! files:                        # inline content
//!   - { dest: /etc/passwd, content: "root:x:0:0:root:/root:/bin/sh\n", mode: "0644" }
//! dirs:
//!   - { path: /tmp, mode: "1777" }
//! symlinks:                     # in DIR, NAME -> TARGET for each name
//!   - { in: /bin, target: busybox, names: [sh, ls, cat] }
//! entrypoint: ["/bin/httpd", "-f"]
//! cmd: ["-p", "8080"]
//! env: ["PATH=/bin"]            # or a map
//! workdir: /
//! user: "1000:1000"
//! expose: ["8080/tcp"]
//! labels: { org.example.role: demo }
//! ```
//!
//! Unknown keys are errors (a typo must not build a different image silently); every
//! error names the file, the line when YAML knows it, and the field.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::image::platform::Platform;
use crate::image::reference::Reference;

/// The largest spec file read.
pub const MAX_SPEC_BYTES: u64 = 1 << 20;

/// Errors reading a build spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecFileError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes is more than a build spec may be ({MAX_SPEC_BYTES})")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {field}: {reason}")]
    Invalid {
        path: PathBuf,
        field: String,
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    from: String,
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    copy: Vec<RawCopy>,
    #[serde(default)]
    files: Vec<RawFile>,
    #[serde(default)]
    dirs: Vec<RawDir>,
    #[serde(default)]
    symlinks: Vec<RawLinks>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<EnvList>,
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    expose: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCopy {
    src: String,
    dest: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    owner: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    dest: String,
    content: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    owner: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDir {
    path: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    owner: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinks {
    #[serde(rename = "in")]
    dir: String,
    target: String,
    names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EnvList {
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

/// Where a layer's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host file or directory tree.
    Host(PathBuf),
    /// Bytes given in the spec.
    Inline(Vec<u8>),
    /// An empty directory.
    Dir,
    /// A symbolic link with this target.
    Symlink(String),
}

/// One thing the new layer adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Absolute, clean, inside the image.
    pub dest: PathBuf,
    pub source: Source,
    /// Permission bits; `None` keeps the host file's (for `Host`) or uses 0644/0755.
    pub mode: Option<u32>,
    pub uid: u32,
    pub gid: u32,
}

/// A validated build spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// `None` for scratch.
    pub from: Option<Reference>,
    pub platform: Option<Platform>,
    pub items: Vec<Item>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `KEY=value`, merged over the base's by key.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `PORT/PROTO`.
    pub expose: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

fn invalid(path: &Path, field: impl Into<String>, reason: impl Into<String>) -> SpecFileError {
    SpecFileError::Invalid {
        path: path.to_path_buf(),
        field: field.into(),
        reason: reason.into(),
    }
}

/// An absolute, clean path inside the image (no `..`, no NUL, not `/` itself unless
/// `root_ok`).
fn image_path(
    file: &Path,
    field: &str,
    text: &str,
    root_ok: bool,
) -> Result<PathBuf, SpecFileError> {
    let p = Path::new(text);
    if !p.is_absolute() || text.contains('\0') || text.len() > 4096 {
        return Err(invalid(
            file,
            field,
            format!("expected an absolute path inside the image, found {text:?}"),
        ));
    }
    let mut clean = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => clean.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(invalid(
                    file,
                    field,
                    format!("{text:?} has a '..' component"),
                ));
            }
        }
    }
    if clean == Path::new("/") && !root_ok {
        return Err(invalid(
            file,
            field,
            "the image root itself cannot be replaced",
        ));
    }
    Ok(clean)
}

fn mode(file: &Path, field: &str, text: &Option<String>) -> Result<Option<u32>, SpecFileError> {
    let Some(t) = text else {
        return Ok(None);
    };
    let digits = t.strip_prefix("0o").unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(Some(m)),
        _ => Err(invalid(
            file,
            field,
            format!("expected an octal mode such as \"0755\", found {t:?}"),
        )),
    }
}

fn owner(file: &Path, field: &str, text: &Option<String>) -> Result<(u32, u32), SpecFileError> {
    let Some(t) = text else {
        return Ok((0, 0));
    };
    let parse = |s: &str| s.parse::<u32>().ok();
    match t.split_once(':') {
        Some((u, g)) => match (parse(u), parse(g)) {
            (Some(u), Some(g)) => Ok((u, g)),
            _ => Err(invalid(
                file,
                field,
                format!("expected UID:GID as numbers, found {t:?}"),
            )),
        },
        None => parse(t).map(|u| (u, u)).ok_or_else(|| {
            invalid(
                file,
                field,
                format!("expected UID:GID as numbers, found {t:?}"),
            )
        }),
    }
}

fn link_name(file: &Path, field: &str, name: &str) -> Result<(), SpecFileError> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.len() > 255
    {
        return Err(invalid(file, field, format!("{name:?} is not a file name")));
    }
    Ok(())
}

/// Reads and checks `path` (the spec), resolving relative `src` paths against `dir`.
pub fn load(path: &Path, dir: &Path) -> Result<BuildSpec, SpecFileError> {
    let read_err = |source| SpecFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX_SPEC_BYTES {
        return Err(SpecFileError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    parse(&text, path, dir)
}

/// Checks a spec's text; `file` names it in errors, `dir` resolves relative sources.
pub fn parse(text: &str, file: &Path, dir: &Path) -> Result<BuildSpec, SpecFileError> {
    let raw: RawSpec = crate::image::yaml::from_str(text).map_err(|e| SpecFileError::Syntax {
        path: file.to_path_buf(),
        message: e.to_string(),
    })?;
    let from = match raw.from.as_str() {
        "scratch" => None,
        other => Some(
            other
                .parse::<Reference>()
                .map_err(|e| invalid(file, "from", e.to_string()))?,
        ),
    };
    let platform = raw
        .platform
        .as_deref()
        .map(|p| {
            p.parse::<Platform>()
                .map_err(|e| invalid(file, "platform", e.to_string()))
        })
        .transpose()?;
    let mut items = Vec::new();
    for (i, c) in raw.copy.iter().enumerate() {
        let field = format!("copy[{i}]");
        let src = Path::new(&c.src);
        if c.src.is_empty() || c.src.contains('\0') {
            return Err(invalid(file, format!("{field}.src"), "expected a path"));
        }
        let host = if src.is_absolute() {
            src.to_path_buf()
        } else {
            dir.join(src)
        };
        let (uid, gid) = owner(file, &format!("{field}.owner"), &c.owner)?;
        items.push(Item {
            dest: image_path(file, &format!("{field}.dest"), &c.dest, true)?,
            source: Source::Host(host),
            mode: mode(file, &format!("{field}.mode"), &c.mode)?,
            uid,
            gid,
        });
    }
    for (i, f) in raw.files.iter().enumerate() {
        let field = format!("files[{i}]");
        let (uid, gid) = owner(file, &format!("{field}.owner"), &f.owner)?;
        items.push(Item {
            dest: image_path(file, &format!("{field}.dest"), &f.dest, false)?,
            source: Source::Inline(f.content.clone().into_bytes()),
            mode: mode(file, &format!("{field}.mode"), &f.mode)?,
            uid,
            gid,
        });
    }
    for (i, d) in raw.dirs.iter().enumerate() {
        let field = format!("dirs[{i}]");
        let (uid, gid) = owner(file, &format!("{field}.owner"), &d.owner)?;
        items.push(Item {
            dest: image_path(file, &format!("{field}.path"), &d.path, false)?,
            source: Source::Dir,
            mode: mode(file, &format!("{field}.mode"), &d.mode)?,
            uid,
            gid,
        });
    }
    for (i, l) in raw.symlinks.iter().enumerate() {
        let field = format!("symlinks[{i}]");
        let dir_path = image_path(file, &format!("{field}.in"), &l.dir, true)?;
        if l.target.is_empty() || l.target.contains('\0') || l.target.len() > 4096 {
            return Err(invalid(
                file,
                format!("{field}.target"),
                "expected a link target",
            ));
        }
        for (j, name) in l.names.iter().enumerate() {
            link_name(file, &format!("{field}.names[{j}]"), name)?;
            items.push(Item {
                dest: dir_path.join(name),
                source: Source::Symlink(l.target.clone()),
                mode: None,
                uid: 0,
                gid: 0,
            });
        }
    }
    let env = match raw.env {
        None => Vec::new(),
        Some(EnvList::List(v)) => v,
        Some(EnvList::Map(m)) => m.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
    };
    for (i, e) in env.iter().enumerate() {
        match e.split_once('=') {
            Some((k, _)) if !k.is_empty() && !e.contains('\0') => {}
            _ => {
                return Err(invalid(
                    file,
                    format!("env[{i}]"),
                    format!("expected KEY=value, found {e:?}"),
                ));
            }
        }
    }
    for (i, p) in raw.expose.iter().enumerate() {
        let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
        if port.parse::<u16>().map_or(true, |n| n == 0) || !matches!(proto, "tcp" | "udp" | "sctp")
        {
            return Err(invalid(
                file,
                format!("expose[{i}]"),
                format!("expected PORT[/tcp|udp|sctp], found {p:?}"),
            ));
        }
    }
    if let Some(w) = &raw.workdir {
        image_path(file, "workdir", w, true)?;
    }
    if let Some(u) = &raw.user
        && (u.is_empty() || u.contains('\0') || u.contains('\n'))
    {
        return Err(invalid(file, "user", "expected USER[:GROUP]"));
    }
    Ok(BuildSpec {
        from,
        platform,
        items,
        entrypoint: raw.entrypoint,
        cmd: raw.cmd,
        env,
        workdir: raw.workdir,
        user: raw.user,
        expose: raw
            .expose
            .iter()
            .map(|p| {
                if p.contains('/') {
                    p.clone()
                } else {
                    format!("{p}/tcp")
                }
            })
            .collect(),
        labels: raw.labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<BuildSpec, SpecFileError> {
        parse(text, Path::new("image.yaml"), Path::new("/build"))
    }

    #[test]
    fn a_full_spec_parses() {
        let spec = p(r#"
from: scratch
copy:
  - { src: bin/app, dest: /usr/bin/app, mode: "0755", owner: "1000:1000" }
files:
  - { dest: /etc/motd, content: "hi\n" }
dirs:
  - { path: /tmp, mode: "1777" }
symlinks:
  - { in: /bin, target: busybox, names: [sh, ls] }
entrypoint: ["/usr/bin/app"]
cmd: ["--port", "80"]
env: { B: "2", A: "1" }
workdir: /srv
user: "1000:1000"
expose: ["80", "53/udp"]
labels: { role: demo }
"#)
        .expect("parses");
        assert_eq!(spec.from, None);
        assert_eq!(spec.items.len(), 5);
        assert_eq!(spec.items[0].source, Source::Host("/build/bin/app".into()));
        assert_eq!((spec.items[0].mode, spec.items[0].uid), (Some(0o755), 1000));
        assert_eq!(spec.items[4].dest, Path::new("/bin/ls"));
        assert_eq!(spec.env, vec!["A=1", "B=2"]);
        assert_eq!(spec.expose, vec!["80/tcp", "53/udp"]);
    }

    #[test]
    fn bad_specs_name_the_field() {
        for (text, field) in [
            ("from: scratch\nnope: 1\n", "nope"),
            ("from: UPPER/case\n", "from"),
            (
                "from: scratch\nfiles: [{dest: ../x, content: a}]\n",
                "files[0].dest",
            ),
            (
                "from: scratch\nfiles: [{dest: /a/../../x, content: a}]\n",
                "files[0].dest",
            ),
            (
                "from: scratch\nfiles: [{dest: /, content: a}]\n",
                "files[0].dest",
            ),
            (
                "from: scratch\ndirs: [{path: /t, mode: \"999\"}]\n",
                "dirs[0].mode",
            ),
            (
                "from: scratch\ndirs: [{path: /t, mode: \"77777\"}]\n",
                "dirs[0].mode",
            ),
            (
                "from: scratch\ndirs: [{path: /t, owner: root}]\n",
                "dirs[0].owner",
            ),
            (
                "from: scratch\nsymlinks: [{in: /bin, target: x, names: [a/b]}]\n",
                "names[0]",
            ),
            (
                "from: scratch\nsymlinks: [{in: /bin, target: x, names: [\"..\"]}]\n",
                "names[0]",
            ),
            ("from: scratch\nenv: [NOEQUALS]\n", "env[0]"),
            ("from: scratch\nexpose: [\"0\"]\n", "expose[0]"),
            ("from: scratch\nexpose: [\"80/icmp\"]\n", "expose[0]"),
            ("from: scratch\nworkdir: relative\n", "workdir"),
            ("from: scratch\nplatform: linux\n", "platform"),
            ("copy: []\n", "from"),
            ("from: [1, 2]\n", "from"),
            ("{{{{", "image.yaml"),
        ] {
            let err = p(text).expect_err(text).to_string();
            assert!(err.contains(field), "{text:?}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = format!(
            "from: scratch\nlabels: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(p(&text).is_err());
    }
}
