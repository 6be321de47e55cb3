//! The Markdown pieces of a report: tables per series, side by side, and number formats.

use std::fmt::Write as _;

use super::data::{Load, has_latency, sorted_points};
use super::format::{fmt_ms, fmt_rps};
use crate::model::{Point, RunReport, Series};

pub(super) fn series_table(md: &mut String, s: &Series, load: Load) {
    let _ = writeln!(md, "### {}\n", s.name.trim());
    if !s.description.trim().is_empty() {
        let _ = writeln!(md, "{}\n", s.description.trim());
    }
    if s.points.is_empty() {
        md.push_str("_No measurements._\n\n");
        return;
    }
    let open = s.points.iter().any(|p| p.target_rate.is_some());
    if open {
        md.push_str("| target rps | connections | rps | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |\n");
        md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|:---|\n");
    } else {
        md.push_str(
            "| concurrency | rps | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |\n",
        );
        md.push_str("|---:|---:|---:|---:|---:|---:|---:|:---|\n");
    }
    for p in sorted_points(s, load) {
        md.push('|');
        if open {
            let target = p.target_rate.map_or_else(|| "—".to_owned(), fmt_rps);
            let _ = write!(md, " {target} |");
        }
        let _ = write!(md, " {} | {} |", p.concurrency, fmt_rps(p.throughput_rps));
        let l = &p.latency;
        for us in [l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us] {
            if has_latency(p) {
                let _ = write!(md, " {} |", fmt_ms(us as f64 / 1000.0));
            } else {
                md.push_str(" — |");
            }
        }
        let _ = writeln!(md, " {} |", cell(&errors_cell(p)));
    }
    md.push('\n');
}

/// "0", or "15 (503×12, timeout×3)": the non-2xx outcomes, most frequent first.
pub(super) fn errors_cell(p: &Point) -> String {
    let mut failed: Vec<(&String, u64)> = p
        .outcomes
        .iter()
        .filter(|(k, n)| **n > 0 && !is_success(k))
        .map(|(k, n)| (k, *n))
        .collect();
    failed.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    if failed.is_empty() {
        return p.errors.to_string();
    }
    let list: Vec<String> = failed.iter().map(|(k, n)| format!("{k}×{n}")).collect();
    format!("{} ({})", p.errors, list.join(", "))
}

pub(super) fn is_success(outcome: &str) -> bool {
    outcome.len() == 3 && outcome.starts_with('2') && outcome.bytes().all(|b| b.is_ascii_digit())
}

pub(super) fn side_by_side(md: &mut String, report: &RunReport, load: Load) {
    let mut levels: Vec<f64> = report
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| load.x(p)))
        .collect();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    if levels.is_empty() {
        return;
    }
    let first = &report.series[0];
    let _ = writeln!(md, "### rps at each {}\n", load.noun());
    let _ = write!(md, "| {} |", load.noun());
    for s in &report.series {
        let _ = write!(md, " {} |", cell(s.name.trim()));
    }
    for s in &report.series[1..] {
        let _ = write!(
            md,
            " {} (% of {}) |",
            cell(s.name.trim()),
            cell(first.name.trim())
        );
    }
    md.push_str("\n|---:|");
    for _ in 1..report.series.len() * 2 {
        md.push_str("---:|");
    }
    md.push('\n');
    let at = |s: &Series, level: f64| {
        s.points
            .iter()
            .find(|p| load.x(p) == level)
            .map(|p| p.throughput_rps)
    };
    for &level in &levels {
        let _ = write!(md, "| {} |", load.fmt_level(level));
        for s in &report.series {
            let v = at(s, level).map_or_else(|| "—".to_owned(), fmt_rps);
            let _ = write!(md, " {v} |");
        }
        let base = at(first, level).filter(|b| *b > 0.0);
        for s in &report.series[1..] {
            let v = match (at(s, level), base) {
                (Some(v), Some(b)) => format!("{}%", fmt_ms(100.0 * v / b)),
                _ => "—".to_owned(),
            };
            let _ = write!(md, " {v} |");
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "\nThe % columns compare each series with **{}** at the same {}.\n",
        first.name.trim(),
        load.noun()
    );
}

/// Escapes a table cell.
pub(super) fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
