//! Entry names, checked before they name anything.
//!
//! A name is split on `/`; empty and `.` components are dropped (`./a//b/` is `a/b`).
//! Refused: an empty name, an absolute one, any `..`, a NUL byte, a name longer than
//! the limit and a component longer than the kernel's `NAME_MAX`. What is left is a
//! path relative to the layer's root, possibly empty (the root itself).

/// The kernel's limit on one path component.
pub(super) const NAME_MAX: usize = 255;

/// Why a name was refused.
pub(super) type NameError = &'static str;

/// `raw` made relative to the layer root: components joined by single slashes, empty
/// for the root itself.
pub(super) fn normalize(raw: &[u8], max_path: usize) -> Result<Vec<u8>, NameError> {
    if raw.is_empty() {
        return Err("empty name");
    }
    if raw.len() > max_path {
        return Err("name longer than the limit");
    }
    if raw.contains(&0) {
        return Err("name contains a NUL byte");
    }
    if raw[0] == b'/' {
        return Err("absolute name");
    }
    let mut out = Vec::with_capacity(raw.len());
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => continue,
            b".." => return Err("name has a '..' component"),
            c if c.len() > NAME_MAX => return Err("name component longer than 255 bytes"),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out)
}

/// `(parent, base)` of a normalized, non-empty path; the parent is empty at the top.
pub(super) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// `parent/base`, or `base` when the parent is the root.
pub(super) fn join(parent: &[u8], base: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parent.len() + 1 + base.len());
    out.extend_from_slice(parent);
    if !parent.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(base);
    out
}

/// True when `path` is `dir` or below it.
pub(super) fn is_within(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty()
        || (path.starts_with(dir) && (path.len() == dir.len() || path[dir.len()] == b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_accepts_relative_names_and_drops_dots() {
        assert_eq!(
            normalize(b"./a//b/./c/", 4096).as_deref(),
            Ok(&b"a/b/c"[..])
        );
        assert_eq!(normalize(b"./", 4096).as_deref(), Ok(&b""[..]));
        assert_eq!(normalize(b".", 4096).as_deref(), Ok(&b""[..]));
        assert_eq!(
            normalize(b"a..b/..c", 4096).as_deref(),
            Ok(&b"a..b/..c"[..])
        );
    }

    #[test]
    fn normalize_refuses_escapes_and_oversized_names() {
        let long_component = vec![b'x'; 256];
        for bad in [
            &b""[..],
            b"/etc/passwd",
            b"../x",
            b"a/../../x",
            b"a/..",
            b"a\0b",
            &long_component,
        ] {
            assert!(normalize(bad, 4096).is_err(), "{bad:?} accepted");
        }
        assert!(normalize(b"abcdef", 5).is_err());
        assert!(normalize(&[b'x'; 255], 4096).is_ok());
    }

    #[test]
    fn split_join_and_within() {
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
        assert_eq!(join(b"", b"c"), b"c");
        assert_eq!(join(b"a/b", b"c"), b"a/b/c");
        assert!(is_within(b"a/b", b"a"));
        assert!(is_within(b"a", b"a"));
        assert!(!is_within(b"ab", b"a"));
        assert!(is_within(b"x", b""));
    }
}
