//! Charts on canvas elements, drawn by the same plotters code as the
//! command line's figures.

use crate::io::run_file::RunFile;
use crate::plot::{draw_gradient_chart, draw_layer_step_map, draw_loss_chart, draw_metric_chart, AxisScale, Metric, PlotOptions};
use plotters::prelude::IntoDrawingArea;
use plotters_canvas::CanvasBackend;

/// Chart a canvas shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChartKind {
    Metric,
    Gradient,
    Loss,
    LayerStep,
}

/// Size the canvas's drawing buffer to its displayed size times the
/// device pixel ratio, so lines stay sharp on high-density screens.
/// Returns the buffer size.
fn fit_to_display(canvas: &web_sys::HtmlCanvasElement) -> (u32, u32) {
    let ratio = web_sys::window().map(|w| w.device_pixel_ratio()).unwrap_or(1.0).clamp(1.0, 4.0);
    let width = (canvas.client_width().max(320) as f64 * ratio).round() as u32;
    let height = (canvas.client_height().max(200) as f64 * ratio).round() as u32;
    if canvas.width() != width {
        canvas.set_width(width);
    }
    if canvas.height() != height {
        canvas.set_height(height);
    }
    (width, height)
}

/// Draw `kind` for `run` on `canvas`; returns a message when the chart
/// cannot be drawn (for example before the first evaluation).
/// The axis choices of the page's view options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scales {
    pub layer: AxisScale,
    pub loss: AxisScale,
    pub x: AxisScale,
}

pub fn draw(canvas: &web_sys::HtmlCanvasElement, kind: ChartKind, run: &RunFile, metric: Metric, scales: Scales) -> Result<(), String> {
    let (width, height) = fit_to_display(canvas);
    let backend = CanvasBackend::with_canvas_object(canvas.clone()).ok_or("the canvas has no 2D context")?;
    let area = backend.into_drawing_area();
    let options = PlotOptions { metric, layer_scale: scales.layer, loss_scale: scales.loss, x_scale: scales.x, eval_index: None, width, height };
    let result = match kind {
        ChartKind::Metric => draw_metric_chart(&area, run, &options),
        ChartKind::Gradient => draw_gradient_chart(&area, run, &options),
        ChartKind::Loss => draw_loss_chart(&area, run, &options),
        ChartKind::LayerStep => draw_layer_step_map(&area, run, metric, scales.layer),
    };
    result.map_err(|e| e.to_string())?;
    area.present().map_err(|e| e.to_string())
}
