//! `moor runtime list`: runc's table (ID, PID, STATUS, BUNDLE, CREATED, OWNER), JSON,
//! or bare ids.

use std::io::{self, Write};

use clap::ValueEnum;
use runtime::container::ContainerState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Renders the table as runc's tabwriter does.
pub fn table(states: &[ContainerState]) -> String {
    let rows: Vec<[String; 6]> = states
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.pid.to_string(),
                s.status.to_string(),
                s.bundle.display().to_string(),
                s.created.clone(),
                s.owner.clone(),
            ]
        })
        .collect();
    crate::table::render(
        &["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        &rows,
    )
}

pub fn print(states: &[ContainerState], format: Format, quiet: bool) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    if quiet {
        for s in states {
            writeln!(out, "{}", s.id)?;
        }
        return Ok(());
    }
    match format {
        Format::Table => out.write_all(table(states).as_bytes())?,
        Format::Json => writeln!(out, "{}", serde_json::to_string(states)?)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::container::Status;

    #[test]
    fn table_columns_line_up() {
        let s = |id: &str, pid| ContainerState {
            oci_version: "1.2.0".into(),
            id: id.into(),
            pid,
            status: Status::Running,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            owner: "root".into(),
            annotations: Default::default(),
        };
        let t = table(&[s("a", 1), s("longer-id", 12345)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = lines[0].find("PID").expect("PID column");
        assert_eq!(lines[1].find('1'), Some(col));
        assert_eq!(lines[2].find("12345"), Some(col));
    }
}
