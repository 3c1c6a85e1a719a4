//! How commands print: aligned tables for people, JSON for scripts, and a progress bar on stderr
//! when stderr is a terminal (never in pipes or tests, so output stays clean).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Columns separated by two spaces, each as wide as its widest cell; a header row in capitals.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|name| (*name).to_owned()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, every line ending in a newline, trailing spaces trimmed.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|name| name.chars().count()).collect();
        for row in &self.rows {
            for (index, cell) in row.iter().enumerate().take(columns) {
                widths[index] = widths[index].max(cell.chars().count());
            }
        }
        let mut text = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (index, cell) in row.iter().enumerate().take(columns) {
                line.push_str(cell);
                if index + 1 < columns {
                    let padding = widths[index] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', padding));
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// Prints one JSON document (pretty, for people reading it too; still one value for `jq`).
pub fn print_json(value: &Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("error: cannot encode JSON: {error}"),
    }
}

/// `a, b, c` of a list of numbers.
pub fn join<T: ToString>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// A one-line progress bar on stderr, drawn at most ten times a second, only on a terminal.
pub struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    enabled: bool,
    last_drawn: Option<Instant>,
}

const BAR_WIDTH: usize = 30;
const REDRAW_INTERVAL: Duration = Duration::from_millis(100);

impl Progress {
    /// A bar for `total` units (unknown: a counter only).
    pub fn new(label: &str, total: Option<u64>) -> Progress {
        Progress { label: label.to_owned(), total, done: 0, enabled: std::io::stderr().is_terminal(), last_drawn: None }
    }

    pub fn advance(&mut self, units: u64) {
        self.done += units;
        if !self.enabled || self.last_drawn.is_some_and(|at| at.elapsed() < REDRAW_INTERVAL) {
            return;
        }
        self.last_drawn = Some(Instant::now());
        self.draw();
    }

    fn draw(&self) {
        let line = match self.total {
            Some(total) if total > 0 => {
                let fraction = (self.done as f64 / total as f64).min(1.0);
                let filled = (fraction * BAR_WIDTH as f64) as usize;
                format!(
                    "{} [{}{}] {:>3}% {}/{}",
                    self.label,
                    "#".repeat(filled),
                    "-".repeat(BAR_WIDTH - filled),
                    (fraction * 100.0) as u32,
                    self.done,
                    total
                )
            }
            _ => format!("{} {}", self.label, self.done),
        };
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r{line}\x1b[K");
        let _ = stderr.flush();
    }

    /// Erases the bar so the summary that follows starts on a clean line.
    pub fn finish(&mut self) {
        if self.enabled && self.last_drawn.is_some() {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[K");
            let _ = stderr.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut table = Table::new(&["TOPIC", "PARTITIONS"]);
        table.row(vec!["orders-long-name".into(), "3".into()]);
        table.row(vec!["a".into(), "12".into()]);
        assert_eq!(table.render(), "TOPIC             PARTITIONS\norders-long-name  3\na                 12\n");
    }
}
