//! Charts on canvas elements, drawn by the same plotters code as the
//! command line's figures.

use crate::plot::{draw_gradient_chart, draw_layer_step_map, draw_loss_chart, draw_metric_chart, ChartKind, ChartRun, PlotOptions};
use plotters::prelude::IntoDrawingArea;
use plotters_canvas::CanvasBackend;

/// Sizes the canvas's drawing buffer to its displayed size times the
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

/// Draws `kind` for `runs` on `canvas`; returns a message when the chart
/// cannot be drawn (for example before the first evaluation).
pub fn draw(canvas: &web_sys::HtmlCanvasElement, kind: ChartKind, runs: &[ChartRun], options: &PlotOptions) -> Result<(), String> {
    let (width, height) = fit_to_display(canvas);
    let backend = CanvasBackend::with_canvas_object(canvas.clone()).ok_or("the canvas has no 2D context")?;
    let area = backend.into_drawing_area();
    let options = PlotOptions { width, height, ..options.clone() };
    let result = match kind {
        ChartKind::Metric => draw_metric_chart(&area, runs, &options),
        ChartKind::Gradient => draw_gradient_chart(&area, runs, &options),
        ChartKind::Loss => draw_loss_chart(&area, runs, &options),
        ChartKind::LayerStep => draw_layer_step_map(&area, runs, &options),
    };
    result.map_err(|e| e.to_string())?;
    area.present().map_err(|e| e.to_string())
}
