//! Charts of one run, or of up to [`MAX_OVERLAID_RUNS`] runs overlaid: a
//! per-layer metric against its certified bound, the per-layer gradient,
//! the loss curves and a layer × step map, on a light or dark [`Theme`].
//! [`chart_svg`] renders one chart to an SVG string and [`html_report`]
//! puts the charts and tables of the runs in one HTML file.
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
mod labels;
mod legend;
mod metric;
mod panels;
mod render;
mod report;
mod theme;

#[cfg(not(target_arch = "wasm32"))]
pub use file::{register_chart_font, write_figure, FONT_ENV, FONT_PATHS};
pub use heatmap::draw_layer_step_map;
pub use labels::difference_labels;
pub use metric::Metric;
pub use report::{escape_html, html_report};
pub use theme::Theme;

use crate::io::run_file::RunFile;
use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, DrawingBackend, IntoDrawingArea, SVGBackend};
use render::{draw_panel, drawing_error, fitting_size, font};

/// Font family of all chart text. On native targets it names the font
/// that [`register_chart_font`] registers; in a browser it is the CSS
/// generic family.
pub const FONT_FAMILY: &str = "sans-serif";

/// Maximum number of runs that one chart overlays. Each gets its own
/// colour of the palette in [`Theme::run_colour`], which has this many.
pub const MAX_OVERLAID_RUNS: usize = 4;

/// Smallest figure width in pixels for [`write_figure`] and [`draw_figure`].
/// In narrower figures the chart titles and legends overflow their panels.
pub const MIN_FIGURE_WIDTH: u32 = 640;
/// Smallest figure height in pixels, for the same reason as [`MIN_FIGURE_WIDTH`].
pub const MIN_FIGURE_HEIGHT: u32 = 480;
/// Smallest side in pixels of a single chart from [`chart_svg`]: the
/// smallest canvas the page draws on is 320 × 200.
pub const MIN_CHART_SIDE: u32 = 200;
/// Largest figure or chart side in pixels, which keeps a PNG buffer at or below 300 MB.
pub const MAX_FIGURE_SIDE: u32 = 10_000;

/// One run on a chart and its legend label.
#[derive(Clone, Debug)]
pub struct ChartRun<'a> {
    pub run: &'a RunFile,
    /// Name of the run in legends, notes and tables, such as "Pre-LN".
    pub label: String,
}

impl<'a> ChartRun<'a> {
    /// Pairs each run with its label from [`difference_labels`].
    pub fn labelled(runs: &[&'a RunFile]) -> Vec<ChartRun<'a>> {
        runs.iter().zip(difference_labels(runs)).map(|(run, label)| ChartRun { run, label }).collect()
    }
}

/// A chart that the page or [`chart_svg`] draws alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChartKind {
    /// [`draw_metric_chart`]
    Metric,
    /// [`draw_gradient_chart`]
    Gradient,
    /// [`draw_loss_chart`]
    Loss,
    /// [`draw_layer_step_map`], which shows the first run only.
    LayerStep,
}

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
    /// Index into each run's `evals` of the evaluation the per-layer charts
    /// show; `None` for each run's last.
    pub eval_index: Option<usize>,
    /// Figure or chart width in pixels.
    pub width: u32,
    /// Figure or chart height in pixels.
    pub height: u32,
    pub theme: Theme,
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
            theme: Theme::Light,
        }
    }
}

/// A chart that could not be drawn or written.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PlotError {
    #[error("no run to plot; give between 1 and {MAX_OVERLAID_RUNS} runs")]
    NoRuns,
    #[error("{count} runs given, but a chart overlays at most {max}; leave out {}", count - max)]
    TooManyRuns { count: usize, max: usize },
    #[error("run \"{run}\" has no evaluations to plot; train it for at least one step, which records the step-0 evaluation")]
    NoEvaluations { run: String },
    #[error("evaluation index {index} is out of range: run \"{run}\" has {count} evaluations; choose an index below {count}, or none for the last")]
    EvalIndexOutOfRange { run: String, index: usize, count: usize },
    #[error("unsupported figure extension \"{extension}\" in {path}; use .svg or .png")]
    UnsupportedExtension { path: String, extension: String },
    #[error("invalid image size {width} × {height} pixels; choose a width from {min_width} to {max} and a height from {min_height} to {max}")]
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

/// Draws the chosen metric against layer l = 0..L at the chosen evaluation
/// of each run, with its certified bound as a dashed line and, for a Pre-LN
/// run's max token norm, the exponential growth fit as a dotted line.
/// Points above their bound get a cross and a caption note.
pub fn draw_metric_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>, runs: &[ChartRun], options: &PlotOptions,
) -> Result<(), PlotError> {
    draw_panel(area, &panels::metric_panel(runs, options)?)
}

/// Draws the gradient rms against layer at the chosen evaluation of each
/// run, with a marker at the certified bound on the x_L gradient where a
/// run has one.
pub fn draw_gradient_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>, runs: &[ChartRun], options: &PlotOptions,
) -> Result<(), PlotError> {
    draw_panel(area, &panels::gradient_panel(runs, options)?)
}

/// Draws the training and validation loss of every evaluation of each run
/// against step, the loss of every training batch, and a line at ln V.
pub fn draw_loss_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>, runs: &[ChartRun], options: &PlotOptions,
) -> Result<(), PlotError> {
    draw_panel(area, &panels::loss_panel(runs, options)?)
}

/// Draws all three line charts under a heading with the runs' settings:
/// the metric chart across the top half, gradient and loss side by side
/// below. Checks the runs and the evaluation choice before drawing anything.
pub fn draw_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>, runs: &[ChartRun], options: &PlotOptions,
) -> Result<(), PlotError> {
    panels::select_evals(runs, options)?;
    ensure_font()?;
    root.fill(&options.theme.background()).map_err(drawing_error)?;
    let (width, height) = root.dim_in_pixel();
    let heading = panels::figure_heading(runs);
    let heading_size = ((height as f64 / 900.0).min(width as f64 / 1200.0) * 22.0).clamp(14.0, 66.0) as u32;
    let heading_size = heading_size.min(fitting_size(&heading, width));
    let body = root.titled(&heading, font(heading_size, options.theme.text())).map_err(drawing_error)?;

    let (_, body_height) = body.dim_in_pixel();
    let (top, bottom) = body.split_vertically(body_height / 2);
    let (bottom_width, _) = bottom.dim_in_pixel();
    let (left, right) = bottom.split_horizontally(bottom_width / 2);
    draw_metric_chart(&top, runs, options)?;
    draw_gradient_chart(&left, runs, options)?;
    draw_loss_chart(&right, runs, options)
}

/// Renders one chart of `kind` to an SVG document of `options.width` ×
/// `options.height` pixels, each from [`MIN_CHART_SIDE`] to [`MAX_FIGURE_SIDE`].
/// Plotters escapes all text it writes, so run labels cannot inject markup.
pub fn chart_svg(kind: ChartKind, runs: &[ChartRun], options: &PlotOptions) -> Result<String, PlotError> {
    check_size(options, MIN_CHART_SIDE, MIN_CHART_SIDE)?;
    panels::select_evals(runs, options)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (options.width, options.height)).into_drawing_area();
        match kind {
            ChartKind::Metric => draw_metric_chart(&root, runs, options)?,
            ChartKind::Gradient => draw_gradient_chart(&root, runs, options)?,
            ChartKind::Loss => draw_loss_chart(&root, runs, options)?,
            ChartKind::LayerStep => draw_layer_step_map(&root, runs, options)?,
        }
        root.present().map_err(drawing_error)?;
    }
    Ok(svg)
}

/// Checks that `options.width` and `options.height` are at least the given
/// minimums and at most [`MAX_FIGURE_SIDE`].
pub(crate) fn check_size(options: &PlotOptions, min_width: u32, min_height: u32) -> Result<(), PlotError> {
    let width_ok = (min_width..=MAX_FIGURE_SIDE).contains(&options.width);
    let height_ok = (min_height..=MAX_FIGURE_SIDE).contains(&options.height);
    if width_ok && height_ok {
        return Ok(());
    }
    Err(PlotError::InvalidSize { width: options.width, height: options.height, min_width, min_height, max: MAX_FIGURE_SIDE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limits() {
        let small = PlotOptions { width: 10, ..PlotOptions::default() };
        assert!(matches!(check_size(&small, MIN_FIGURE_WIDTH, MIN_FIGURE_HEIGHT), Err(PlotError::InvalidSize { width: 10, .. })));
        assert!(check_size(&PlotOptions::default(), MIN_FIGURE_WIDTH, MIN_FIGURE_HEIGHT).is_ok());
        let huge = PlotOptions { height: MAX_FIGURE_SIDE + 1, ..PlotOptions::default() };
        assert!(check_size(&huge, MIN_CHART_SIDE, MIN_CHART_SIDE).is_err());
    }

    #[test]
    fn too_many_runs_message_names_the_excess() {
        let error = PlotError::TooManyRuns { count: 6, max: MAX_OVERLAID_RUNS };
        assert_eq!(error.to_string(), "6 runs given, but a chart overlays at most 4; leave out 2");
    }
}
