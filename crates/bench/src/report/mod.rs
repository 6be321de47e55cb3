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

mod axes;
mod bars;
mod charts;
mod data;
mod draw;
mod format;
mod markdown;

pub use bars::grouped_bars;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use self::charts::{
    distribution_svg, latency_svg, latency_vs_throughput_svg, throughput_svg, timeline_svg,
};
use self::data::Load;
use self::format::{fmt_secs, pretty_time};
use self::markdown::{series_table, side_by_side};
use crate::model::RunReport;

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
