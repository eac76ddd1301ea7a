//! The layer × step view: one cell per (evaluation, layer), coloured by the
//! chosen metric, so growth during training shows as a colour gradient.

use super::panels::select_evals;
use super::render::{drawing_error, fitting_size, font};
use super::{AxisScale, ChartRun, PlotError, PlotOptions};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;

/// Cell colour value: the metric, or its log10 on a log scale. `None` for
/// values that cannot be placed (non-finite, or not positive on a log scale).
fn shade(value: f64, scale: AxisScale) -> Option<f64> {
    match scale {
        _ if !value.is_finite() => None,
        AxisScale::Log if value <= 0.0 => None,
        AxisScale::Log => Some(value.log10()),
        AxisScale::Linear => Some(value),
    }
}

/// Draws `options.metric` of every layer (rows) at every evaluation
/// (columns) of the first run, on `options.layer_scale`. Overlaid runs can
/// share no cells, so the title names the run drawn when there are several.
/// Cells without a placeable value are grey.
pub fn draw_layer_step_map<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>, runs: &[ChartRun], options: &PlotOptions,
) -> Result<(), PlotError> {
    super::ensure_font()?;
    let theme = options.theme;
    area.fill(&theme.background()).map_err(drawing_error)?;
    select_evals(runs, &PlotOptions { eval_index: None, ..options.clone() })?;
    let (metric, scale) = (options.metric, options.layer_scale);
    let run = runs[0].run;
    let layers = run.model.layers + 1;
    let columns = run.evals.len();
    let shades: Vec<Option<f64>> =
        run.evals.iter().flat_map(|e| e.layers.iter().map(move |m| shade(metric.value(m), scale))).collect();
    let (low, high) = shades.iter().flatten().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (low, high) = if low.is_finite() && high > low { (low, high) } else { (low.min(0.0), low.max(0.0) + 1.0) };

    let (width, _) = area.dim_in_pixel();
    let text = (width as f64 / 45.0).clamp(12.0, 28.0) as u32;
    let scale_name = if scale == AxisScale::Log { "log10 " } else { "" };
    let mut title = format!("{}: {scale_name}{low:.2} (dark) to {high:.2} (bright)", metric.name());
    if runs.len() > 1 {
        title.push_str(&format!(", {} only (first of {} runs)", runs[0].label, runs.len()));
    }
    let title_size = (text + 2).min(fitting_size(&title, width));
    let mut chart = ChartBuilder::on(area)
        .caption(title, font(title_size, theme.text()))
        .margin(8)
        .x_label_area_size(text * 3)
        .y_label_area_size(text * 3)
        .build_cartesian_2d(0f64..columns as f64, 0f64..layers as f64)
        .map_err(drawing_error)?;
    let steps: Vec<usize> = run.evals.iter().map(|e| e.step).collect();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("step")
        .y_desc("layer l")
        .x_labels(columns.min(8))
        .y_labels(layers.min(10))
        .x_label_formatter(&|x| steps.get(*x as usize).map(|s| s.to_string()).unwrap_or_default())
        .y_label_formatter(&|y| format!("{}", *y as usize))
        .label_style(font(text, theme.text()))
        .axis_desc_style(font(text, theme.text()))
        .axis_style(theme.text())
        .draw()
        .map_err(drawing_error)?;

    let cells = run.evals.iter().enumerate().flat_map(|(column, eval)| {
        eval.layers.iter().enumerate().map(move |(layer, m)| (column, layer, shade(metric.value(m), scale)))
    });
    chart
        .draw_series(cells.map(|(column, layer, value)| {
            let colour = match value {
                Some(v) => ViridisRGB::get_color_normalized(v, low, high).filled(),
                None => theme.missing_cell().filled(),
            };
            let (x, y) = (column as f64, layer as f64);
            Rectangle::new([(x, y), (x + 1.0, y + 1.0)], colour)
        }))
        .map_err(drawing_error)?;
    Ok(())
}
