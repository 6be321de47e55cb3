//! What the charts read from a run: the load axis, points in order, latencies in ms.

use super::format::fmt_rps;
use crate::model::{Point, RunReport, Series};

/// What the x axis of the per-level charts measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Load {
    Concurrency,
    TargetRate,
}

impl Load {
    /// Target rate when every point has one (an open-model run), else concurrency.
    pub(super) fn of(report: &RunReport) -> Load {
        let mut points = report.series.iter().flat_map(|s| &s.points).peekable();
        if points.peek().is_some() && points.all(|p| p.target_rate.is_some_and(|r| r > 0.0)) {
            Load::TargetRate
        } else {
            Load::Concurrency
        }
    }

    pub(super) fn x(self, p: &Point) -> f64 {
        match self {
            Load::Concurrency => f64::from(p.concurrency),
            Load::TargetRate => p.target_rate.unwrap_or(0.0),
        }
    }

    pub(super) fn noun(self) -> &'static str {
        match self {
            Load::Concurrency => "concurrency",
            Load::TargetRate => "target rate",
        }
    }

    pub(super) fn axis_desc(self) -> &'static str {
        match self {
            Load::Concurrency => "concurrency (clients, log scale)",
            Load::TargetRate => "target arrival rate (requests/s, log scale)",
        }
    }

    pub(super) fn fmt_level(self, x: f64) -> String {
        match self {
            Load::Concurrency => format!("{x}"),
            Load::TargetRate => fmt_rps(x),
        }
    }

    /// Legend suffix naming the level of a point, e.g. "c=256" or "5,000 req/s".
    pub(super) fn tag(self, p: &Point) -> String {
        match self {
            Load::Concurrency => format!("c={}", p.concurrency),
            Load::TargetRate => format!("{} req/s", fmt_rps(self.x(p))),
        }
    }
}

pub(super) fn sorted_points(s: &Series, load: Load) -> Vec<&Point> {
    let mut v: Vec<&Point> = s.points.iter().collect();
    v.sort_by(|a, b| load.x(a).total_cmp(&load.x(b)));
    v
}

/// Whether a point has any latency measurements (a point where nothing completed has none).
pub(super) fn has_latency(p: &Point) -> bool {
    p.ok > 0 || p.latency.max_us > 0
}

/// The highest-load point of `s` that satisfies `usable`.
pub(super) fn top_point(s: &Series, load: Load, usable: impl Fn(&Point) -> bool) -> Option<&Point> {
    sorted_points(s, load).into_iter().rev().find(|p| usable(p))
}

/// Smallest latency plotted on a log axis, in ms.
pub(super) const MIN_MS: f64 = 0.001;

pub(super) fn us_to_ms(us: u64) -> f64 {
    (us as f64 / 1000.0).max(MIN_MS)
}
