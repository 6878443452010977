//! How a watch prints: kubectl's table a row at a time (the header once, columns that
//! only widen), a YAML document, a JSON line or a name per change, with the event when
//! asked (`--output-watch-events`).

use std::io::Write;
use std::time::SystemTime;

use proto::{Kind, Object};

use crate::cluster::{Format, print};
use crate::table::Widths;

/// How a watch prints.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    pub format: Option<Format>,
    pub all_namespaces: bool,
    /// `--output-watch-events`: say ADDED, MODIFIED or DELETED with each object.
    pub events: bool,
}

/// Why a change is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Listed, at the start or after the history ran out (shown as ADDED, as kubectl does).
    Listed,
    Added,
    Modified,
    Deleted,
}

impl Change {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Change::Listed | Change::Added => "ADDED",
            Change::Modified => "MODIFIED",
            Change::Deleted => "DELETED",
        }
    }
}

/// Prints what a watch sees.
pub(crate) struct Printer<W: Write> {
    out: W,
    kind: Kind,
    style: Style,
    widths: Widths,
    header_printed: bool,
    documents: usize,
}

impl<W: Write> Printer<W> {
    pub(crate) fn new(out: W, kind: Kind, style: Style) -> Printer<W> {
        Printer {
            out,
            kind,
            style,
            widths: Widths::default(),
            header_printed: false,
            documents: 0,
        }
    }

    /// Prints `objects`, all changed the same way.
    pub(crate) fn show(
        &mut self,
        change: Change,
        objects: &[Object],
        now: SystemTime,
    ) -> std::io::Result<()> {
        if objects.is_empty() {
            return Ok(());
        }
        let text = match self.style.format {
            Some(Format::Yaml) => self.yaml(change, objects)?,
            Some(Format::Json) => json_lines(change, objects, self.style.events)?,
            Some(Format::Name) => objects
                .iter()
                .map(|o| {
                    let name = format!("{}/{}", o.kind().name().to_lowercase(), o.metadata().name);
                    if self.style.events {
                        format!("{} {name}\n", change.label())
                    } else {
                        format!("{name}\n")
                    }
                })
                .collect(),
            Some(Format::Wide) | None => self.rows(change, objects, now),
        };
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }

    fn rows(&mut self, change: Change, objects: &[Object], now: SystemTime) -> String {
        let wide = self.style.format == Some(Format::Wide);
        let all = self.style.all_namespaces;
        let with_event = |label: &str, mut cells: Vec<String>| {
            if self.style.events {
                cells.insert(0, label.to_string());
            }
            cells
        };
        let rows: Vec<Vec<String>> = objects
            .iter()
            .map(|o| with_event(change.label(), print::row(o, all, wide, now)))
            .collect();
        let mut text = String::new();
        if !self.header_printed {
            let header = with_event("EVENT", print::header(self.kind, all, wide));
            self.widths.fit(&header);
            for row in &rows {
                self.widths.fit(row);
            }
            text.push_str(&self.widths.line(&header));
            self.header_printed = true;
        }
        for row in &rows {
            self.widths.fit(row);
            text.push_str(&self.widths.line(row));
        }
        text
    }

    fn yaml(&mut self, change: Change, objects: &[Object]) -> std::io::Result<String> {
        let mut text = String::new();
        for object in objects {
            let yaml = proto::render::to_yaml(object).map_err(std::io::Error::other)?;
            if self.documents > 0 {
                text.push_str("---\n");
            }
            self.documents += 1;
            if self.style.events {
                text.push_str(&format!("type: {}\nobject:\n", change.label()));
                for line in yaml.lines() {
                    text.push_str("  ");
                    text.push_str(line);
                    text.push('\n');
                }
            } else {
                text.push_str(&yaml);
            }
        }
        Ok(text)
    }
}

/// One JSON document per line (`{"type": …, "object": …}` with events), for `jq` and
/// other line readers.
fn json_lines(change: Change, objects: &[Object], events: bool) -> std::io::Result<String> {
    let mut text = String::new();
    for object in objects {
        let pretty = proto::render::to_json(object).map_err(std::io::Error::other)?;
        let value: serde_json::Value = serde_json::from_str(&pretty)?;
        let value = if events {
            serde_json::json!({"type": change.label(), "object": value})
        } else {
            value
        };
        text.push_str(&serde_json::to_string(&value)?);
        text.push('\n');
    }
    Ok(text)
}
