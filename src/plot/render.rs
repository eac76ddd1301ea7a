//! Draws a [`Panel`] (title, axes, series, legend) on any plotters backend.
//! The three charts differ only in the panel they build, so all drawing
//! lives here.

use super::axis::{Axis, Ticked};
use super::legend::{draw_legend_strip, legend_extent, legend_glyph_length, quietest_corner, strip_entries, Look};
use super::{AxisScale, PlotError, Theme, FONT_FAMILY};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;


/// One chart: what to draw and how to label it, before any axis is chosen.
pub(crate) struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Extra x range on each side, in data units, so end markers show whole
    /// (linear x axes only).
    pub x_padding: f64,
    pub x_scale: AxisScale,
    pub y_scale: AxisScale,
    pub theme: Theme,
    /// Labels of the overlaid runs, which [`Series::run`] indexes; empty
    /// for a single run, whose caption notes name no run.
    pub run_labels: Vec<String>,
    pub series: Vec<Series>,
    /// Legend entries that explain a stroke or marker without drawing data.
    pub key: Vec<KeyEntry>,
    /// Facts a reader needs that the lines cannot show, one short clause each.
    pub notes: Vec<String>,
}

pub(crate) struct Series {
    /// Legend text, or `None` for a line that the legend explains elsewhere.
    pub label: Option<String>,
    pub points: Vec<(f64, f64)>,
    pub color: RGBAColor,
    pub stroke: Stroke,
    pub marker: Option<Marker>,
    /// Index into [`Panel::run_labels`] of the run the line belongs to, or
    /// `None` for a line shared by all runs.
    pub run: Option<usize>,
}

impl Series {
    pub fn new(
        label: Option<String>, points: Vec<(f64, f64)>, color: impl Color, stroke: Stroke, marker: Option<Marker>, run: usize,
    ) -> Series {
        Series { label, points, color: color.to_rgba(), stroke, marker, run: Some(run) }
    }

    /// Marks the line as shared by all runs.
    pub fn shared(self) -> Series {
        Series { run: None, ..self }
    }
}

/// A legend entry with a sample of a stroke or marker and no data.
pub(crate) struct KeyEntry {
    pub label: String,
    pub color: RGBAColor,
    pub stroke: Stroke,
    pub marker: Option<Marker>,
}

impl KeyEntry {
    pub fn new(label: &str, color: impl Color, stroke: Stroke, marker: Option<Marker>) -> KeyEntry {
        KeyEntry { label: label.to_string(), color: color.to_rgba(), stroke, marker }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Stroke {
    None,
    Solid,
    /// Long dashes, for certified bounds.
    Dashed,
    /// Short dashes, for fits and reference lines.
    Dotted,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Marker {
    Circle,
    Cross,
    Triangle,
}

/// Text and line sizes, scaled with the panel so that a figure drawn
/// larger or smaller stays readable.
pub(crate) struct Sizes {
    pub title: u32,
    pub text: u32,
    pub line: u32,
    pub marker: u32,
}

impl Sizes {
    fn for_area(width: u32, height: u32) -> Sizes {
        // 1.0 is a panel of 560 × 420 pixels, a quarter of the default figure.
        let scale = (width as f64 / 560.0).min(height as f64 / 420.0).clamp(0.75, 3.0);
        let pixels = |base: f64| (base * scale).round().max(1.0) as u32;
        Sizes { title: pixels(19.0), text: pixels(15.0), line: pixels(2.0), marker: pixels(4.0) }
    }

    pub fn margin(&self) -> u32 {
        self.text
    }

    /// Height below the plot for tick labels and the x-axis description.
    pub fn x_label_area(&self) -> u32 {
        3 * self.text
    }

    /// Width left of the plot for tick labels and the y-axis description.
    pub fn y_label_area(&self) -> u32 {
        5 * self.text
    }
}

/// Wraps a plotters error as text, because its type depends on the backend.
pub(crate) fn drawing_error<E: std::error::Error + Send + Sync>(error: DrawingAreaErrorKind<E>) -> PlotError {
    PlotError::Drawing(error.to_string())
}

pub(crate) fn font(size: u32, colour: RGBColor) -> TextStyle<'static> {
    (FONT_FAMILY, size).into_font().color(&colour)
}

/// Estimated average advance of a character of the chart font, as a
/// fraction of the font size. It errs wide, so estimated text fits.
pub(crate) const CHARACTER_WIDTH_EM: f64 = 0.6;

/// Returns how many characters of text at `size` pixels fit in `width` pixels.
pub(crate) fn characters_within(width: u32, size: u32) -> usize {
    (width as f64 / (CHARACTER_WIDTH_EM * size.max(1) as f64)).floor().max(1.0) as usize
}

/// Joins caption notes with "; " into lines of at most `max_chars`
/// characters, breaking a note between words where it is longer than a line.
pub(crate) fn wrap_notes(notes: &[String], max_chars: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for (index, note) in notes.iter().enumerate() {
        let separator = if index + 1 < notes.len() { ";" } else { "" };
        for word in format!("{note}{separator}").split(' ') {
            let needed = current.chars().count() + 1 + word.chars().count();
            if !current.is_empty() && needed > max_chars {
                lines.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// Draws `panel` on `area`, filling it with the theme's background first.
pub(crate) fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel) -> Result<(), PlotError> {
    super::ensure_font()?;
    let theme = panel.theme;
    area.fill(&theme.background()).map_err(drawing_error)?;
    let (width, height) = area.dim_in_pixel();
    let sizes = Sizes::for_area(width, height);

    let xs: Vec<f64> = panel.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
    let ys: Vec<f64> = panel.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).collect();
    let x_axis = match panel.x_scale {
        AxisScale::Linear => Axis::integer(&xs, panel.x_padding),
        AxisScale::Log => Axis::values(&xs, AxisScale::Log),
    };
    let mut y_axis = Axis::values(&ys, panel.y_scale);

    let mut notes = panel.notes.clone();
    notes.extend(x_axis.fallback_note.clone().map(|note| format!("x axis: {note}")));
    notes.extend(y_axis.fallback_note.clone());
    notes.extend(skipped_note(panel, &x_axis, |p| p.0).map(|note| format!("x axis: {note}")));
    notes.extend(skipped_note(panel, &y_axis, |p| p.1));

    let title_size = sizes.title.min(fitting_size(&panel.title, width));
    let mut body = area.titled(&panel.title, font(title_size, theme.text())).map_err(drawing_error)?;
    let note_style = font(sizes.text, theme.note_text());
    for line in wrap_notes(&notes, characters_within(width.saturating_sub(2 * sizes.margin()), sizes.text)) {
        body = body.titled(&line, note_style.clone()).map_err(drawing_error)?;
    }

    // A single run's legend sits in the quietest corner of the plot. Where
    // no corner is free of data, the top of the y axis is raised so that the
    // legend sits above the data. Overlaid runs have too many entries for a
    // corner, so their legend is a strip of rows above the plot.
    let mut corner = SeriesLabelPosition::UpperLeft;
    if panel.run_labels.is_empty() {
        let (body_width, body_height) = body.dim_in_pixel();
        let plot_width = body_width.saturating_sub(2 * sizes.margin() + sizes.y_label_area());
        let plot_height = body_height.saturating_sub(2 * sizes.margin() + sizes.x_label_area());
        let legend = legend_extent(panel, &sizes, plot_width, plot_height);
        let covered;
        (corner, covered) = quietest_corner(panel, &x_axis, &y_axis, legend);
        if covered > 0 {
            y_axis = y_axis.with_headroom(legend.1 + 0.03);
            corner = quietest_corner(panel, &x_axis, &y_axis, legend).0;
        }
    } else {
        body = draw_legend_strip(body, &strip_entries(panel, &sizes, &x_axis, &y_axis), &sizes, theme)?;
    }

    let axes = (&x_axis, &y_axis);
    let linear = |axis: &Axis| Ticked { inner: RangedCoordf64::from(axis.range.clone()), ticks: axis.ticks.clone() };
    let log = |axis: &Axis| {
        let inner: LogCoord<f64> = axis.range.clone().log_scale().into();
        Ticked { inner, ticks: axis.ticks.clone() }
    };
    match (x_axis.scale, y_axis.scale) {
        (AxisScale::Linear, AxisScale::Linear) => draw_chart(&body, panel, &sizes, linear(&x_axis), linear(&y_axis), axes, corner),
        (AxisScale::Linear, AxisScale::Log) => draw_chart(&body, panel, &sizes, linear(&x_axis), log(&y_axis), axes, corner),
        (AxisScale::Log, AxisScale::Linear) => draw_chart(&body, panel, &sizes, log(&x_axis), linear(&y_axis), axes, corner),
        (AxisScale::Log, AxisScale::Log) => draw_chart(&body, panel, &sizes, log(&x_axis), log(&y_axis), axes, corner),
    }
}

/// Returns the largest font size, in pixels, at which `text` fits on one
/// line `width` pixels wide, leaving a margin of a twentieth on each side.
pub(crate) fn fitting_size(text: &str, width: u32) -> u32 {
    let usable = width as f64 * 0.9;
    (usable / (CHARACTER_WIDTH_EM * text.chars().count().max(1) as f64)).floor().max(8.0) as u32
}

/// Values that an axis cannot show.
#[derive(Clone, Copy, Default)]
struct Skipped {
    non_finite: usize,
    /// Values ≤ 0, counted on a log axis only.
    non_positive: usize,
}

impl Skipped {
    fn count(values: impl Iterator<Item = f64>, axis: &Axis) -> Skipped {
        let mut skipped = Skipped::default();
        for value in values {
            if !value.is_finite() {
                skipped.non_finite += 1;
            } else if axis.scale == AxisScale::Log && value <= 0.0 {
                skipped.non_positive += 1;
            }
        }
        skipped
    }
}

/// Describes the values of `panel` that `axis` cannot show, for the
/// caption, if there are any. `coordinate` picks x or y from a point. With
/// overlaid runs, each count names the runs and shared lines it comes
/// from, as in "2 non-finite values (NaN or ∞) not drawn, from Pre-LN and
/// Peri-LN", or "from every run".
fn skipped_note(panel: &Panel, axis: &Axis, coordinate: fn(&(f64, f64)) -> f64) -> Option<String> {
    let of_series = |series: &Series| Skipped::count(series.points.iter().map(coordinate), axis);
    let total = panel.series.iter().map(of_series).fold(Skipped::default(), |sum, s| Skipped {
        non_finite: sum.non_finite + s.non_finite,
        non_positive: sum.non_positive + s.non_positive,
    });

    // Where the skipped values come from: each run, then each shared line by its label.
    let mut sources: Vec<(String, Skipped)> = panel.run_labels.iter().map(|label| (label.clone(), Skipped::default())).collect();
    if !panel.run_labels.is_empty() {
        for series in &panel.series {
            let skipped = of_series(series);
            let source = match series.run {
                Some(run) => run,
                None => {
                    sources.push((series.label.clone().unwrap_or_default(), Skipped::default()));
                    sources.len() - 1
                }
            };
            sources[source].1.non_finite += skipped.non_finite;
            sources[source].1.non_positive += skipped.non_positive;
        }
    }
    let run_count = panel.run_labels.len();
    let from = |count_of: fn(&Skipped) -> usize| -> String {
        let mut names: Vec<String> =
            sources.iter().filter(|(_, s)| count_of(s) > 0).map(|(label, _)| label.clone()).collect();
        if names.is_empty() {
            return String::new();
        }
        if run_count > 1 && sources[..run_count].iter().all(|(_, s)| count_of(s) > 0) {
            names.splice(..run_count, ["every run".to_string()]);
        }
        let last = names.pop().unwrap_or_default();
        match names.is_empty() {
            true => format!(", from {last}"),
            false => format!(", from {} and {last}", names.join(", ")),
        }
    };

    let values = |count: usize| if count == 1 { "value" } else { "values" };
    let mut parts = Vec::new();
    if total.non_finite > 0 {
        let count = total.non_finite;
        parts.push(format!("{count} non-finite {} (NaN or ∞) not drawn{}", values(count), from(|s| s.non_finite)));
    }
    if total.non_positive > 0 {
        let count = total.non_positive;
        parts.push(format!("{count} {} ≤ 0 not drawn on the log axis{}", values(count), from(|s| s.non_positive)));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Draws mesh, series and legend with coordinates of types `X` and `Y`,
/// each linear or log. Nothing else differs between the scales.
fn draw_chart<DB: DrawingBackend, X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    area: &DrawingArea<DB, Shift>, panel: &Panel, sizes: &Sizes, x_coord: Ticked<X>, y_coord: Ticked<Y>,
    (x_axis, y_axis): (&Axis, &Axis), legend_corner: SeriesLabelPosition,
) -> Result<(), PlotError> {
    let theme = panel.theme;
    let mut chart = ChartBuilder::on(area)
        .margin(sizes.margin())
        .x_label_area_size(sizes.x_label_area())
        .y_label_area_size(sizes.y_label_area())
        .build_cartesian_2d(x_coord, y_coord)
        .map_err(drawing_error)?;

    let x_format = |v: &f64| x_axis.tick_label(*v);
    let y_format = |v: &f64| y_axis.tick_label(*v);
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .label_style(font(sizes.text, theme.text()))
        .axis_desc_style(font(sizes.text, theme.text()))
        .axis_style(theme.text())
        .bold_line_style(theme.grid())
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(drawing_error)?;

    for series in &panel.series {
        draw_series(&mut chart, series, sizes, (x_axis, y_axis))?;
    }
    if !panel.run_labels.is_empty() {
        // The legend strip above the plot already names the runs.
        return Ok(());
    }
    for entry in &panel.key {
        let look = Look::new(entry.color, entry.stroke, entry.marker, sizes);
        let nothing = std::iter::empty::<PathElement<(f64, f64)>>();
        let annotation = chart.draw_series(nothing).map_err(drawing_error)?;
        look.add_legend(annotation, entry.label.clone());
    }

    chart
        .configure_series_labels()
        .position(legend_corner)
        .margin(sizes.text / 2)
        .legend_area_size(legend_glyph_length(sizes) + sizes.text / 2)
        .label_font(font(sizes.text, theme.text()))
        .background_style(theme.legend_background())
        .border_style(theme.legend_border())
        .draw()
        .map_err(drawing_error)
}

type Chart<'a, DB, X, Y> = ChartContext<'a, DB, Cartesian2d<Ticked<X>, Ticked<Y>>>;

/// Draws one series: its line in pieces between values the axis cannot
/// show, then its markers. A labelled series gets its legend entry on the
/// first thing drawn, or on an empty drawing when nothing can be drawn.
fn draw_series<'a, DB: DrawingBackend + 'a, X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    chart: &mut Chart<'a, DB, X, Y>, series: &Series, sizes: &Sizes, (x_axis, y_axis): (&Axis, &Axis),
) -> Result<(), PlotError> {
    let look = Look::new(series.color, series.stroke, series.marker, sizes);
    // A series without a label counts as labelled from the start.
    let mut labelled = series.label.is_none();
    let label = series.label.clone().unwrap_or_default();

    if series.stroke != Stroke::None {
        for piece in drawable_pieces(&series.points, x_axis, y_axis) {
            let annotation = match series.stroke {
                Stroke::Solid => chart.draw_series(LineSeries::new(piece, look.style)),
                _ => chart.draw_series(DashedLineSeries::new(piece, look.dash, look.gap, look.style)),
            }
            .map_err(drawing_error)?;
            if !labelled {
                look.add_legend(annotation, label.clone());
                labelled = true;
            }
        }
    }

    if let Some(marker) = series.marker {
        let placed: Vec<(f64, f64)> = series.points.iter().copied().filter(|p| x_axis.can_place(p.0) && y_axis.can_place(p.1)).collect();
        let any_placed = !placed.is_empty();
        let (size, style) = (look.marker_size, look.style);
        let annotation = match marker {
            Marker::Circle => chart.draw_series(placed.into_iter().map(|p| Circle::new(p, size, style.filled()))),
            Marker::Cross => chart.draw_series(placed.into_iter().map(|p| Cross::new(p, size + 2, style))),
            Marker::Triangle => chart.draw_series(placed.into_iter().map(|p| TriangleMarker::new(p, size + 3, style.filled()))),
        }
        .map_err(drawing_error)?;
        if !labelled && any_placed {
            look.add_legend(annotation, label.clone());
            labelled = true;
        }
    }

    if !labelled {
        let nothing = std::iter::empty::<PathElement<(f64, f64)>>();
        let annotation = chart.draw_series(nothing).map_err(drawing_error)?;
        look.add_legend(annotation, format!("{label} (no values to draw)"));
    }
    Ok(())
}

/// Splits a line into runs of consecutive points that the axes can show,
/// each of at least two points, so a NaN, or a zero on a log axis, breaks
/// the line there.
pub(crate) fn drawable_pieces(points: &[(f64, f64)], x_axis: &Axis, y_axis: &Axis) -> Vec<Vec<(f64, f64)>> {
    let mut pieces = Vec::new();
    let mut current = Vec::new();
    for &(x, y) in points {
        if x_axis.can_place(x) && y_axis.can_place(y) {
            current.push((x, y));
        } else if !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
    }
    pieces.push(current);
    pieces.retain(|piece| piece.len() >= 2);
    pieces
}
