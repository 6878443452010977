//! `-f FILE|DIR|-` as kubectl takes it: files, directories (their `.yaml`, `.yml` and
//! `.json` files in name order; with `-R` their subdirectories too) and standard input,
//! each parsed by `proto` with its own name, so every diagnostic says where it is.
//!
//! Owns: finding and reading the inputs (bounded), gathering every error of every input
//! before giving up, and the namespace default (`-n`). Does not own: the manifest rules
//! (`proto::manifest`).

use std::io::Read;
use std::path::{Path, PathBuf};

use proto::{ManifestError, ParsedObject, Warning};

/// The largest input read (the parser's own limit; more is refused before parsing).
const MAX_INPUT: u64 = 8 << 20;
/// How deep `-R` walks.
const MAX_DEPTH: usize = 32;
/// How many files one `-f DIR` may bring.
const MAX_FILES: usize = 10_000;

/// What the inputs held.
#[derive(Debug, Default)]
pub struct Inputs {
    pub objects: Vec<ParsedObject>,
    pub warnings: Vec<Warning>,
}

/// Why the inputs could not be used: every problem found, in input order.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct InputErrors(pub Vec<String>);

/// Reads every input. `stdin` is used for `-` (at most once).
pub fn read(
    paths: &[PathBuf],
    recursive: bool,
    namespace: Option<&str>,
    stdin: &mut dyn Read,
) -> Result<Inputs, InputErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            files.push(Source::Stdin);
        } else {
            collect(path, recursive, 0, true, &mut files, &mut errors);
        }
    }
    if files.len() > MAX_FILES {
        errors.push(format!(
            "{} files given, more than the {MAX_FILES} one apply takes",
            files.len()
        ));
        return Err(InputErrors(errors));
    }
    let mut inputs = Inputs::default();
    let mut stdin_used = false;
    for source in files {
        let (name, bytes) = match source {
            Source::Stdin if stdin_used => {
                errors.push("-: standard input given twice".into());
                continue;
            }
            Source::Stdin => {
                stdin_used = true;
                match read_bounded(stdin, "-") {
                    Ok(b) => ("-".to_string(), b),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                }
            }
            Source::File(path) => {
                let name = path.display().to_string();
                let read = std::fs::File::open(&path)
                    .map_err(|e| format!("{name}: {e}"))
                    .and_then(|mut f| read_bounded(&mut f, &name));
                match read {
                    Ok(b) => (name, b),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                }
            }
        };
        match proto::parse(&name, &bytes) {
            Ok(manifest) => {
                inputs.warnings.extend(manifest.warnings);
                inputs.objects.extend(manifest.objects);
            }
            Err(e) => errors.extend(e.0.iter().map(ManifestError::to_string)),
        }
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors));
    }
    if inputs.objects.is_empty() {
        return Err(InputErrors(vec![
            "no objects in the inputs (an empty file or only comments?)".into(),
        ]));
    }
    if let Some(ns) = namespace {
        set_namespace(&mut inputs.objects, ns)?;
    }
    Ok(inputs)
}

/// Gives namespaced objects without a namespace `ns`; an object naming another one is
/// an error, as with kubectl.
fn set_namespace(objects: &mut [ParsedObject], ns: &str) -> Result<(), InputErrors> {
    let mut errors = Vec::new();
    for parsed in objects.iter_mut() {
        if !parsed.object.kind().is_namespaced() {
            continue;
        }
        let location = parsed.location.to_string();
        let meta = parsed.object.metadata_mut();
        match &meta.namespace {
            None => meta.namespace = Some(ns.to_string()),
            Some(own) if own == ns => {}
            Some(own) => errors.push(format!(
                "{location}: metadata.namespace: the object says {own:?}, the command line says {ns:?}"
            )),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(InputErrors(errors))
    }
}

enum Source {
    Stdin,
    File(PathBuf),
}

fn collect(
    path: &Path,
    recursive: bool,
    depth: usize,
    named: bool,
    files: &mut Vec<Source>,
    errors: &mut Vec<String>,
) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            errors.push(format!("{}: {e}", path.display()));
            return;
        }
    };
    if !meta.is_dir() {
        // A file named on the command line is read whatever its extension; in a
        // directory only manifests are.
        if named || is_manifest_name(path) {
            files.push(Source::File(path.to_path_buf()));
        }
        return;
    }
    if !named && !recursive {
        return;
    }
    if depth >= MAX_DEPTH {
        errors.push(format!(
            "{}: more than {MAX_DEPTH} directories deep",
            path.display()
        ));
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            errors.push(format!("{}: {e}", path.display()));
            return;
        }
    };
    entries.sort();
    for entry in entries {
        if entry
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        collect(&entry, recursive, depth + 1, false, files, errors);
        if files.len() > MAX_FILES {
            return;
        }
    }
}

fn is_manifest_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn read_bounded(reader: &mut dyn Read, name: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{name}: {e}"))?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(format!(
            "{name}: larger than {MAX_INPUT} bytes, more than one input may be"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: NAME\ndata: {a: b}\n";

    fn cm(name: &str) -> String {
        CM.replace("NAME", name)
    }

    fn names(inputs: &Inputs) -> Vec<String> {
        inputs
            .objects
            .iter()
            .map(|o| o.object.metadata().name.clone())
            .collect()
    }

    #[test]
    fn directories_give_their_manifests_in_name_order_and_r_descends() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("b.yaml"), cm("b")).unwrap();
        std::fs::write(d.join("a.yml"), cm("a")).unwrap();
        std::fs::write(
            d.join("c.json"),
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}"#,
        )
        .unwrap();
        std::fs::write(d.join("notes.txt"), "not a manifest").unwrap();
        std::fs::write(d.join(".hidden.yaml"), "garbage: [").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(
            d.join("sub/d.yaml"),
            format!("{}---\n{}", cm("d1"), cm("d2")),
        )
        .unwrap();
        let flat = read(&[d.to_path_buf()], false, None, &mut std::io::empty()).unwrap();
        assert_eq!(names(&flat), ["a", "b", "c"]);
        let deep = read(&[d.to_path_buf()], true, None, &mut std::io::empty()).unwrap();
        assert_eq!(names(&deep), ["a", "b", "c", "d1", "d2"]);
        // A file named on the command line is read whatever its name.
        std::fs::write(d.join("manifest"), cm("x")).unwrap();
        let named = read(&[d.join("manifest")], false, None, &mut std::io::empty()).unwrap();
        assert_eq!(names(&named), ["x"]);
    }

    #[test]
    fn stdin_is_read_once_and_named_dash() {
        let mut stdin = cm("s").into_bytes();
        stdin.extend_from_slice(b"---\nkind: Nope\n");
        let err = read(&["-".into()], false, None, &mut stdin.as_slice()).unwrap_err();
        assert!(err.to_string().starts_with("-:"), "{err}");
        let ok = read(&["-".into()], false, None, &mut cm("s").as_bytes()).unwrap();
        assert_eq!(names(&ok), ["s"]);
        let twice = read(
            &["-".into(), "-".into()],
            false,
            None,
            &mut cm("s").as_bytes(),
        )
        .unwrap_err();
        assert!(twice.to_string().contains("given twice"), "{twice}");
    }

    #[test]
    fn every_error_of_every_input_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("1.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
        )
        .unwrap();
        std::fs::write(d.join("2.yaml"), cm("fine")).unwrap();
        std::fs::write(
            d.join("3.yaml"),
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '***'}\n",
        )
        .unwrap();
        let err = read(
            &[d.to_path_buf(), d.join("absent.yaml")],
            false,
            None,
            &mut std::io::empty(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("1.yaml:3:"), "{text}");
        assert!(text.contains("3.yaml:4:"), "{text}");
        assert!(text.contains("absent.yaml: No such file"), "{text}");
        assert!(!text.contains("***"), "a secret value was printed: {text}");
    }

    #[test]
    fn empty_huge_and_deep_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("empty.yaml"), "# nothing\n").unwrap();
        let err = read(&[d.join("empty.yaml")], false, None, &mut std::io::empty()).unwrap_err();
        assert!(err.to_string().contains("no objects"), "{err}");
        let big = vec![b'#'; (MAX_INPUT + 1) as usize];
        let err = read(&["-".into()], false, None, &mut big.as_slice()).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        let mut deep = d.to_path_buf();
        for _ in 0..=MAX_DEPTH {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        let err = read(&[d.to_path_buf()], true, None, &mut std::io::empty()).unwrap_err();
        assert!(err.to_string().contains("directories deep"), "{err}");
    }

    #[test]
    fn the_namespace_flag_fills_and_must_agree() {
        let objects = format!(
            "{}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: edge}}\n",
            cm("a")
        );
        let ok = read(&["-".into()], false, Some("edge"), &mut objects.as_bytes()).unwrap();
        assert_eq!(
            ok.objects[0].object.metadata().namespace.as_deref(),
            Some("edge")
        );
        assert_eq!(ok.objects[1].object.metadata().namespace, None);
        let other = cm("a").replace("name: a", "name: a\n  namespace: prod");
        let err = read(&["-".into()], false, Some("edge"), &mut other.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("\"prod\""), "{err}");
    }
}
