//! `monit`: a live terminal dashboard of every instance (status, restarts,
//! CPU, memory) and the latest lines of the selected one's logs, refreshed
//! every second until `q`, Esc or Ctrl-C, after which the terminal is as
//! it was.

use super::render::{humanize_bytes, humanize_duration_ms};
use crate::log_tail::last_lines;
use anyhow::{bail, Result};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table, TableState};
use ratatui::Frame;
use rsup_proto::app::{ProcessInfo, Status};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

const REFRESH: Duration = Duration::from_secs(1);
/// Lines read from the end of each log: more than any terminal shows.
const LOG_LINES: usize = 200;

/// What the dashboard shows.
#[derive(Default)]
pub struct Dashboard {
    pub procs: Vec<ProcessInfo>,
    pub selected: usize,
    pub out_lines: Vec<String>,
    pub err_lines: Vec<String>,
    /// Why the last refresh failed (the daemon went away, say).
    pub problem: Option<String>,
}

impl Dashboard {
    fn select(&mut self, delta: isize) {
        if self.procs.is_empty() {
            return;
        }
        let last = self.procs.len() as isize - 1;
        self.selected = (self.selected as isize + delta).clamp(0, last) as usize;
    }

    fn refresh(&mut self, fetched: Result<Vec<ProcessInfo>>) {
        match fetched {
            Ok(mut procs) => {
                procs.sort_by_key(|p| p.id);
                self.procs = procs;
                self.problem = None;
            }
            Err(e) => self.problem = Some(format!("{e:#}")),
        }
        self.selected = self.selected.min(self.procs.len().saturating_sub(1));
        let (out, err) = match self.procs.get(self.selected) {
            Some(p) => (tail(&p.out_log), tail(&p.err_log)),
            None => (vec![], vec![]),
        };
        self.out_lines = out;
        self.err_lines = err;
    }
}

fn tail(path: &Path) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return vec![];
    };
    let end = file.metadata().map_or(0, |m| m.len());
    last_lines(&mut file, LOG_LINES, end, 64 * 1024)
        .map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(|l| {
                    l.chars()
                        .filter(|c| !c.is_control() || *c == '\t')
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the dashboard; `fetch` lists the processes.
pub fn run(mut fetch: impl FnMut() -> Result<Vec<ProcessInfo>>) -> Result<i32> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("monit needs a terminal; use `rsup list` or `rsup jlist`");
    }
    let mut dashboard = Dashboard::default();
    dashboard.refresh(fetch());
    // Sets up raw mode and the alternate screen, and puts them back on a
    // panic too.
    let mut terminal = ratatui::init();
    let result = (|| -> Result<()> {
        let mut next = Instant::now() + REFRESH;
        loop {
            let now = crate::daemon::now_ms();
            terminal.draw(|f| draw(f, &dashboard, now))?;
            let wait = next.saturating_duration_since(Instant::now());
            if event::poll(wait)? {
                if let Event::Key(key) = event::read()? {
                    if key.kind != KeyEventKind::Press {
                        continue;
                    }
                    let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL)
                        && key.code == KeyCode::Char('c');
                    match key.code {
                        _ if ctrl_c => return Ok(()),
                        KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                        KeyCode::Up | KeyCode::Char('k') => dashboard.select(-1),
                        KeyCode::Down | KeyCode::Char('j') => dashboard.select(1),
                        _ => continue,
                    }
                    dashboard.refresh(fetch());
                }
                continue;
            }
            dashboard.refresh(fetch());
            next = Instant::now() + REFRESH;
        }
    })();
    ratatui::restore();
    result.map(|()| 0)
}

fn status_style(status: Status) -> Style {
    Style::default().fg(match status {
        Status::Online => Color::Green,
        Status::Launching | Status::Stopping | Status::WaitingRestart => Color::Yellow,
        Status::Stopped => Color::Gray,
        Status::Errored => Color::Red,
    })
}

/// Draws one frame: the instances above, the selected one's logs below.
pub fn draw(frame: &mut Frame, d: &Dashboard, now_ms: u64) {
    let [top, output, errors, help] = Layout::vertical([
        Constraint::Percentage(40),
        Constraint::Fill(2),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    let rows = d.procs.iter().map(|p| {
        let uptime = match (p.status, p.started_at_ms) {
            (Status::Online, Some(at)) => humanize_duration_ms(now_ms.saturating_sub(at)),
            _ => "0".into(),
        };
        Row::new(vec![
            p.id.to_string(),
            p.name.clone(),
            p.status.as_str().to_string(),
            p.restarts.to_string(),
            uptime,
            format!("{:.0}%", p.cpu_percent),
            humanize_bytes(p.memory_bytes),
        ])
        .style(status_style(p.status))
    });
    let widths = [
        Constraint::Length(4),
        Constraint::Fill(1),
        Constraint::Length(16),
        Constraint::Length(4),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(9),
    ];
    let title = match &d.problem {
        Some(problem) => format!(" processes: {problem} "),
        None => " processes ".to_string(),
    };
    let table = Table::new(rows, widths)
        .header(
            Row::new(["id", "name", "status", "↺", "uptime", "cpu", "mem"])
                .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::bordered().title(title))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(d.selected));
    frame.render_stateful_widget(table, top, &mut state);

    let name = d
        .procs
        .get(d.selected)
        .map(|p| format!("{} (id {})", p.name, p.id))
        .unwrap_or_default();
    for (area, label, lines, color) in [
        (output, "output", &d.out_lines, Color::Reset),
        (errors, "errors", &d.err_lines, Color::Red),
    ] {
        // The newest lines that fit, above the bottom border.
        let fit = usize::from(area.height.saturating_sub(2));
        let shown: Vec<Line> = lines[lines.len().saturating_sub(fit)..]
            .iter()
            .map(|l| Line::styled(l.as_str(), Style::default().fg(color)))
            .collect();
        frame.render_widget(
            Paragraph::new(shown).block(Block::bordered().title(format!(" {label}: {name} "))),
            area,
        );
    }
    frame.render_widget(
        Paragraph::new(" ↑/↓ select   q quit ").style(Style::default().fg(Color::DarkGray)),
        help,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn proc_info(id: u32, name: &str, status: Status) -> ProcessInfo {
        ProcessInfo {
            id,
            name: name.into(),
            instance: 0,
            status,
            pid: Some(100 + id),
            restarts: 3,
            unstable_restarts: 0,
            started_at_ms: Some(1_000),
            created_at_ms: 1_000,
            unique_id: String::new(),
            node_version: None,
            cpu_percent: 12.0,
            memory_bytes: 44_354_764,
            last_exit: None,
            out_log: "/nonexistent/out.log".into(),
            err_log: "/nonexistent/err.log".into(),
            combined_log: None,
            pid_file: "/nonexistent/p.pid".into(),
            spec: crate::test_support::spec(),
            log_error: None,
            log_dropped_bytes: 0,
        }
    }

    fn screen(d: &Dashboard) -> String {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal.draw(|f| draw(f, d, 61_000)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    + "\n"
            })
            .collect()
    }

    #[test]
    fn shows_each_instance_and_the_selected_ones_logs() {
        let mut d = Dashboard::default();
        d.refresh(Ok(vec![
            proc_info(1, "worker", Status::Errored),
            proc_info(0, "api", Status::Online),
        ]));
        d.out_lines = vec!["listening on 3000".into()];
        d.err_lines = vec!["boom".into()];
        let s = screen(&d);
        assert!(
            s.contains("api") && s.contains("online") && s.contains("1m"),
            "{s}"
        );
        assert!(s.contains("worker") && s.contains("errored"), "{s}");
        assert!(s.contains("42.3mb"), "{s}");
        assert!(
            s.contains("output: api (id 0)"),
            "sorted by id, first selected:\n{s}"
        );
        assert!(s.contains("listening on 3000") && s.contains("boom"), "{s}");
    }

    #[test]
    fn selection_stays_within_the_list_and_a_failed_refresh_is_shown() {
        let mut d = Dashboard::default();
        d.select(1);
        assert_eq!(d.selected, 0);
        d.refresh(Ok(vec![
            proc_info(0, "a", Status::Online),
            proc_info(1, "b", Status::Online),
        ]));
        d.select(5);
        assert_eq!(d.selected, 1);
        d.refresh(Err(anyhow::anyhow!("the daemon is gone")));
        assert_eq!(d.procs.len(), 2, "the last list stays");
        assert!(screen(&d).contains("the daemon is gone"));
        d.refresh(Ok(vec![proc_info(0, "a", Status::Online)]));
        assert_eq!(d.selected, 0);
    }
}
