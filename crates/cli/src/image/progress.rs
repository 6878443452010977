//! Showing a pull or push as it goes: progress bars on a terminal, one plain line per
//! step otherwise (logs, CI, a serial console).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use runtime::image::store::LayerEvent;
use runtime::image::transfer::Event;

/// Renders [`Event`]s; shareable across the download threads.
#[derive(Debug)]
pub struct Reporter {
    bars: Option<MultiProgress>,
    active: Mutex<HashMap<String, ProgressBar>>,
}

fn short(d: &impl ToString) -> String {
    let s = d.to_string();
    s.split(':')
        .nth(1)
        .map(|h| h.chars().take(12).collect())
        .unwrap_or(s)
}

impl Reporter {
    pub fn new() -> Self {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            bars,
            active: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    pub fn event(&self, e: Event) {
        match e {
            Event::Resolved { reference, digest } => self.line(format!("{reference}: {digest}")),
            Event::Blob { digest, size, kind } => {
                let name = short(&digest);
                match &self.bars {
                    Some(m) if size > 0 => {
                        let bar = m.add(ProgressBar::new(size));
                        bar.set_style(
                            ProgressStyle::with_template(
                                "{prefix:>12} {msg:8} [{bar:30}] {bytes}/{total_bytes}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                        );
                        bar.set_prefix(name.clone());
                        bar.set_message(kind);
                        if let Ok(mut a) = self.active.lock() {
                            a.insert(digest.to_string(), bar);
                        }
                    }
                    _ => self.line(format!("{name}: {kind} {size} bytes")),
                }
            }
            Event::Progress { digest, done } => {
                if let Ok(a) = self.active.lock()
                    && let Some(bar) = a.get(&digest.to_string())
                {
                    bar.set_position(done);
                }
            }
            Event::BlobDone { digest, skipped } => {
                let bar = self
                    .active
                    .lock()
                    .ok()
                    .and_then(|mut a| a.remove(&digest.to_string()));
                match bar {
                    Some(bar) => bar.finish_and_clear(),
                    None if skipped => self.line(format!("{}: already there", short(&digest))),
                    None => {}
                }
                if self.bars.is_some() {
                    let what = if skipped { "already there" } else { "done" };
                    self.line(format!("{}: {what}", short(&digest)));
                }
            }
            Event::Layer(l) => match l {
                LayerEvent::Unpacking {
                    chain_id,
                    index,
                    total,
                } => self.line(format!(
                    "{}: unpacking layer {}/{total}",
                    short(&chain_id),
                    index + 1
                )),
                LayerEvent::Unpacked {
                    chain_id,
                    size,
                    entries,
                } => self.line(format!(
                    "{}: unpacked {entries} entries, {size} bytes",
                    short(&chain_id)
                )),
                LayerEvent::Waiting { chain_id } => {
                    self.line(format!("{}: waiting for another unpack", short(&chain_id)))
                }
                LayerEvent::Reused { .. } => {}
            },
        }
    }
}
