//! Draws a [`Panel`] (title, axes, series, legend) on any plotters backend.
//! The three charts differ only in the panel they build, so all drawing
//! lives here.

use super::axis::{Axis, Ticked};
use super::{AxisScale, PlotError, FONT_FAMILY};
use plotters::coord::types::RangedCoordf64;
use plotters::chart::SeriesAnno;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
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
    pub series: Vec<Series>,
    /// Facts a reader needs that the lines cannot show, one short clause each.
    pub notes: Vec<String>,
}

pub(crate) struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBAColor,
    pub stroke: Stroke,
    pub marker: Option<Marker>,
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
struct Sizes {
    title: u32,
    text: u32,
    line: u32,
    marker: u32,
}

impl Sizes {
    fn for_area(width: u32, height: u32) -> Sizes {
        // 1.0 is a panel of 560 × 420 pixels, a quarter of the default figure.
        let scale = (width as f64 / 560.0).min(height as f64 / 420.0).clamp(0.75, 3.0);
        let pixels = |base: f64| (base * scale).round().max(1.0) as u32;
        Sizes { title: pixels(19.0), text: pixels(15.0), line: pixels(2.0), marker: pixels(4.0) }
    }

    fn margin(&self) -> u32 {
        self.text
    }

    /// Height below the plot for tick labels and the x-axis description.
    fn x_label_area(&self) -> u32 {
        3 * self.text
    }

    /// Width left of the plot for tick labels and the y-axis description.
    fn y_label_area(&self) -> u32 {
        5 * self.text
    }
}

/// Wraps a plotters error as text, because its type depends on the backend.
pub(crate) fn drawing_error<E: std::error::Error + Send + Sync>(error: DrawingAreaErrorKind<E>) -> PlotError {
    PlotError::Drawing(error.to_string())
}

pub(crate) fn font(size: u32) -> TextStyle<'static> {
    (FONT_FAMILY, size).into_font().color(&BLACK)
}

/// Draws `panel` on `area`, filling it white first.
pub(crate) fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel) -> Result<(), PlotError> {
    super::ensure_font()?;
    area.fill(&WHITE).map_err(drawing_error)?;
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
    notes.extend(skipped_note(&xs, &x_axis).map(|note| format!("x axis: {note}")));
    notes.extend(skipped_note(&ys, &y_axis));

    let mut body = area.titled(&panel.title, font(sizes.title)).map_err(drawing_error)?;
    if !notes.is_empty() {
        let note_style = font(sizes.text).color(&RGBColor(90, 90, 90));
        body = body.titled(&notes.join("; "), note_style).map_err(drawing_error)?;
    }

    // Where no corner of the plot is free of data, raise the top of the y
    // axis so that the legend sits above the data.
    let (body_width, body_height) = body.dim_in_pixel();
    let plot_width = body_width.saturating_sub(2 * sizes.margin() + sizes.y_label_area());
    let plot_height = body_height.saturating_sub(2 * sizes.margin() + sizes.x_label_area());
    let legend = legend_extent(panel, &sizes, plot_width, plot_height);
    let (mut corner, covered) = quietest_corner(panel, &x_axis, &y_axis, legend);
    if covered > 0 {
        y_axis = y_axis.with_headroom(legend.1 + 0.03);
        corner = quietest_corner(panel, &x_axis, &y_axis, legend).0;
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

/// Describes the values that the y axis cannot show, for the caption, if there are any.
fn skipped_note(ys: &[f64], axis: &Axis) -> Option<String> {
    let non_finite = ys.iter().filter(|v| !v.is_finite()).count();
    let non_positive = ys.iter().filter(|v| v.is_finite() && **v <= 0.0).count();
    let values = |count: usize| if count == 1 { "value" } else { "values" };
    let mut parts = Vec::new();
    if non_finite > 0 {
        parts.push(format!("{non_finite} non-finite {} (NaN or ∞) not drawn", values(non_finite)));
    }
    if axis.scale == AxisScale::Log && non_positive > 0 {
        parts.push(format!("{non_positive} {} ≤ 0 not drawn on the log axis", values(non_positive)));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Draws mesh, series and legend with coordinates of types `X` and `Y`,
/// each linear or log. Nothing else differs between the scales.
fn draw_chart<DB: DrawingBackend, X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    area: &DrawingArea<DB, Shift>, panel: &Panel, sizes: &Sizes, x_coord: Ticked<X>, y_coord: Ticked<Y>,
    (x_axis, y_axis): (&Axis, &Axis), legend_corner: SeriesLabelPosition,
) -> Result<(), PlotError> {
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
        .label_style(font(sizes.text))
        .axis_desc_style(font(sizes.text))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(drawing_error)?;

    for series in &panel.series {
        draw_series(&mut chart, series, sizes, (x_axis, y_axis))?;
    }

    chart
        .configure_series_labels()
        .position(legend_corner)
        .margin(sizes.text / 2)
        .legend_area_size(legend_glyph_length(sizes) + sizes.text / 2)
        .label_font(font(sizes.text))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.5))
        .draw()
        .map_err(drawing_error)
}

type Chart<'a, DB, X, Y> = ChartContext<'a, DB, Cartesian2d<Ticked<X>, Ticked<Y>>>;

/// Draws one series: its line in pieces between values the axis cannot
/// show, then its markers. The legend entry goes on the first thing drawn,
/// or on an empty drawing when nothing can be drawn.
fn draw_series<'a, DB: DrawingBackend + 'a, X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    chart: &mut Chart<'a, DB, X, Y>, series: &Series, sizes: &Sizes, (x_axis, y_axis): (&Axis, &Axis),
) -> Result<(), PlotError> {
    let look = Look::of(series, sizes);
    let mut labelled = false;

    if series.stroke != Stroke::None {
        for piece in drawable_pieces(&series.points, x_axis, y_axis) {
            let annotation = match series.stroke {
                Stroke::Solid => chart.draw_series(LineSeries::new(piece, look.style)),
                _ => chart.draw_series(DashedLineSeries::new(piece, look.dash, look.gap, look.style)),
            }
            .map_err(drawing_error)?;
            if !labelled {
                look.add_legend(annotation, series.label.clone());
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
            look.add_legend(annotation, series.label.clone());
            labelled = true;
        }
    }

    if !labelled {
        let nothing = std::iter::empty::<PathElement<(f64, f64)>>();
        let annotation = chart.draw_series(nothing).map_err(drawing_error)?;
        look.add_legend(annotation, format!("{} (no values to draw)", series.label));
    }
    Ok(())
}

/// Stroke and marker style of one series, in pixels.
#[derive(Clone, Copy)]
struct Look {
    style: ShapeStyle,
    stroke: Stroke,
    marker: Option<Marker>,
    dash: u32,
    gap: u32,
    marker_size: u32,
    glyph_length: i32,
}

impl Look {
    fn of(series: &Series, sizes: &Sizes) -> Look {
        let width = if series.stroke == Stroke::Solid { sizes.line } else { sizes.line.div_ceil(2) };
        let (dash, gap) = match series.stroke {
            Stroke::Dashed => (4 * sizes.marker, 2 * sizes.marker),
            Stroke::Dotted => (sizes.marker, sizes.marker),
            // Solid lines and markers never use the dash pattern.
            Stroke::None | Stroke::Solid => (1, 1),
        };
        Look {
            style: ShapeStyle::from(series.color).stroke_width(width),
            stroke: series.stroke,
            marker: series.marker,
            dash,
            gap,
            marker_size: sizes.marker,
            glyph_length: legend_glyph_length(sizes) as i32,
        }
    }

    /// Labels `annotation` with a legend sample: a piece of the line, or the
    /// marker for a series without one. plotters draws a legend sample as
    /// one element that carries no backend type, so a sample cannot show
    /// line and marker together.
    fn add_legend<'a, DB: DrawingBackend + 'a>(self, annotation: &mut SeriesAnno<'a, DB>, label: String) {
        let Look { style, dash, gap, marker_size: size, glyph_length: length, .. } = self;
        let annotation = annotation.label(label);
        match (self.stroke, self.marker) {
            (Stroke::Solid, _) | (Stroke::None, None) => {
                annotation.legend(move |(x, y)| PathElement::new(vec![(x, y), (x + length, y)], style))
            }
            (Stroke::Dashed | Stroke::Dotted, _) => {
                annotation.legend(move |(x, y)| DashedPathElement::new(vec![(x, y), (x + length, y)], dash, gap, style))
            }
            (Stroke::None, Some(Marker::Circle)) => {
                annotation.legend(move |(x, y)| Circle::new((x + length / 2, y), size, style.filled()))
            }
            (Stroke::None, Some(Marker::Cross)) => annotation.legend(move |(x, y)| Cross::new((x + length / 2, y), size + 2, style)),
            (Stroke::None, Some(Marker::Triangle)) => {
                annotation.legend(move |(x, y)| TriangleMarker::new((x + length / 2, y), size + 3, style.filled()))
            }
        };
    }
}

fn legend_glyph_length(sizes: &Sizes) -> u32 {
    3 * sizes.text
}

/// Splits a line into runs of consecutive points that the axes can show,
/// each of at least two points, so a NaN, or a zero on a log axis, breaks
/// the line there.
fn drawable_pieces(points: &[(f64, f64)], x_axis: &Axis, y_axis: &Axis) -> Vec<Vec<(f64, f64)>> {
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

/// Estimates the legend box size as a fraction of the plotting area from
/// the label lengths, at about 0.6 em a character.
fn legend_extent(panel: &Panel, sizes: &Sizes, plot_width: u32, plot_height: u32) -> (f64, f64) {
    let longest = panel.series.iter().map(|s| s.label.chars().count()).max().unwrap_or(0) as f64;
    let text = sizes.text as f64;
    let width = longest * 0.6 * text + legend_glyph_length(sizes) as f64 + 2.0 * text;
    let height = panel.series.len() as f64 * 1.3 * text + text;
    (width / plot_width.max(1) as f64, height / plot_height.max(1) as f64)
}

/// Finds the corner whose legend-sized box covers the fewest sampled points
/// of the drawn lines. Returns the corner and how many points it covers.
fn quietest_corner(panel: &Panel, x_axis: &Axis, y_axis: &Axis, (width, height): (f64, f64)) -> (SeriesLabelPosition, usize) {
    let mut samples = Vec::new();
    for series in &panel.series {
        for piece in drawable_pieces(&series.points, x_axis, y_axis) {
            for pair in piece.windows(2) {
                let (a, b) = (to_unit(pair[0], x_axis, y_axis), to_unit(pair[1], x_axis, y_axis));
                samples.extend((0..=16).map(|i| {
                    let t = i as f64 / 16.0;
                    (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1))
                }));
            }
        }
        samples.extend(series.points.iter().filter(|p| x_axis.can_place(p.0) && y_axis.can_place(p.1)).map(|p| to_unit(*p, x_axis, y_axis)));
    }
    // Corners in order of preference when they tie.
    let corners = [
        (SeriesLabelPosition::UpperLeft, 0.0, 1.0 - height),
        (SeriesLabelPosition::UpperRight, 1.0 - width, 1.0 - height),
        (SeriesLabelPosition::LowerRight, 1.0 - width, 0.0),
        (SeriesLabelPosition::LowerLeft, 0.0, 0.0),
    ];
    let covered = |left: f64, bottom: f64| {
        samples.iter().filter(|(x, y)| *x >= left && *x <= left + width && *y >= bottom && *y <= bottom + height).count()
    };
    corners
        .into_iter()
        .map(|(position, left, bottom)| (position, covered(left, bottom)))
        .min_by_key(|(_, count)| *count)
        .unwrap_or((SeriesLabelPosition::UpperLeft, 0))
}

fn to_unit((x, y): (f64, f64), x_axis: &Axis, y_axis: &Axis) -> (f64, f64) {
    (x_axis.fraction(x), y_axis.fraction(y))
}
