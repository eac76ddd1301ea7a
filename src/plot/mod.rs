//! Charts of a run: a per-layer metric against its certified bound, the
//! per-layer gradient, and the loss curves.
//!
//! The drawing functions take any plotters [`DrawingBackend`], so the same
//! code draws SVG and PNG files here and a browser canvas in the web build.
//! Text uses the font family [`FONT_FAMILY`]. On native targets plotters
//! lays out text, SVG included, with fonts registered in the process (its
//! `ab_glyph` feature), so every drawing function first calls
//! [`register_chart_font`], which reads a TrueType file once per process.

mod axis;
mod heatmap;
#[cfg(not(target_arch = "wasm32"))]
mod file;
mod metric;
mod panels;
mod render;

#[cfg(not(target_arch = "wasm32"))]
pub use file::{register_chart_font, write_figure, FONT_ENV, FONT_PATHS, MAX_FIGURE_SIDE, MIN_FIGURE_HEIGHT, MIN_FIGURE_WIDTH};
pub use heatmap::draw_layer_step_map;
pub use metric::Metric;

use crate::io::run_file::RunFile;
use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, DrawingBackend, WHITE};
use render::{draw_panel, drawing_error, font};

/// Font family of all chart text. On native targets it names the font
/// that [`register_chart_font`] registers; in a browser it is the CSS
/// generic family.
pub const FONT_FAMILY: &str = "sans-serif";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AxisScale {
    Linear,
    Log,
}

/// Drawing choices, and the figure size for [`write_figure`].
#[derive(Clone, Debug, PartialEq)]
pub struct PlotOptions {
    pub metric: Metric,
    /// Y axis of the per-layer charts (metric and gradient).
    pub layer_scale: AxisScale,
    /// Y axis of the loss chart.
    pub loss_scale: AxisScale,
    /// X axis (layer or step) of every line chart. On a log axis, layer 0
    /// and step 0 cannot be placed; the caption counts how many were left out.
    pub x_scale: AxisScale,
    /// Index into `run.evals` of the evaluation the per-layer charts show;
    /// `None` for the last.
    pub eval_index: Option<usize>,
    /// Figure width in pixels.
    pub width: u32,
    /// Figure height in pixels.
    pub height: u32,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            metric: Metric::MaxTokenNorm,
            layer_scale: AxisScale::Log,
            loss_scale: AxisScale::Linear,
            x_scale: AxisScale::Linear,
            eval_index: None,
            width: 1200,
            height: 900,
        }
    }
}

/// A chart that could not be drawn or written.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PlotError {
    #[error("the run has no evaluations to plot; train it for at least one step, which records the step-0 evaluation")]
    NoEvaluations,
    #[error("evaluation index {index} is out of range: the run has {count} evaluations; choose an index below {count}, or none for the last")]
    EvalIndexOutOfRange { index: usize, count: usize },
    #[error("unsupported figure extension \"{extension}\" in {path}; use .svg or .png")]
    UnsupportedExtension { path: String, extension: String },
    #[error("invalid figure size {width} × {height} pixels; choose a width from {min_width} to {max} and a height from {min_height} to {max}")]
    InvalidSize { width: u32, height: u32, min_width: u32, min_height: u32, max: u32 },
    #[error("no chart font found (tried {}); install the Debian package fonts-dejavu-core or set LNLAB_FONT to a TrueType font file", tried.join(", "))]
    FontMissing { tried: Vec<String> },
    #[error("font file {path} is not a TrueType or OpenType font; set LNLAB_FONT to a .ttf file such as /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]
    FontInvalid { path: String },
    #[error("drawing the chart failed: {0}")]
    Drawing(String),
    #[error("writing the figure to {path} failed: {message}; check that the folder exists and is writable")]
    Write { path: String, message: String },
}

/// Registers the chart font where plotters needs one (native targets).
fn ensure_font() -> Result<(), PlotError> {
    #[cfg(not(target_arch = "wasm32"))]
    register_chart_font()?;
    Ok(())
}

/// Draws the chosen metric against layer l = 0..L for the chosen
/// evaluation, with its certified bound as a dashed line and, for a Pre-LN
/// run's max token norm, the exponential growth fit as a dotted line.
/// Points above their bound get a cross and a caption note.
pub fn draw_metric_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>, run: &RunFile, options: &PlotOptions,
) -> Result<(), PlotError> {
    draw_panel(area, &panels::metric_panel(run, options)?)
}

/// Draws the gradient rms against layer for the chosen evaluation, with a
/// marker at the certified bound on the x_L gradient where the run has one.
pub fn draw_gradient_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>, run: &RunFile, options: &PlotOptions,
) -> Result<(), PlotError> {
    draw_panel(area, &panels::gradient_panel(run, options)?)
}

/// Draws the training and validation loss of every evaluation against
/// step, the loss of every training batch, and a line at ln V.
pub fn draw_loss_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>, run: &RunFile, options: &PlotOptions,
) -> Result<(), PlotError> {
    draw_panel(area, &panels::loss_panel(run, options)?)
}

/// Draws all three charts under a heading with the run's settings: the
/// metric chart across the top half, gradient and loss side by side below.
/// Checks the evaluation choice before drawing anything.
pub fn draw_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>, run: &RunFile, options: &PlotOptions,
) -> Result<(), PlotError> {
    panels::select_eval(run, options)?;
    ensure_font()?;
    root.fill(&WHITE).map_err(drawing_error)?;
    let (width, height) = root.dim_in_pixel();
    let heading_size = ((height as f64 / 900.0).min(width as f64 / 1200.0) * 22.0).clamp(14.0, 66.0) as u32;
    let body = root.titled(&panels::figure_heading(run), font(heading_size)).map_err(drawing_error)?;

    let (_, body_height) = body.dim_in_pixel();
    let (top, bottom) = body.split_vertically(body_height / 2);
    let (bottom_width, _) = bottom.dim_in_pixel();
    let (left, right) = bottom.split_horizontally(bottom_width / 2);
    draw_metric_chart(&top, run, options)?;
    draw_gradient_chart(&left, run, options)?;
    draw_loss_chart(&right, run, options)
}
