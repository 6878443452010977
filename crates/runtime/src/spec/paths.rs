//! Path checks shared by the conversions: paths inside the container and paths on the host.
//!
//! A path inside the container (a mount destination, a masked path) is resolved later
//! against the container's root, so it must be absolute and must not climb out with `..`;
//! it is stored with `.` components and repeated slashes removed. A path on the host (the
//! rootfs, a bind source) is only made absolute against the bundle: symlinks and `..` on
//! the host are the bundle author's business, as in runc.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::error::{FieldError, quoted};

/// Refuses a string with a NUL byte, which no system call would take.
pub(crate) fn no_nul(field: &str, text: &str) -> Result<(), FieldError> {
    if text.contains('\0') {
        return Err(FieldError::invalid(
            field,
            "a string without NUL bytes",
            quoted(text),
        ));
    }
    Ok(())
}

fn shown(path: &Path) -> String {
    quoted(&path.to_string_lossy())
}

fn path_no_nul(field: &str, path: &Path) -> Result<(), FieldError> {
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(FieldError::invalid(
            field,
            "a path without NUL bytes",
            shown(path),
        ));
    }
    Ok(())
}

/// An absolute, clean path inside the container.
pub(crate) fn container_path(field: &str, path: &Path) -> Result<PathBuf, FieldError> {
    path_no_nul(field, path)?;
    if !path.is_absolute() {
        return Err(FieldError::invalid(
            field,
            "an absolute path inside the container",
            shown(path),
        ));
    }
    let mut clean = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(FieldError::invalid(
                    field,
                    "a path without `..` components",
                    shown(path),
                ));
            }
        }
    }
    Ok(clean)
}

/// A container path given as a plain string (`maskedPaths`, `readonlyPaths`).
pub(crate) fn container_path_str(field: &str, text: &str) -> Result<PathBuf, FieldError> {
    container_path(field, Path::new(OsStr::new(text)))
}

/// A path on the host; a relative one is taken from the bundle directory.
pub(crate) fn host_path(field: &str, path: &Path, bundle: &Path) -> Result<PathBuf, FieldError> {
    path_no_nul(field, path)?;
    if path.as_os_str().is_empty() {
        return Err(FieldError::invalid(field, "a path", shown(path)));
    }
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        bundle.join(path)
    })
}

/// A path on the host that must be absolute already (a namespace to join).
pub(crate) fn absolute_host_path(field: &str, path: &Path) -> Result<PathBuf, FieldError> {
    path_no_nul(field, path)?;
    if !path.is_absolute() {
        return Err(FieldError::invalid(field, "an absolute path", shown(path)));
    }
    Ok(path.to_path_buf())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_cleaned_and_dotdot_is_refused() {
        let ok = |p: &str| container_path("f", Path::new(p)).map_err(|e| e.problem.to_string());
        assert_eq!(ok("/a//b/./c/"), Ok(PathBuf::from("/a/b/c")));
        assert_eq!(ok("/"), Ok(PathBuf::from("/")));
        assert!(ok("a/b").unwrap_err().contains("absolute"));
        assert!(ok("").unwrap_err().contains("absolute"));
        assert!(ok("/a/../b").unwrap_err().contains(".."));
        assert!(ok("/a\0b").unwrap_err().contains("NUL"));
    }

    #[test]
    fn relative_host_paths_resolve_against_the_bundle() {
        let bundle = Path::new("/b");
        let got = host_path("f", Path::new("rootfs"), bundle).unwrap();
        assert_eq!(got, PathBuf::from("/b/rootfs"));
        let got = host_path("f", Path::new("/abs"), bundle).unwrap();
        assert_eq!(got, PathBuf::from("/abs"));
        assert!(host_path("f", Path::new(""), bundle).is_err());
    }
}
