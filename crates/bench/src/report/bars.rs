//! Grouped bars, for reports that compare configurations or stores by kind of request.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::axes::fmt_tick;
use super::draw::plot_err;

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
