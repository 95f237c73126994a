//! Where `rumor dev`'s status line goes, on stdout.
//!
//! - On a terminal the line is redrawn in place every second: `\r`, the
//!   line with autowrap off (`ESC[?7l`, so a line wider than the terminal is
//!   cut rather than wrapped, which `\r` could not redraw), clear to the end
//!   of the line (`ESC[K`), autowrap back on (`ESC[?7h`). Logs go to
//!   stderr; when that is the same terminal, [`TerminalLine`] is also the
//!   log writer: it clears the status, writes the log line, and redraws
//!   the status below it, so log lines scroll up above the status.
//! - Anywhere else (a pipe, a file, CI) it prints plain lines, never an
//!   escape code, and only when the mesh's state has changed, at most once
//!   every [`PLAIN_MIN_GAP`], so that logs stay readable.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use super::status::{MeshState, Status};

/// Shortest time between two plain status lines.
pub const PLAIN_MIN_GAP: Duration = Duration::from_secs(5);

/// How the status is shown.
#[derive(Debug)]
pub enum StatusOutput {
    /// Not at all (`--no-status`).
    Off,
    /// Plain lines, when something changed.
    Plain(PlainThrottle),
    /// One line redrawn in place.
    Terminal(TerminalLine),
}

impl StatusOutput {
    /// In place if stdout is a terminal, plain lines otherwise; `Off` if
    /// not `enabled`.
    pub fn detect(enabled: bool) -> Self {
        match (enabled, std::io::stdout().is_terminal()) {
            (false, _) => StatusOutput::Off,
            (true, true) => StatusOutput::Terminal(TerminalLine::default()),
            (true, false) => StatusOutput::Plain(PlainThrottle::default()),
        }
    }

    /// Where log lines should go: stderr, through the status line when both
    /// are on the terminal.
    pub fn log_writer(&self) -> BoxMakeWriter {
        match self {
            StatusOutput::Terminal(line) if std::io::stderr().is_terminal() => BoxMakeWriter::new(line.clone()),
            _ => BoxMakeWriter::new(std::io::stderr),
        }
    }

    /// Shows `status`, read at `at` on a monotonic clock.
    pub fn show(&mut self, status: &Status, at: Duration) {
        match self {
            StatusOutput::Off => {}
            StatusOutput::Plain(throttle) => {
                if throttle.admit(&status.state, at) {
                    let _ = writeln!(std::io::stdout().lock(), "{status}");
                }
            }
            StatusOutput::Terminal(line) => line.draw(status.to_string()),
        }
    }

    /// Leaves the last status where it is, for what is printed next (the
    /// shutdown's log lines, the shell prompt) to start on a line of its own.
    pub fn finish(&mut self) {
        if let StatusOutput::Terminal(line) = self {
            line.finish();
        }
    }
}

/// Decides which states a plain output prints: the first, then each one
/// that differs from the last printed, no sooner than [`PLAIN_MIN_GAP`]
/// after it. Rates are not compared (they change every second); they ride
/// along on the lines that are printed.
#[derive(Debug, Default)]
pub struct PlainThrottle {
    last: Option<(MeshState, Duration)>,
}

impl PlainThrottle {
    /// Whether to print `state`, read at `at`; if so it becomes the last printed.
    pub fn admit(&mut self, state: &MeshState, at: Duration) -> bool {
        let due = match &self.last {
            None => true,
            Some((last, last_at)) => last != state && at.saturating_sub(*last_at) >= PLAIN_MIN_GAP,
        };
        if due {
            self.last = Some((state.clone(), at));
        }
        due
    }
}

/// The status line on a terminal, shared with the log writer so that the
/// two never write over each other.
#[derive(Clone, Debug, Default)]
pub struct TerminalLine {
    /// The line on screen now, if any.
    shown: Arc<Mutex<Option<String>>>,
}

impl TerminalLine {
    /// Redraws the line as `text`.
    fn draw(&self, text: String) {
        let mut shown = self.shown.lock();
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r{}", in_place(&text));
        let _ = out.flush();
        *shown = Some(text);
    }

    /// Redraws the last line one final time (over a `^C` the terminal may
    /// have echoed) and ends it with a newline.
    fn finish(&self) {
        let mut shown = self.shown.lock();
        if let Some(text) = shown.take() {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "\r{}", in_place(&text));
            let _ = out.flush();
        }
    }

    /// Writes one log line to stderr above the status line.
    fn log(&self, line: &[u8]) {
        let shown = self.shown.lock();
        let mut out = std::io::stdout().lock();
        if shown.is_some() {
            let _ = out.write_all(b"\r\x1b[K");
            let _ = out.flush();
        }
        let _ = std::io::stderr().lock().write_all(line);
        if let Some(text) = shown.as_deref() {
            let _ = write!(out, "{}", in_place(text));
            let _ = out.flush();
        }
    }
}

/// `text` with autowrap off, the rest of the line cleared, autowrap on.
fn in_place(text: &str) -> String {
    format!("\x1b[?7l{text}\x1b[K\x1b[?7h")
}

impl<'a> MakeWriter<'a> for TerminalLine {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine { line: self.clone(), buffer: Vec::new() }
    }
}

/// One log event on its way to the terminal: collected whole, then written
/// above the status line in one go when dropped.
#[derive(Debug)]
pub struct LogLine {
    line: TerminalLine,
    buffer: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            self.line.log(&self.buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::status::NodeView;

    fn state(keys: u64) -> MeshState {
        MeshState { nodes: vec![("node1".to_owned(), Some(NodeView { alive: 1, keys, catching_up: false }))] }
    }

    #[test]
    fn plain_lines_come_on_change_and_no_closer_than_the_gap() {
        let mut throttle = PlainThrottle::default();
        let s = Duration::from_secs;
        assert!(throttle.admit(&state(0), s(1)), "the first state is printed");
        assert!(!throttle.admit(&state(0), s(10)), "nothing new");
        assert!(!throttle.admit(&state(1), s(5)), "new, but too soon");
        assert!(throttle.admit(&state(1), s(6)));
        assert!(!throttle.admit(&state(2), s(7)));
        assert!(!throttle.admit(&state(1), s(20)), "back to what was printed last");
        assert!(throttle.admit(&state(3), s(20)));
    }

    #[test]
    fn in_place_text_cuts_rather_than_wraps_and_clears_the_rest() {
        assert_eq!(in_place("mesh"), "\x1b[?7lmesh\x1b[K\x1b[?7h");
    }
}
