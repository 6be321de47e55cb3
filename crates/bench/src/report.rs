//! Turns a [`RunReport`] into files a person reads: the JSON itself, SVG charts and a GitHub
//! Markdown report that embeds the charts.
//!
//! Charts, each `<stem>-<chart>.svg`, 900 px wide on a white background:
//!
//! - `throughput`: successful requests/s against the load level, one line per series. The y
//!   axis turns logarithmic when the series' best throughputs differ by more than 20× (a
//!   `/health` ceiling next to a slow query would otherwise flatten the slow one onto zero).
//! - `latency`: p50, p90, p99 and max against the load level on a log y axis in ms. Colour
//!   identifies the series, line style and marker the percentile (solid/circle p50,
//!   dashed/square p90, bold/triangle p99, dotted/cross max), so every series shares one chart
//!   and stays comparable; the legend has one row for each of the two keys.
//! - `latency-vs-throughput`: p99 against achieved throughput, one line per series, each point
//!   labelled with its load level: where a line turns upwards, the target saturates.
//! - `timeline`: two stacked panels sharing the time axis, successful requests per second
//!   (dashed: errors per second, when there are any) above and p99 per second below, for the
//!   highest load level of each series.
//! - `distribution`: the latency distribution at each series' highest load level, plotted like
//!   HdrHistogram's plotter: x is 1/(1-p) on a log scale, labelled 50%, 90%, 99%, 99.9%...
//!
//! The load level is the concurrency (clients or connections), on a log axis labelled 1, 10,
//! 100, 1000; when every point carries an open-model `target_rate`, the target rate is the
//! load level instead. Log axes are plotted as linear axes over log10(value) with ticks chosen
//! here, so labels read "0.5, 1, 2, 5" rather than "1e0". Latencies are clamped to 0.001 ms
//! before taking a log; a point or second without any latency data (nothing completed) is left
//! out of latency charts rather than drawn at the clamp.
//!
//! The Markdown embeds `<stem>-<chart>.png`: a later step converts each SVG to a PNG next to it
//! (GitHub does not render SVG text reliably), and a line under each image links the SVG.

use std::fmt::Write as _;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::model::{Point, RunReport, Series};

/// One chart written by [`render_charts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    /// File name without extension, e.g. "user-search-throughput": the chart is
    /// `<file_stem>.svg`, and the Markdown embeds `<file_stem>.png`.
    pub file_stem: String,
    /// Human title, also the image's alt text.
    pub title: String,
}

/// Writes `<dir>/<stem>.json` (the RunReport, pretty), the SVG charts `<dir>/<stem>-<chart>.svg`,
/// and `<dir>/<stem>.md`; returns the paths written.
pub fn write_all(report: &RunReport, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();

    let json_path = dir.join(format!("{stem}.json"));
    let mut json = serde_json::to_string_pretty(report).context("serialising the run report")?;
    json.push('\n');
    fs::write(&json_path, json).with_context(|| format!("writing {}", json_path.display()))?;
    written.push(json_path);

    let charts = render_charts(report, dir, stem)?;
    written.extend(
        charts
            .iter()
            .map(|c| dir.join(format!("{}.svg", c.file_stem))),
    );

    let md_path = dir.join(format!("{stem}.md"));
    fs::write(&md_path, render_markdown(report, stem, &charts))
        .with_context(|| format!("writing {}", md_path.display()))?;
    written.push(md_path);
    Ok(written)
}

/// Draws one chart: (report, load axis, title) → SVG text.
type RenderFn = fn(&RunReport, Load, &str) -> Result<String>;

/// Renders every chart as `<dir>/<stem>-<chart>.svg` and returns them in report order. Every
/// chart is written even without data (it then says "no data"), so the file set is stable.
pub fn render_charts(report: &RunReport, dir: &Path, stem: &str) -> Result<Vec<Chart>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let load = Load::of(report);
    let noun = load.noun();
    let renders: [(&str, String, RenderFn); 5] = [
        (
            "throughput",
            format!("Throughput vs {noun}"),
            throughput_svg,
        ),
        (
            "latency",
            format!("Latency percentiles vs {noun}"),
            latency_svg,
        ),
        (
            "latency-vs-throughput",
            "p99 latency vs throughput".to_owned(),
            latency_vs_throughput_svg,
        ),
        (
            "timeline",
            format!("Over time at the highest {noun}"),
            timeline_svg,
        ),
        (
            "distribution",
            format!("Latency distribution at the highest {noun}"),
            distribution_svg,
        ),
    ];
    let mut charts = Vec::with_capacity(renders.len());
    for (name, title, render) in renders {
        let svg =
            render(report, load, &title).with_context(|| format!("drawing the {name} chart"))?;
        let file_stem = format!("{stem}-{name}");
        let path = dir.join(format!("{file_stem}.svg"));
        fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        charts.push(Chart { file_stem, title });
    }
    Ok(charts)
}

/// Renders the GitHub-flavoured Markdown report: setup, one table per series, the side-by-side
/// throughput table (when there are at least two series) and the charts as PNG images.
pub fn render_markdown(report: &RunReport, stem: &str, charts: &[Chart]) -> String {
    let load = Load::of(report);
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", report.title.trim());
    let _ = writeln!(
        md,
        "Run started {}. Raw results: [`{stem}.json`]({stem}.json).\n",
        pretty_time(&report.started_at)
    );
    if !report.preamble.trim().is_empty() {
        let _ = writeln!(md, "{}\n", report.preamble.trim());
    }

    md.push_str("## Setup\n\n");
    let m = &report.machine;
    let mut machine = format!("{} CPU{}", m.cpus, if m.cpus == 1 { "" } else { "s" });
    if !m.cpu_model.trim().is_empty() {
        let _ = write!(machine, " ({})", m.cpu_model.trim());
    }
    let _ = write!(machine, ", {:.1} GiB RAM", m.memory_gib);
    if !m.os.trim().is_empty() {
        let _ = write!(machine, ", {}", m.os.trim());
    }
    let _ = writeln!(md, "- **Machine:** {machine}");
    let p = &report.params;
    let model = match p.model.as_str() {
        "closed" => {
            "closed: N concurrent clients, each waits for its reply before sending again".to_owned()
        }
        "open" => {
            "open: requests arrive at a fixed rate, latency counts from the intended send time"
                .to_owned()
        }
        other => other.to_owned(),
    };
    let _ = writeln!(md, "- **Load model:** {model}");
    let _ = writeln!(
        md,
        "- **Each level:** {} s warm-up, then {} s measured; request timeout {} ms",
        fmt_secs(p.warmup_secs),
        fmt_secs(p.duration_secs),
        p.timeout_ms
    );
    for note in &report.notes {
        let _ = writeln!(md, "- {}", note.trim());
    }

    md.push_str("\n## Results\n\n");
    md.push_str(
        "rps counts successful (2xx) responses per second; errors are non-2xx answers, timeouts \
         and connection failures.\n\n",
    );
    if report.series.is_empty() {
        md.push_str("_No series were measured._\n\n");
    }
    for s in &report.series {
        series_table(&mut md, s, load);
    }
    if report.series.len() >= 2 {
        side_by_side(&mut md, report, load);
    }

    if !charts.is_empty() {
        md.push_str("## Charts\n\n");
        for c in charts {
            let _ = writeln!(md, "### {}\n", c.title);
            let _ = writeln!(md, "![{}]({}.png)\n", c.title, c.file_stem);
            let _ = writeln!(md, "[SVG version]({}.svg)\n", c.file_stem);
        }
    }
    for section in &report.appendix {
        let _ = writeln!(md, "## {}\n", section.title.trim());
        let _ = writeln!(md, "{}\n", section.markdown.trim());
    }
    while md.ends_with("\n\n") {
        md.pop();
    }
    md
}

// ---------------------------------------------------------------------------------------------
// Markdown pieces

fn series_table(md: &mut String, s: &Series, load: Load) {
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
fn errors_cell(p: &Point) -> String {
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

fn is_success(outcome: &str) -> bool {
    outcome.len() == 3 && outcome.starts_with('2') && outcome.bytes().all(|b| b.is_ascii_digit())
}

fn side_by_side(md: &mut String, report: &RunReport, load: Load) {
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
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// "2025-06-01T12:00:03Z" → "2025-06-01 12:00:03 UTC"; anything else unchanged.
fn pretty_time(t: &str) -> String {
    let b = t.as_bytes();
    if b.len() >= 19 && b[10] == b'T' && t.ends_with('Z') {
        let secs = &t[11..t.len() - 1];
        let secs = secs.split('.').next().unwrap_or(secs);
        format!("{} {secs} UTC", &t[..10])
    } else {
        t.to_owned()
    }
}

fn fmt_secs(s: f64) -> String {
    trim_zeros(format!("{s:.1}"))
}

/// Milliseconds (or any positive quantity) to three significant digits, exact to the µs below
/// 1 ms, whole numbers with thousands separators from 100: 0.042, 0.423, 3.14, 31.4, 314, 3,140.
fn fmt_ms(v: f64) -> String {
    if !v.is_finite() {
        return "—".to_owned();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".to_owned()
    } else if a < 1.0 {
        format!("{v:.3}")
    } else if a < 10.0 {
        format!("{v:.2}")
    } else if a < 100.0 {
        format!("{v:.1}")
    } else {
        group_thousands(v)
    }
}

/// 1234567.8 → "1,234,568".
fn group_thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Requests per second: as [`fmt_ms`].
fn fmt_rps(v: f64) -> String {
    if !v.is_finite() {
        return "—".to_owned();
    }
    fmt_ms(v)
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Data helpers

/// What the x axis of the per-level charts measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Concurrency,
    TargetRate,
}

impl Load {
    /// Target rate when every point has one (an open-model run), else concurrency.
    fn of(report: &RunReport) -> Load {
        let mut points = report.series.iter().flat_map(|s| &s.points).peekable();
        if points.peek().is_some() && points.all(|p| p.target_rate.is_some_and(|r| r > 0.0)) {
            Load::TargetRate
        } else {
            Load::Concurrency
        }
    }

    fn x(self, p: &Point) -> f64 {
        match self {
            Load::Concurrency => f64::from(p.concurrency),
            Load::TargetRate => p.target_rate.unwrap_or(0.0),
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Load::Concurrency => "concurrency",
            Load::TargetRate => "target rate",
        }
    }

    fn axis_desc(self) -> &'static str {
        match self {
            Load::Concurrency => "concurrency (clients, log scale)",
            Load::TargetRate => "target arrival rate (requests/s, log scale)",
        }
    }

    fn fmt_level(self, x: f64) -> String {
        match self {
            Load::Concurrency => format!("{x}"),
            Load::TargetRate => fmt_rps(x),
        }
    }

    /// Legend suffix naming the level of a point, e.g. "c=256" or "5,000 req/s".
    fn tag(self, p: &Point) -> String {
        match self {
            Load::Concurrency => format!("c={}", p.concurrency),
            Load::TargetRate => format!("{} req/s", fmt_rps(self.x(p))),
        }
    }
}

fn sorted_points(s: &Series, load: Load) -> Vec<&Point> {
    let mut v: Vec<&Point> = s.points.iter().collect();
    v.sort_by(|a, b| load.x(a).total_cmp(&load.x(b)));
    v
}

/// Whether a point has any latency measurements (a point where nothing completed has none).
fn has_latency(p: &Point) -> bool {
    p.ok > 0 || p.latency.max_us > 0
}

/// The highest-load point of `s` that satisfies `usable`.
fn top_point(s: &Series, load: Load, usable: impl Fn(&Point) -> bool) -> Option<&Point> {
    sorted_points(s, load).into_iter().rev().find(|p| usable(p))
}

/// Smallest latency plotted on a log axis, in ms.
const MIN_MS: f64 = 0.001;

fn us_to_ms(us: u64) -> f64 {
    (us as f64 / 1000.0).max(MIN_MS)
}

// ---------------------------------------------------------------------------------------------
// Axes: every axis is a linear f64 axis; log axes hold log10(value).

struct Axis {
    range: Range<f64>,
    ticks: Vec<f64>,
    minor: Vec<f64>,
    log: bool,
    label: Box<dyn Fn(f64) -> String>,
    desc: String,
}

impl Axis {
    /// Where a value goes on this axis; None for values a log axis cannot show.
    fn pos(&self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            None
        } else if self.log {
            (v > 0.0).then(|| v.log10())
        } else {
            Some(v)
        }
    }

    fn spec(&self) -> Ticked {
        Ticked {
            linear: self.range.clone().into(),
            ticks: self.ticks.clone(),
            minor: self.minor.clone(),
        }
    }

    /// Log axis spanning the positive values, at least a factor of 4 wide.
    fn log(values: impl IntoIterator<Item = f64>, desc: impl Into<String>) -> Axis {
        let logs: Vec<f64> = values
            .into_iter()
            .filter(|v| v.is_finite() && *v > 0.0)
            .map(f64::log10)
            .collect();
        let (mut lo, mut hi) = if logs.is_empty() {
            (0.0, 1.0)
        } else {
            (
                logs.iter().copied().fold(f64::INFINITY, f64::min),
                logs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        };
        if hi - lo < 0.6 {
            let mid = (lo + hi) / 2.0;
            lo = mid - 0.3;
            hi = mid + 0.3;
        }
        let pad = ((hi - lo) * 0.05).max(0.04);
        lo -= pad;
        hi += pad;
        let (ticks, minor) = log_ticks(lo, hi);
        Axis {
            range: lo..hi,
            ticks,
            minor,
            log: true,
            label: Box::new(|x| fmt_tick(10f64.powf(x))),
            desc: desc.into(),
        }
    }

    /// Log axis for load levels: when there are at most 8 levels, spaced at least 0.15 decades
    /// apart, the ticks are the levels themselves (1, 4, 16, 64 or 1, 10, 100, 1000), so every
    /// point sits on a labelled grid line; otherwise ticks as for any log axis.
    fn levels(values: impl IntoIterator<Item = f64>, desc: impl Into<String>) -> Axis {
        let mut levels: Vec<f64> = values
            .into_iter()
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        levels.sort_by(f64::total_cmp);
        levels.dedup();
        let mut axis = Axis::log(levels.iter().copied(), desc);
        let spaced = levels
            .windows(2)
            .all(|w| w[1].log10() - w[0].log10() >= 0.15);
        if !levels.is_empty() && levels.len() <= 8 && spaced {
            axis.ticks = levels.iter().map(|v| v.log10()).collect();
            axis.minor = Vec::new();
        }
        axis
    }

    /// Linear axis from 0 (or below, for negative data) to the largest value plus headroom.
    fn linear(
        values: impl IntoIterator<Item = f64>,
        headroom: bool,
        desc: impl Into<String>,
    ) -> Axis {
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        for v in values.into_iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi - lo <= 0.0 {
            hi = lo + 1.0;
        }
        if headroom {
            hi += (hi - lo) * 0.08;
        }
        let step = nice_step((hi - lo) / 6.0);
        let ticks: Vec<f64> = ((lo / step).ceil() as i64..=(hi / step + 1e-9).floor() as i64)
            .map(|k| k as f64 * step)
            .collect();
        Axis {
            range: lo..hi,
            ticks,
            minor: Vec::new(),
            log: false,
            label: Box::new(fmt_tick),
            desc: desc.into(),
        }
    }

    /// Linear from zero, unless the groups' peaks differ by more than `ratio`: then log, so the
    /// small group is not flattened onto the axis.
    fn auto(groups: &[Vec<f64>], ratio: f64, desc: &str) -> Axis {
        let peaks: Vec<f64> = groups
            .iter()
            .filter_map(|g| g.iter().copied().filter(|v| v.is_finite()).reduce(f64::max))
            .filter(|v| *v > 0.0)
            .collect();
        let lo = peaks.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = peaks.iter().copied().fold(0.0, f64::max);
        let all = groups.iter().flatten().copied();
        if peaks.len() >= 2 && hi / lo > ratio {
            Axis::log(all, format!("{desc} (log scale)"))
        } else {
            Axis::linear(all, true, desc)
        }
    }

    /// HdrHistogram-style percentile axis: x = log10(1/(1-p)), up to `max_x`.
    fn percentile(max_x: f64) -> Axis {
        let hi = max_x.clamp(2.0, 6.0) + 0.06;
        let mut ticks = vec![0.0, 2f64.log10()];
        ticks.extend((1..=hi.floor() as i32).map(f64::from));
        let mut minor = vec![5f64.log10()];
        for k in 1..=hi.ceil() as i32 {
            for m in [2.0f64, 5.0] {
                let x = m.log10() + f64::from(k);
                if x < hi {
                    minor.push(x);
                }
            }
        }
        Axis {
            range: 0.0..hi,
            ticks,
            minor,
            log: false,
            label: Box::new(fmt_percentile_tick),
            desc: "percentile (log scale of 1/(1−p))".to_owned(),
        }
    }
}

/// A linear f64 coordinate with chosen bold (labelled) and light grid positions. (plotters'
/// own `WithKeyPoints` over f64 loses the default formatting that `configure_mesh` needs.)
struct Ticked {
    linear: RangedCoordf64,
    ticks: Vec<f64>,
    minor: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.linear.range()
    }
}

/// Position of percentile `p` (0..100) on the percentile axis; None at 100 (infinitely far).
fn percentile_x(p: f64) -> Option<f64> {
    (p.is_finite() && (0.0..100.0).contains(&p)).then(|| -(1.0 - p / 100.0).log10())
}

fn fmt_percentile_tick(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = if x > 2.5 { x.round() as usize - 2 } else { 0 };
    format!("{p:.decimals$}%")
}

/// Decades when at least three fit (minor lines at 2..9); else 1-2-5 (minor lines between); else
/// every mantissa.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let at = |mantissas: &[f64]| -> Vec<f64> {
        let mut out = Vec::new();
        for d in (lo.floor() as i32 - 1)..=(hi.ceil() as i32) {
            for m in mantissas {
                let x = m.log10() + f64::from(d);
                if x >= lo - 1e-9 && x <= hi + 1e-9 {
                    out.push(x);
                }
            }
        }
        out
    };
    let decades = at(&[1.0]);
    if decades.len() >= 3 {
        return (decades, at(&[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]));
    }
    let one_two_five = at(&[1.0, 2.0, 5.0]);
    if one_two_five.len() >= 2 {
        return (one_two_five, at(&[3.0, 4.0, 6.0, 7.0, 8.0, 9.0]));
    }
    (
        at(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]),
        Vec::new(),
    )
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag)
}

/// Tick label: "0.002", "0.5", "2.5", "1000", "20k", "1.5M".
fn fmt_tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".to_owned();
    }
    let e = v.abs().log10().floor();
    let f = 10f64.powf(5.0 - e);
    let v = (v * f).round() / f;
    let a = v.abs();
    if a >= 1e6 {
        trim_zeros(format!("{:.2}", v / 1e6)) + "M"
    } else if a >= 1e4 {
        trim_zeros(format!("{:.2}", v / 1e3)) + "k"
    } else if a >= 1.0 {
        trim_zeros(format!("{v:.2}"))
    } else {
        let decimals = (-a.log10()).ceil() as usize + 2;
        trim_zeros(format!("{v:.decimals$}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Drawing primitives

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Ctx<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Ticked, Ticked>>;

const WIDTH: u32 = 900;
const PLOT_H: u32 = 460;
const PANEL_H: u32 = 330;
const HEADER_H: u32 = 62;
const FONT: &str = "sans-serif";
const LEGEND_ROW_H: u32 = 24;
const LEGEND_X: i32 = 24;
const SAMPLE_W: i32 = 34;
/// Rough width of a legend character (DejaVu Sans at the legend's 12.9 px averages ~7.4).
const CHAR_W: f64 = 7.6;
const GREY: RGBColor = RGBColor(85, 85, 85);

/// tab10: distinct, and readable on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn colour(series_index: usize) -> RGBColor {
    PALETTE[series_index % PALETTE.len()]
}

const SERIES_MARKERS: [Marker; 5] = [
    Marker::Circle,
    Marker::Square,
    Marker::Triangle,
    Marker::Diamond,
    Marker::Cross,
];

fn series_marker(series_index: usize) -> Marker {
    SERIES_MARKERS[series_index % SERIES_MARKERS.len()]
}

fn plot_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("plotting: {e}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    Solid(u32),
    Dashed,
    Dotted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Circle,
    Square,
    Triangle,
    Diamond,
    Cross,
}

#[derive(Debug, Clone, Copy)]
struct Style {
    colour: RGBColor,
    line: Line,
    marker: Marker,
}

struct LegendGroup {
    heading: Option<String>,
    items: Vec<(String, Style)>,
}

/// Legend items placed in rows: (row, x, label, style).
struct LegendLayout {
    headings: Vec<(u32, String)>,
    items: Vec<(u32, i32, String, Style)>,
    rows: u32,
}

impl LegendLayout {
    fn new(groups: &[LegendGroup]) -> LegendLayout {
        let text_w = |s: &str| (s.chars().count() as f64 * CHAR_W).ceil() as i32;
        let max_x = WIDTH as i32 - 16;
        let mut layout = LegendLayout {
            headings: Vec::new(),
            items: Vec::new(),
            rows: 0,
        };
        let mut row = 0u32;
        for g in groups.iter().filter(|g| !g.items.is_empty()) {
            let mut x = LEGEND_X;
            if let Some(h) = &g.heading {
                layout.headings.push((row, h.clone()));
                x += text_w(h) + 12;
            }
            let start_x = x;
            for (label, style) in &g.items {
                let w = SAMPLE_W + 8 + text_w(label) + 24;
                if x + w - 24 > max_x && x > start_x {
                    row += 1;
                    x = start_x;
                }
                layout.items.push((row, x, label.clone(), *style));
                x += w;
            }
            row += 1;
        }
        layout.rows = row;
        layout
    }

    fn height(&self) -> u32 {
        if self.rows == 0 {
            0
        } else {
            self.rows * LEGEND_ROW_H + 14
        }
    }

    fn draw(&self, area: &Area<'_>) -> Result<()> {
        let y = |row: u32| 6 + (row * LEGEND_ROW_H + LEGEND_ROW_H / 2) as i32;
        let text = TextStyle::from((FONT, 16).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        for (row, heading) in &self.headings {
            area.draw(&Text::new(
                heading.clone(),
                (LEGEND_X, y(*row)),
                text.color(&GREY),
            ))
            .map_err(plot_err)?;
        }
        for (row, x, label, style) in &self.items {
            let yc = y(*row);
            sample_line(area, (*x, yc), (*x + SAMPLE_W, yc), style)?;
            marker_at(area, (*x + SAMPLE_W / 2, yc), style)?;
            area.draw(&Text::new(
                label.clone(),
                (*x + SAMPLE_W + 8, yc),
                text.color(&BLACK),
            ))
            .map_err(plot_err)?;
        }
        Ok(())
    }
}

/// A short legend sample of a line style, in pixels.
fn sample_line(area: &Area<'_>, from: (i32, i32), to: (i32, i32), style: &Style) -> Result<()> {
    let c = style.colour;
    let (dash, gap, width) = match style.line {
        Line::Solid(w) => {
            area.draw(&PathElement::new(
                vec![from, to],
                ShapeStyle::from(&c).stroke_width(w),
            ))
            .map_err(plot_err)?;
            return Ok(());
        }
        Line::Dashed => (8, 5, 2),
        Line::Dotted => (2, 4, 2),
    };
    let mut x = from.0;
    while x < to.0 {
        let end = (x + dash).min(to.0);
        area.draw(&PathElement::new(
            vec![(x, from.1), (end, from.1)],
            ShapeStyle::from(&c).stroke_width(width),
        ))
        .map_err(plot_err)?;
        x += dash + gap;
    }
    Ok(())
}

fn marker_at<CT: CoordTranslate>(
    area: &DrawingArea<SVGBackend<'_>, CT>,
    at: CT::From,
    style: &Style,
) -> Result<()> {
    let c = style.colour;
    let fill = ShapeStyle::from(&c).filled();
    let stroke = ShapeStyle::from(&c).stroke_width(2);
    let drawn = match style.marker {
        Marker::None => Ok(()),
        Marker::Circle => area.draw(&(EmptyElement::at(at) + Circle::new((0, 0), 4, fill))),
        Marker::Square => {
            area.draw(&(EmptyElement::at(at) + Rectangle::new([(-4, -4), (4, 4)], fill)))
        }
        Marker::Triangle => {
            area.draw(&(EmptyElement::at(at) + Polygon::new(vec![(0, -6), (5, 3), (-5, 3)], fill)))
        }
        Marker::Diamond => area.draw(
            &(EmptyElement::at(at) + Polygon::new(vec![(0, -6), (5, 0), (0, 6), (-5, 0)], fill)),
        ),
        Marker::Cross => area.draw(
            &(EmptyElement::at(at)
                + PathElement::new(vec![(-4, -4), (4, 4)], stroke)
                + PathElement::new(vec![(-4, 4), (4, -4)], stroke)),
        ),
    };
    drawn.map_err(plot_err)
}

/// Draws a series whose gaps (None) break the line; every point gets the marker, and a point
/// standing alone gets a dot even when the style has no marker.
fn draw_runs(chart: &mut Ctx<'_, '_>, points: &[Option<(f64, f64)>], style: &Style) -> Result<()> {
    for run in points.split(Option::is_none) {
        let run: Vec<(f64, f64)> = run.iter().flatten().copied().collect();
        if run.len() >= 2 {
            let c = style.colour;
            match style.line {
                Line::Solid(w) => {
                    chart
                        .draw_series(LineSeries::new(
                            run.iter().copied(),
                            ShapeStyle::from(&c).stroke_width(w),
                        ))
                        .map_err(plot_err)?;
                }
                Line::Dashed => {
                    chart
                        .draw_series(DashedLineSeries::new(
                            run.iter().copied(),
                            8,
                            5,
                            ShapeStyle::from(&c).stroke_width(2),
                        ))
                        .map_err(plot_err)?;
                }
                Line::Dotted => {
                    chart
                        .draw_series(DashedLineSeries::new(
                            run.iter().copied(),
                            2,
                            4,
                            ShapeStyle::from(&c).stroke_width(2),
                        ))
                        .map_err(plot_err)?;
                }
            }
        }
        let marker = if style.marker == Marker::None && run.len() == 1 {
            Marker::Circle
        } else {
            style.marker
        };
        let style = Style { marker, ..*style };
        for p in &run {
            marker_at(chart.plotting_area(), *p, &style)?;
        }
    }
    Ok(())
}

/// Builds an SVG of `height` px: white background, then `draw`.
fn svg(height: u32, draw: impl FnOnce(&Area<'_>) -> Result<()>) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root)?;
        root.present().map_err(plot_err)?;
    }
    Ok(buf)
}

/// Total height for a chart with `body` px of plots and this legend.
fn chart_height(body: u32, legend: &LegendLayout) -> u32 {
    HEADER_H + body + legend.height()
}

/// Draws the title block and the legend; returns the area left for the plots.
fn frame<'a>(
    root: &Area<'a>,
    title: &str,
    subtitle: &str,
    legend: &LegendLayout,
) -> Result<Area<'a>> {
    let (header, rest) = root.split_vertically(HEADER_H);
    let (_, h) = rest.dim_in_pixel();
    let (body, legend_area) = rest.split_vertically(h - legend.height());
    let left = TextStyle::from((FONT, 24).into_font().style(FontStyle::Bold))
        .pos(Pos::new(HPos::Left, VPos::Top));
    header
        .draw(&Text::new(title.to_owned(), (LEGEND_X, 12), left.clone()))
        .map_err(plot_err)?;
    let sub = TextStyle::from((FONT, 16).into_font()).pos(Pos::new(HPos::Left, VPos::Top));
    header
        .draw(&Text::new(
            subtitle.to_owned(),
            (LEGEND_X, 40),
            sub.color(&GREY),
        ))
        .map_err(plot_err)?;
    legend.draw(&legend_area)?;
    Ok(body)
}

/// Plot area with mesh, tick labels and axis descriptions.
fn plot<'a, 'b>(area: &'a Area<'b>, x: &Axis, y: &Axis, x_desc: bool) -> Result<Ctx<'a, 'b>> {
    let mut chart = ChartBuilder::on(area)
        .margin_left(10)
        .margin_right(30)
        .margin_top(10)
        .margin_bottom(4)
        .x_label_area_size(if x_desc { 54 } else { 30 })
        .y_label_area_size(84)
        .build_cartesian_2d(x.spec(), y.spec())
        .map_err(plot_err)?;
    let xl = |v: &f64| (x.label)(*v);
    let yl = |v: &f64| (y.label)(*v);
    let mut mesh = chart.configure_mesh();
    mesh.x_label_formatter(&xl)
        .y_label_formatter(&yl)
        .y_desc(y.desc.as_str())
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 17))
        .bold_line_style(RGBColor(212, 212, 212))
        .light_line_style(RGBColor(240, 240, 240))
        .axis_style(RGBColor(110, 110, 110));
    if x_desc {
        mesh.x_desc(x.desc.as_str());
    }
    mesh.draw().map_err(plot_err)?;
    Ok(chart)
}

fn no_data(chart: &Ctx<'_, '_>) -> Result<()> {
    let area = chart.plotting_area().strip_coord_spec();
    let (w, h) = area.dim_in_pixel();
    let style = TextStyle::from((FONT, 20).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(
        "no data",
        (w as i32 / 2, h as i32 / 2),
        style.color(&GREY),
    ))
    .map_err(plot_err)
}

fn subtitle(report: &RunReport, extra: &str) -> String {
    let p = &report.params;
    let mut s = format!(
        "{} · {} model, {} s per level",
        report.title.trim(),
        p.model,
        fmt_secs(p.duration_secs)
    );
    if !extra.is_empty() {
        s.push_str(" · ");
        s.push_str(extra);
    }
    s
}

/// Series worth drawing, with their stable colour index.
fn drawable(report: &RunReport) -> impl Iterator<Item = (usize, &Series)> {
    report
        .series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.points.is_empty())
}

// ---------------------------------------------------------------------------------------------
// The charts

fn throughput_svg(report: &RunReport, load: Load, title: &str) -> Result<String> {
    let x = Axis::levels(
        report
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| load.x(p))),
        load.axis_desc(),
    );
    let groups: Vec<Vec<f64>> = drawable(report)
        .map(|(_, s)| s.points.iter().map(|p| p.throughput_rps).collect())
        .collect();
    let y = Axis::auto(&groups, 20.0, "successful requests/s");
    let style = |i: usize| Style {
        colour: colour(i),
        line: Line::Solid(2),
        marker: series_marker(i),
    };
    let legend = LegendLayout::new(&[LegendGroup {
        heading: None,
        items: drawable(report)
            .map(|(i, s)| (s.name.clone(), style(i)))
            .collect(),
    }]);
    let sub = subtitle(report, "");
    svg(chart_height(PLOT_H, &legend), |root| {
        let body = frame(root, title, &sub, &legend)?;
        let mut chart = plot(&body, &x, &y, true)?;
        if groups.is_empty() {
            return no_data(&chart);
        }
        for (i, s) in drawable(report) {
            let pts: Vec<_> = sorted_points(s, load)
                .into_iter()
                .map(|p| Some((x.pos(load.x(p))?, y.pos(p.throughput_rps)?)))
                .collect();
            draw_runs(&mut chart, &pts, &style(i))?;
            if y.log {
                // A level where nothing succeeded has no place on a log axis: mark it on the
                // bottom edge instead of leaving a silent gap.
                let c = colour(i);
                let text =
                    TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Bottom));
                for p in s.points.iter().filter(|p| p.throughput_rps <= 0.0) {
                    let Some(px) = x.pos(load.x(p)) else { continue };
                    let stroke = ShapeStyle::from(&c).stroke_width(2);
                    chart
                        .plotting_area()
                        .draw(
                            &(EmptyElement::at((px, y.range.start))
                                + PathElement::new(vec![(-4, -10), (4, -2)], stroke)
                                + PathElement::new(vec![(-4, -2), (4, -10)], stroke)
                                + Text::new("0 ok", (7, -6), text.color(&c))),
                        )
                        .map_err(plot_err)?;
                }
            }
        }
        Ok(())
    })
}

const PERCENTILES: [(&str, Line, Marker); 4] = [
    ("p50", Line::Solid(2), Marker::Circle),
    ("p90", Line::Dashed, Marker::Square),
    ("p99", Line::Solid(3), Marker::Triangle),
    ("max", Line::Dotted, Marker::Cross),
];

fn percentile_values(p: &Point) -> [u64; 4] {
    [
        p.latency.p50_us,
        p.latency.p90_us,
        p.latency.p99_us,
        p.latency.max_us,
    ]
}

fn latency_svg(report: &RunReport, load: Load, title: &str) -> Result<String> {
    let x = Axis::levels(
        report
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| load.x(p))),
        load.axis_desc(),
    );
    let values: Vec<f64> = drawable(report)
        .flat_map(|(_, s)| s.points.iter())
        .filter(|p| has_latency(p))
        .flat_map(|p| percentile_values(p).map(us_to_ms))
        .collect();
    let y = Axis::log(values.iter().copied(), "latency (ms, log scale)");
    let legend = LegendLayout::new(&[
        LegendGroup {
            heading: Some("series".to_owned()),
            items: drawable(report)
                .map(|(i, s)| {
                    (
                        s.name.clone(),
                        Style {
                            colour: colour(i),
                            line: Line::Solid(3),
                            marker: Marker::None,
                        },
                    )
                })
                .collect(),
        },
        LegendGroup {
            heading: Some("percentile".to_owned()),
            items: PERCENTILES
                .iter()
                .map(|(name, line, marker)| {
                    (
                        (*name).to_owned(),
                        Style {
                            colour: GREY,
                            line: *line,
                            marker: *marker,
                        },
                    )
                })
                .collect(),
        },
    ]);
    let sub = subtitle(report, "");
    svg(chart_height(PLOT_H, &legend), |root| {
        let body = frame(root, title, &sub, &legend)?;
        let mut chart = plot(&body, &x, &y, true)?;
        if values.is_empty() {
            return no_data(&chart);
        }
        for (i, s) in drawable(report) {
            let points = sorted_points(s, load);
            for (k, (_, line, marker)) in PERCENTILES.iter().enumerate() {
                let pts: Vec<_> = points
                    .iter()
                    .map(|p| {
                        if !has_latency(p) {
                            return None;
                        }
                        Some((x.pos(load.x(p))?, y.pos(us_to_ms(percentile_values(p)[k]))?))
                    })
                    .collect();
                draw_runs(
                    &mut chart,
                    &pts,
                    &Style {
                        colour: colour(i),
                        line: *line,
                        marker: *marker,
                    },
                )?;
            }
        }
        Ok(())
    })
}

fn latency_vs_throughput_svg(report: &RunReport, load: Load, title: &str) -> Result<String> {
    let usable = |p: &Point| p.ok > 0 && p.throughput_rps > 0.0;
    let groups: Vec<Vec<f64>> = drawable(report)
        .map(|(_, s)| {
            s.points
                .iter()
                .filter(|p| usable(p))
                .map(|p| p.throughput_rps)
                .collect()
        })
        .collect();
    // Log x when the points span more than 20×, else linear from zero.
    let rps: Vec<f64> = groups.iter().flatten().copied().collect();
    let (lo, hi) = rps.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(*v), hi.max(*v))
    });
    let x = if rps.len() >= 2 && hi / lo > 20.0 {
        Axis::log(rps.iter().copied(), "successful requests/s (log scale)")
    } else {
        Axis::linear(rps.iter().copied(), true, "successful requests/s")
    };
    let y = Axis::log(
        drawable(report)
            .flat_map(|(_, s)| s.points.iter())
            .filter(|p| usable(p))
            .map(|p| us_to_ms(p.latency.p99_us)),
        "p99 latency (ms, log scale)",
    );
    let style = |i: usize| Style {
        colour: colour(i),
        line: Line::Solid(2),
        marker: series_marker(i),
    };
    let legend = LegendLayout::new(&[LegendGroup {
        heading: None,
        items: drawable(report)
            .map(|(i, s)| (s.name.clone(), style(i)))
            .collect(),
    }]);
    let extra = match load {
        Load::Concurrency => "points labelled with their concurrency",
        Load::TargetRate => "points labelled with their target rate",
    };
    let sub = subtitle(report, extra);
    svg(chart_height(PLOT_H, &legend), |root| {
        let body = frame(root, title, &sub, &legend)?;
        let mut chart = plot(&body, &x, &y, true)?;
        if rps.is_empty() {
            return no_data(&chart);
        }
        for (i, s) in drawable(report) {
            let points: Vec<&Point> = sorted_points(s, load)
                .into_iter()
                .filter(|p| usable(p))
                .collect();
            let pts: Vec<_> = points
                .iter()
                .map(|p| Some((x.pos(p.throughput_rps)?, y.pos(us_to_ms(p.latency.p99_us))?)))
                .collect();
            draw_runs(&mut chart, &pts, &style(i))?;
            let c = colour(i);
            let label =
                TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Bottom));
            for (p, at) in points.iter().zip(&pts) {
                if let Some(at) = at {
                    let text = match load {
                        Load::Concurrency => p.concurrency.to_string(),
                        Load::TargetRate => fmt_tick(load.x(p)),
                    };
                    chart
                        .plotting_area()
                        .draw(&(EmptyElement::at(*at) + Text::new(text, (6, -5), label.color(&c))))
                        .map_err(plot_err)?;
                }
            }
        }
        Ok(())
    })
}

fn timeline_svg(report: &RunReport, load: Load, title: &str) -> Result<String> {
    let picked: Vec<(usize, &Series, &Point)> = drawable(report)
        .filter_map(|(i, s)| Some((i, s, top_point(s, load, |p| !p.timeline.is_empty())?)))
        .collect();
    let any_errors = picked
        .iter()
        .any(|(_, _, p)| p.timeline.iter().any(|t| t.errors > 0));
    let max_t = picked
        .iter()
        .flat_map(|(_, _, p)| p.timeline.iter().map(|t| f64::from(t.t)))
        .fold(0.0, f64::max);
    let mut x = Axis::linear([max_t], false, "time since the measured phase started (s)");
    // Whole seconds: no ticks at 0.2 s.
    x.ticks.retain(|t| t.fract() == 0.0);
    let groups: Vec<Vec<f64>> = picked
        .iter()
        .map(|(_, _, p)| {
            p.timeline
                .iter()
                .flat_map(|t| [t.ok as f64, t.errors as f64])
                .collect()
        })
        .collect();
    let y_rps = Axis::auto(&groups, 20.0, "requests per second");
    let live = |t: &crate::model::Second| t.ok > 0 || t.p99_us > 0;
    let y_lat = Axis::log(
        picked.iter().flat_map(|(_, _, p)| {
            p.timeline
                .iter()
                .filter(|t| live(t))
                .map(|t| us_to_ms(t.p99_us))
        }),
        "p99 latency (ms, log scale)",
    );
    let mut groups_legend = vec![LegendGroup {
        heading: None,
        items: picked
            .iter()
            .map(|(i, s, p)| {
                (
                    format!("{} ({})", s.name, load.tag(p)),
                    Style {
                        colour: colour(*i),
                        line: Line::Solid(2),
                        marker: Marker::None,
                    },
                )
            })
            .collect(),
    }];
    if any_errors {
        groups_legend.push(LegendGroup {
            heading: Some("top panel".to_owned()),
            items: vec![
                (
                    "successful/s".to_owned(),
                    Style {
                        colour: GREY,
                        line: Line::Solid(2),
                        marker: Marker::None,
                    },
                ),
                (
                    "errors/s".to_owned(),
                    Style {
                        colour: GREY,
                        line: Line::Dashed,
                        marker: Marker::None,
                    },
                ),
            ],
        });
    }
    let legend = LegendLayout::new(&groups_legend);
    let sub = subtitle(report, "one-second buckets");
    svg(chart_height(2 * PANEL_H, &legend), |root| {
        let body = frame(root, title, &sub, &legend)?;
        let (top, bottom) = body.split_vertically(PANEL_H);
        let mut upper = plot(&top, &x, &y_rps, false)?;
        let mut lower = plot(&bottom, &x, &y_lat, true)?;
        if picked.is_empty() {
            no_data(&upper)?;
            return no_data(&lower);
        }
        for (i, _, p) in &picked {
            let c = colour(*i);
            let ok: Vec<_> = p
                .timeline
                .iter()
                .map(|t| Some((f64::from(t.t), y_rps.pos(t.ok as f64)?)))
                .collect();
            draw_runs(
                &mut upper,
                &ok,
                &Style {
                    colour: c,
                    line: Line::Solid(2),
                    marker: Marker::None,
                },
            )?;
            if p.timeline.iter().any(|t| t.errors > 0) {
                let err: Vec<_> = p
                    .timeline
                    .iter()
                    .map(|t| Some((f64::from(t.t), y_rps.pos(t.errors as f64)?)))
                    .collect();
                draw_runs(
                    &mut upper,
                    &err,
                    &Style {
                        colour: c,
                        line: Line::Dashed,
                        marker: Marker::None,
                    },
                )?;
            }
            let lat: Vec<_> = p
                .timeline
                .iter()
                .map(|t| live(t).then(|| (f64::from(t.t), us_to_ms(t.p99_us).log10())))
                .collect();
            draw_runs(
                &mut lower,
                &lat,
                &Style {
                    colour: c,
                    line: Line::Solid(2),
                    marker: Marker::None,
                },
            )?;
        }
        Ok(())
    })
}

fn distribution_svg(report: &RunReport, load: Load, title: &str) -> Result<String> {
    let picked: Vec<(usize, &Series, &Point)> = drawable(report)
        .filter_map(|(i, s)| {
            let p = top_point(s, load, |p| {
                p.distribution
                    .iter()
                    .any(|(q, _)| percentile_x(*q).is_some())
            })?;
            Some((i, s, p))
        })
        .collect();
    let max_x = picked
        .iter()
        .flat_map(|(_, _, p)| p.distribution.iter().filter_map(|(q, _)| percentile_x(*q)))
        .fold(0.0, f64::max);
    let x = Axis::percentile(max_x);
    let visible = |q: f64| percentile_x(q).filter(|x_| *x_ <= x.range.end);
    let y = Axis::log(
        picked.iter().flat_map(|(_, _, p)| {
            p.distribution
                .iter()
                .filter(|(q, _)| visible(*q).is_some())
                .map(|(_, us)| us_to_ms(*us))
        }),
        "latency (ms, log scale)",
    );
    let style = |i: usize| Style {
        colour: colour(i),
        line: Line::Solid(2),
        marker: Marker::None,
    };
    let legend = LegendLayout::new(&[LegendGroup {
        heading: None,
        items: picked
            .iter()
            .map(|(i, s, p)| (format!("{} ({})", s.name, load.tag(p)), style(*i)))
            .collect(),
    }]);
    let sub = subtitle(report, "");
    svg(chart_height(PLOT_H, &legend), |root| {
        let body = frame(root, title, &sub, &legend)?;
        let mut chart = plot(&body, &x, &y, true)?;
        if picked.is_empty() {
            return no_data(&chart);
        }
        for (i, _, p) in &picked {
            let mut dist: Vec<(f64, f64)> = p
                .distribution
                .iter()
                .filter_map(|(q, us)| Some((visible(*q)?, us_to_ms(*us).log10())))
                .collect();
            dist.sort_by(|a, b| a.0.total_cmp(&b.0));
            let pts: Vec<_> = dist.into_iter().map(Some).collect();
            draw_runs(&mut chart, &pts, &style(*i))?;
        }
        Ok(())
    })
}

/// Grouped bars: for each group (a kind of request, a query), one bar per series (a
/// configuration, a store). With `log`, the value axis is logarithmic, for values that span
/// orders of magnitude; a missing value leaves a gap.
pub fn grouped_bars(
    path: &Path,
    title: &str,
    unit: &str,
    groups: &[String],
    series: &[(String, Vec<Option<f64>>)],
    log: bool,
) -> Result<()> {
    let values = || {
        series
            .iter()
            .flat_map(|(_, values)| values.iter().flatten().copied())
    };
    let scale = |v: f64| if log { v.max(1e-3).log10() } else { v };
    let (bottom, top) = if log {
        let low = values().fold(f64::INFINITY, f64::min);
        let high = values().fold(0.0_f64, f64::max);
        let low = if low.is_finite() {
            scale(low).floor()
        } else {
            0.0
        };
        (low, scale(high.max(1e-3)).ceil().max(low + 1.0))
    } else {
        (0.0, values().fold(0.0_f64, f64::max).max(0.001) * 1.15)
    };
    let root = SVGBackend::new(path, (1100, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..groups.len() as f64, bottom..top)
        .map_err(plot_err)?;
    let y_label = |y: &f64| {
        if log {
            fmt_tick(10f64.powf(*y))
        } else {
            fmt_tick(*y)
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let at = x.floor() as usize;
            if (x - at as f64 - 0.5).abs() < 0.26 {
                groups.get(at).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_labels(if log { (top - bottom) as usize + 1 } else { 10 })
        .y_label_formatter(&y_label)
        .y_desc(if log {
            format!("{unit} (log scale)")
        } else {
            unit.to_owned()
        })
        .draw()
        .map_err(plot_err)?;
    let width = 0.8 / series.len().max(1) as f64;
    for (index, (label, values)) in series.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(values.iter().enumerate().filter_map(|(at, value)| {
                let x0 = at as f64 + 0.1 + index as f64 * width;
                Some(Rectangle::new(
                    [
                        (x0, bottom),
                        (x0 + width * 0.9, scale((*value)?).max(bottom)),
                    ],
                    color.filled(),
                ))
            }))
            .map_err(plot_err)?
            .label(label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}
