//! Drawing primitives shared by the charts: sizes, colours, markers, legends, frames.

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axes::{Axis, Ticked};
use super::format::fmt_secs;
use crate::model::{RunReport, Series};

pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
pub(super) type Ctx<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Ticked, Ticked>>;

pub(super) const WIDTH: u32 = 900;
pub(super) const PLOT_H: u32 = 460;
pub(super) const PANEL_H: u32 = 330;
pub(super) const HEADER_H: u32 = 62;
pub(super) const FONT: &str = "sans-serif";
pub(super) const LEGEND_ROW_H: u32 = 24;
pub(super) const LEGEND_X: i32 = 24;
pub(super) const SAMPLE_W: i32 = 34;
/// Rough width of a legend character (DejaVu Sans at the legend's 12.9 px averages ~7.4).
pub(super) const CHAR_W: f64 = 7.6;
pub(super) const GREY: RGBColor = RGBColor(85, 85, 85);

/// tab10: distinct, and readable on white.
pub(super) const PALETTE: [RGBColor; 10] = [
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

pub(super) fn colour(series_index: usize) -> RGBColor {
    PALETTE[series_index % PALETTE.len()]
}

pub(super) const SERIES_MARKERS: [Marker; 5] = [
    Marker::Circle,
    Marker::Square,
    Marker::Triangle,
    Marker::Diamond,
    Marker::Cross,
];

pub(super) fn series_marker(series_index: usize) -> Marker {
    SERIES_MARKERS[series_index % SERIES_MARKERS.len()]
}

pub(super) fn plot_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("plotting: {e}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Line {
    Solid(u32),
    Dashed,
    Dotted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Marker {
    None,
    Circle,
    Square,
    Triangle,
    Diamond,
    Cross,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Style {
    pub(super) colour: RGBColor,
    pub(super) line: Line,
    pub(super) marker: Marker,
}

pub(super) struct LegendGroup {
    pub(super) heading: Option<String>,
    pub(super) items: Vec<(String, Style)>,
}

/// Legend items placed in rows: (row, x, label, style).
pub(super) struct LegendLayout {
    pub(super) headings: Vec<(u32, String)>,
    pub(super) items: Vec<(u32, i32, String, Style)>,
    pub(super) rows: u32,
}

impl LegendLayout {
    pub(super) fn new(groups: &[LegendGroup]) -> LegendLayout {
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

    pub(super) fn height(&self) -> u32 {
        if self.rows == 0 {
            0
        } else {
            self.rows * LEGEND_ROW_H + 14
        }
    }

    pub(super) fn draw(&self, area: &Area<'_>) -> Result<()> {
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
pub(super) fn sample_line(
    area: &Area<'_>,
    from: (i32, i32),
    to: (i32, i32),
    style: &Style,
) -> Result<()> {
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

pub(super) fn marker_at<CT: CoordTranslate>(
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
pub(super) fn draw_runs(
    chart: &mut Ctx<'_, '_>,
    points: &[Option<(f64, f64)>],
    style: &Style,
) -> Result<()> {
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
pub(super) fn svg(height: u32, draw: impl FnOnce(&Area<'_>) -> Result<()>) -> Result<String> {
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
pub(super) fn chart_height(body: u32, legend: &LegendLayout) -> u32 {
    HEADER_H + body + legend.height()
}

/// Draws the title block and the legend; returns the area left for the plots.
pub(super) fn frame<'a>(
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
pub(super) fn plot<'a, 'b>(
    area: &'a Area<'b>,
    x: &Axis,
    y: &Axis,
    x_desc: bool,
) -> Result<Ctx<'a, 'b>> {
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

pub(super) fn no_data(chart: &Ctx<'_, '_>) -> Result<()> {
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

pub(super) fn subtitle(report: &RunReport, extra: &str) -> String {
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
pub(super) fn drawable(report: &RunReport) -> impl Iterator<Item = (usize, &Series)> {
    report
        .series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.points.is_empty())
}
