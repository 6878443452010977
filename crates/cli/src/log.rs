//! The runtime's log: runc's `--log FILE --log-format text|json`.
//!
//! JSON lines are shaped as runc writes them (`{"level":"error","msg":"…","time":"…"}`),
//! because the tools that drive an OCI runtime read that file back for the reason of a
//! failure. Nothing is logged when nothing goes wrong.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where errors are written besides stderr.
#[derive(Debug)]
pub struct RuntimeLog {
    file: Option<File>,
    format: LogFormat,
}

impl RuntimeLog {
    /// Opens `path` for appending (created 0600), or logs nowhere but stderr.
    pub fn open(path: Option<&Path>, format: LogFormat) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => {
                use std::os::unix::fs::OpenOptionsExt;
                Some(
                    OpenOptions::new()
                        .append(true)
                        .create(true)
                        .mode(0o600)
                        .custom_flags(libc::O_CLOEXEC)
                        .open(p)?,
                )
            }
            None => None,
        };
        Ok(Self { file, format })
    }

    /// Records an error: always on stderr, and in the log file if there is one.
    pub fn error(&mut self, message: &str) {
        eprintln!("moor: {message}");
        let Some(file) = &mut self.file else {
            return;
        };
        let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let line = match self.format {
            LogFormat::Json => {
                serde_json::json!({"level": "error", "msg": message, "time": time}).to_string()
            }
            LogFormat::Text => format!("time=\"{time}\" level=error msg={message:?}"),
        };
        let _ = writeln!(file, "{line}");
    }
}

/// The daemons' log (`moor controller`, `moor agent`): lines on stderr, where systemd's
/// journal picks them up; the level from `MOOR_LOG` (error, warn, info, debug, trace;
/// default info). Daemons log changes of state only, so an idle one prints nothing.
pub fn init_daemon_log() {
    let level = std::env::var("MOOR_LOG")
        .ok()
        .and_then(|v| v.trim().parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // openraft reports every election and its whole state at start at info; below debug
    // only its warnings are worth a line in the journal.
    let raft_level = if level >= tracing::Level::DEBUG {
        level
    } else {
        tracing::Level::WARN
    };
    let targets = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target("openraft", raft_level);
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .finish()
        .with(targets);
    // Only fails if a subscriber is already set, which then keeps logging.
    let _ = tracing::subscriber::set_global_default(subscriber);
}
