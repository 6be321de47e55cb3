//! Axes: every axis is a linear f64 axis; log axes hold log10(value), with ticks chosen here.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::format::trim_zeros;

pub(super) struct Axis {
    pub(super) range: Range<f64>,
    pub(super) ticks: Vec<f64>,
    pub(super) minor: Vec<f64>,
    pub(super) log: bool,
    pub(super) label: Box<dyn Fn(f64) -> String>,
    pub(super) desc: String,
}

impl Axis {
    /// Where a value goes on this axis; None for values a log axis cannot show.
    pub(super) fn pos(&self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            None
        } else if self.log {
            (v > 0.0).then(|| v.log10())
        } else {
            Some(v)
        }
    }

    pub(super) fn spec(&self) -> Ticked {
        Ticked {
            linear: self.range.clone().into(),
            ticks: self.ticks.clone(),
            minor: self.minor.clone(),
        }
    }

    /// Log axis spanning the positive values, at least a factor of 4 wide.
    pub(super) fn log(values: impl IntoIterator<Item = f64>, desc: impl Into<String>) -> Axis {
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
    pub(super) fn levels(values: impl IntoIterator<Item = f64>, desc: impl Into<String>) -> Axis {
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
    pub(super) fn linear(
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
    pub(super) fn auto(groups: &[Vec<f64>], ratio: f64, desc: &str) -> Axis {
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
    pub(super) fn percentile(max_x: f64) -> Axis {
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
pub(super) struct Ticked {
    pub(super) linear: RangedCoordf64,
    pub(super) ticks: Vec<f64>,
    pub(super) minor: Vec<f64>,
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
pub(super) fn percentile_x(p: f64) -> Option<f64> {
    (p.is_finite() && (0.0..100.0).contains(&p)).then(|| -(1.0 - p / 100.0).log10())
}

pub(super) fn fmt_percentile_tick(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = if x > 2.5 { x.round() as usize - 2 } else { 0 };
    format!("{p:.decimals$}%")
}

/// Decades when at least three fit (minor lines at 2..9); else 1-2-5 (minor lines between); else
/// every mantissa.
pub(super) fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
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

pub(super) fn nice_step(raw: f64) -> f64 {
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
pub(super) fn fmt_tick(v: f64) -> String {
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
