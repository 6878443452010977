use super::cursor::{FIRST_RETRY, LAST_RETRY};
use super::*;
use crate::cluster::Format;

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        kind: Kind::ConfigMap,
        namespace: Some("default".into()),
        name: name.into(),
    }
}

fn objects(yaml: &str) -> Vec<Object> {
    proto::parse("t.yaml", yaml.as_bytes())
        .expect("parse")
        .objects
        .into_iter()
        .map(|o| o.object)
        .collect()
}

fn cm(name: &str) -> Object {
    objects(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: b}}\n"
    ))
    .remove(0)
}

#[test]
fn a_resume_repeats_no_event_and_misses_none() {
    let mut cursor = Cursor::new(10);
    // Before the list's revision: already in the list.
    assert!(!cursor.accept(10, key("old")));
    // Revision 11 carries two objects; the stream is lost after the first.
    assert!(cursor.accept(11, key("a")));
    assert_eq!(cursor.resume_from(), 10, "11 is not complete yet");
    // After the resume from 10, revision 11 comes again, whole.
    assert!(!cursor.accept(11, key("a")), "printed twice");
    assert!(cursor.accept(11, key("b")), "missed");
    assert!(cursor.accept(12, key("a")));
    assert_eq!(cursor.resume_from(), 11);
    // A bookmark completes what came before it.
    cursor.bookmark(12);
    assert_eq!(cursor.resume_from(), 12);
    assert!(!cursor.accept(12, key("c")));
    cursor.bookmark(20);
    assert_eq!(cursor.resume_from(), 20);
    // An older bookmark moves nothing back.
    cursor.bookmark(15);
    assert_eq!(cursor.resume_from(), 20);
}

#[test]
fn waits_are_jittered_bounded_and_reset() {
    let mut backoff = Backoff::new();
    let first = backoff.delay();
    assert!(
        first >= FIRST_RETRY / 2 && first <= FIRST_RETRY,
        "{first:?}"
    );
    for _ in 0..20 {
        let wait = backoff.delay();
        assert!(wait <= LAST_RETRY, "{wait:?}");
        assert!(wait >= FIRST_RETRY / 2, "{wait:?}");
    }
    let late = backoff.delay();
    assert!(late >= LAST_RETRY / 2, "{late:?}");
    backoff.reset();
    assert!(backoff.delay() <= FIRST_RETRY);
}

fn printed(style: Style, steps: &[(Change, Vec<Object>)]) -> String {
    let mut out = Vec::new();
    let mut printer = Printer::new(&mut out, Kind::ConfigMap, style);
    for (change, objects) in steps {
        printer
            .show(*change, objects, SystemTime::now())
            .expect("print");
    }
    String::from_utf8(out).expect("utf-8")
}

fn style(format: Option<Format>, events: bool) -> Style {
    Style {
        format,
        all_namespaces: false,
        events,
    }
}

#[test]
fn tables_print_the_header_once_then_rows_in_line_with_it() {
    let text = printed(
        style(None, false),
        &[
            (Change::Listed, vec![cm("a"), cm("bb")]),
            (Change::Modified, vec![cm("a")]),
            (Change::Deleted, vec![cm("bb")]),
        ],
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("NAME   DATA   AGE"), "{text}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("NAME")).count(), 1);
    let data_column = lines[0].find("DATA").unwrap();
    for line in &lines[1..] {
        assert_eq!(line.find('1'), Some(data_column), "{text}");
    }
}

#[test]
fn events_get_a_column_and_an_empty_list_prints_nothing() {
    let text = printed(
        style(None, true),
        &[
            (Change::Listed, vec![]),
            (Change::Added, vec![cm("a")]),
            (Change::Deleted, vec![cm("a")]),
        ],
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][..3], ["EVENT", "NAME", "DATA"], "{text}");
    assert_eq!(rows[1][..2], ["ADDED", "a"], "{text}");
    assert_eq!(rows[2][..2], ["DELETED", "a"], "{text}");
    assert_eq!(rows.len(), 3);
}

#[test]
fn json_is_one_object_per_line_and_yaml_one_document_each() {
    let text = printed(
        style(Some(Format::Json), true),
        &[
            (Change::Listed, vec![cm("a"), cm("b")]),
            (Change::Deleted, vec![cm("a")]),
        ],
    );
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["type"], "ADDED");
    assert_eq!(lines[2]["type"], "DELETED");
    assert_eq!(lines[2]["object"]["metadata"]["name"], "a");
    let plain = printed(
        style(Some(Format::Json), false),
        &[(Change::Added, vec![cm("a")])],
    );
    let value: serde_json::Value = serde_json::from_str(plain.trim()).unwrap();
    assert_eq!(value["kind"], "ConfigMap");

    let yaml = printed(
        style(Some(Format::Yaml), false),
        &[
            (Change::Listed, vec![cm("a")]),
            (Change::Modified, vec![cm("a")]),
        ],
    );
    assert_eq!(yaml.matches("---\n").count(), 1, "{yaml}");
    assert_eq!(yaml.matches("kind: ConfigMap").count(), 2, "{yaml}");
    let names = printed(
        style(Some(Format::Name), true),
        &[(Change::Deleted, vec![cm("a")])],
    );
    assert_eq!(names, "DELETED configmap/a\n");
}

#[test]
fn a_closed_output_is_a_quiet_end() {
    let broken = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
    assert!(output_closed(broken).is_ok());
    let full = std::io::Error::other("no space left on device");
    assert!(output_closed(full).is_err());
}
