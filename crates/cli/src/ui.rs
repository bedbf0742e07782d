//! Terminal output: progress bars on a terminal, warnings on stderr, and
//! small formatting helpers. Nothing here decides anything.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use trove_repo::{Event, Progress};

/// Draws library progress events.
pub struct Bar {
    bar: ProgressBar,
    warnings: Mutex<Vec<String>>,
}

impl Bar {
    /// A bar that draws only when stderr is a terminal and output is for humans.
    pub fn new(json: bool) -> Self {
        let bar = ProgressBar::with_draw_target(
            None,
            if !json && std::io::stderr().is_terminal() {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        Self {
            bar,
            warnings: Mutex::new(Vec::new()),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().expect("not poisoned").clone()
    }
}

impl Progress for Bar {
    fn event(&self, e: Event) {
        match e {
            Event::Scanned {
                to_read_bytes,
                files,
                to_read,
                ..
            } => {
                self.bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                self.bar.set_length(to_read_bytes);
                self.bar
                    .set_message(format!("{files} files, {to_read} to read"));
            }
            Event::Read(n) => self.bar.inc(n),
            Event::PackStored { .. } => {}
            Event::Step { done, total } => {
                if self.bar.length() != Some(total) {
                    self.bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} packs [{bar:30}] {pos}/{len} eta {eta}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    self.bar.set_length(total);
                }
                self.bar.set_position(done);
            }
            Event::Warning(w) => {
                self.bar.suspend(|| eprintln!("warning: {w}"));
                self.warnings.lock().expect("not poisoned").push(w);
            }
        }
    }
}

/// Fragment problems grouped by peer and kind, one line each: a dead peer
/// costs one line, not one per pack.
pub fn summarize(problems: &[trove_repo::FragmentProblem]) -> Vec<String> {
    let mut groups: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    for p in problems {
        let packs = groups
            .entry((p.peer.clone(), p.fault.kind().to_owned()))
            .or_default();
        let short = p.pack.short();
        if !packs.contains(&short) {
            packs.push(short);
        }
    }
    groups
        .into_iter()
        .map(|((peer, kind), packs)| {
            let list = if packs.len() <= 3 {
                packs.join(", ")
            } else {
                format!("{}, … ({} packs)", packs[..3].join(", "), packs.len())
            };
            format!("peer `{peer}`: {kind} — pack {list}")
        })
        .collect()
}

/// Human byte count.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// A length of time, coarsely: `45s`, `12m`, `5h`, `3d`.
pub fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// How long ago a time (seconds since the epoch) was: `3h ago`.
pub fn ago(unix: u64) -> String {
    let now = u64::try_from(trove_repo::now_unix()).unwrap_or(0);
    format!("{} ago", span(now.saturating_sub(unix)))
}

/// Send SIGTERM to a child process (by its pid, which it keeps until reaped).
pub fn terminate(child: &std::process::Child) -> std::io::Result<()> {
    let pid = rustix::process::Pid::from_raw(child.id() as i32)
        .ok_or_else(|| std::io::Error::other("a child process without a pid"))?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).map_err(Into::into)
}
