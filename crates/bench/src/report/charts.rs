//! The five charts of a run.

use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axes::{Axis, fmt_tick, percentile_x};
use super::data::{Load, has_latency, sorted_points, top_point, us_to_ms};
use super::draw::{
    FONT, GREY, LegendGroup, LegendLayout, Line, Marker, PANEL_H, PLOT_H, Style, chart_height,
    colour, draw_runs, drawable, frame, no_data, plot, plot_err, series_marker, subtitle, svg,
};
use crate::model::{Point, RunReport, Series};

pub(super) fn throughput_svg(report: &RunReport, load: Load, title: &str) -> Result<String> {
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

pub(super) const PERCENTILES: [(&str, Line, Marker); 4] = [
    ("p50", Line::Solid(2), Marker::Circle),
    ("p90", Line::Dashed, Marker::Square),
    ("p99", Line::Solid(3), Marker::Triangle),
    ("max", Line::Dotted, Marker::Cross),
];

pub(super) fn percentile_values(p: &Point) -> [u64; 4] {
    [
        p.latency.p50_us,
        p.latency.p90_us,
        p.latency.p99_us,
        p.latency.max_us,
    ]
}

pub(super) fn latency_svg(report: &RunReport, load: Load, title: &str) -> Result<String> {
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

pub(super) fn latency_vs_throughput_svg(
    report: &RunReport,
    load: Load,
    title: &str,
) -> Result<String> {
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

pub(super) fn timeline_svg(report: &RunReport, load: Load, title: &str) -> Result<String> {
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

pub(super) fn distribution_svg(report: &RunReport, load: Load, title: &str) -> Result<String> {
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
