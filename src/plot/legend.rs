//! Legends: the sample of each line's look, the legend inside a single
//! run's plot and the strip of entries above an overlay's plot.

use super::axis::Axis;
use super::render::{drawable_pieces, drawing_error, font, Marker, Panel, Series, Sizes, Stroke, CHARACTER_WIDTH_EM};
use super::{PlotError, Theme};
use plotters::chart::SeriesAnno;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Stroke and marker style of one series, in pixels.
#[derive(Clone, Copy)]
pub(crate) struct Look {
    pub style: ShapeStyle,
    pub stroke: Stroke,
    pub marker: Option<Marker>,
    pub dash: u32,
    pub gap: u32,
    pub marker_size: u32,
    pub glyph_length: i32,
}

impl Look {
    pub fn new(color: RGBAColor, stroke: Stroke, marker: Option<Marker>, sizes: &Sizes) -> Look {
        let width = if stroke == Stroke::Solid { sizes.line } else { sizes.line.div_ceil(2) };
        let (dash, gap) = match stroke {
            Stroke::Dashed => (4 * sizes.marker, 2 * sizes.marker),
            Stroke::Dotted => (sizes.marker, sizes.marker),
            // Solid lines and markers never use the dash pattern.
            Stroke::None | Stroke::Solid => (1, 1),
        };
        Look {
            style: ShapeStyle::from(color).stroke_width(width),
            stroke,
            marker,
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
    pub fn add_legend<'a, DB: DrawingBackend + 'a>(self, annotation: &mut SeriesAnno<'a, DB>, label: String) {
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

/// Returns whether any part of `series` can be drawn on these axes: a
/// line piece of two points or more, or a marker.
pub(crate) fn has_drawable(series: &Series, x_axis: &Axis, y_axis: &Axis) -> bool {
    let line = series.stroke != Stroke::None && !drawable_pieces(&series.points, x_axis, y_axis).is_empty();
    let marker = series.marker.is_some() && series.points.iter().any(|p| x_axis.can_place(p.0) && y_axis.can_place(p.1));
    line || marker
}

/// An entry of the legend strip: a sample of a line or marker, and its text.
pub(crate) struct StripEntry {
    look: Look,
    label: String,
}

/// Returns the legend strip of an overlay: each labelled series, with
/// "(no values to draw)" where nothing of it can be drawn, then the key.
pub(crate) fn strip_entries(panel: &Panel, sizes: &Sizes, x_axis: &Axis, y_axis: &Axis) -> Vec<StripEntry> {
    let mut entries = Vec::new();
    for series in &panel.series {
        let Some(label) = &series.label else { continue };
        let label = if has_drawable(series, x_axis, y_axis) { label.clone() } else { format!("{label} (no values to draw)") };
        entries.push(StripEntry { look: Look::new(series.color, series.stroke, series.marker, sizes), label });
    }
    for entry in &panel.key {
        entries.push(StripEntry { look: Look::new(entry.color, entry.stroke, entry.marker, sizes), label: entry.label.clone() });
    }
    entries
}

/// Draws `entries` in rows across the top of `area`, left to right from
/// the left edge of the plot, and returns the area below the rows.
pub(crate) fn draw_legend_strip<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>, entries: &[StripEntry], sizes: &Sizes, theme: Theme,
) -> Result<DrawingArea<DB, Shift>, PlotError> {
    let (width, _) = area.dim_in_pixel();
    let left = (sizes.margin() + sizes.y_label_area()) as i32;
    let right = width.saturating_sub(sizes.margin()) as i32;
    let row_height = (1.5 * sizes.text as f64).round() as i32;
    let glyph = legend_glyph_length(sizes) as i32;
    let spacing = sizes.text as i32;

    let text_style = font(sizes.text, theme.text()).pos(Pos::new(HPos::Left, VPos::Center));

    // Place each entry after the one before it, or at the start of a new row.
    let mut positions = Vec::new();
    let (mut x, mut row) = (left, 0);
    for entry in entries {
        let (text_width, _) = area.estimate_text_size(&entry.label, &text_style).map_err(drawing_error)?;
        let entry_width = glyph + spacing / 2 + text_width as i32;
        if x > left && x + entry_width > right {
            (x, row) = (left, row + 1);
        }
        positions.push((x, row));
        x += entry_width + 2 * spacing;
    }
    let rows = if entries.is_empty() { 0 } else { row + 1 };
    let strip_height = (rows * row_height + sizes.text as i32 / 2) as u32;

    for (entry, (x, row)) in entries.iter().zip(positions) {
        let y = row * row_height + row_height / 2;
        entry.look.draw_sample(&area, (x, y))?;
        area.draw_text(&entry.label, &text_style, (x + glyph + spacing / 2, y)).map_err(drawing_error)?;
    }
    let (_, below) = area.split_vertically(strip_height);
    Ok(below)
}

impl Look {
    /// Draws a legend sample starting at pixel `(x, y)`: the stroke across
    /// the glyph length, then the marker at its middle.
    pub fn draw_sample<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, (x, y): (i32, i32)) -> Result<(), PlotError> {
        let Look { style, dash, gap, marker_size: size, glyph_length: length, .. } = *self;
        let ends = vec![(x, y), (x + length, y)];
        match self.stroke {
            Stroke::None => {}
            Stroke::Solid => area.draw(&PathElement::new(ends, style)).map_err(drawing_error)?,
            Stroke::Dashed | Stroke::Dotted => area.draw(&DashedPathElement::new(ends, dash, gap, style)).map_err(drawing_error)?,
        }
        let middle = (x + length / 2, y);
        match self.marker {
            None => {}
            Some(Marker::Circle) => area.draw(&Circle::new(middle, size, style.filled())).map_err(drawing_error)?,
            Some(Marker::Cross) => area.draw(&Cross::new(middle, size + 2, style)).map_err(drawing_error)?,
            Some(Marker::Triangle) => area.draw(&TriangleMarker::new(middle, size + 3, style.filled())).map_err(drawing_error)?,
        }
        Ok(())
    }
}

pub(crate) fn legend_glyph_length(sizes: &Sizes) -> u32 {
    3 * sizes.text
}

/// Estimates the legend box size as a fraction of the plotting area from
/// the label lengths, at [`CHARACTER_WIDTH_EM`] a character.
pub(crate) fn legend_extent(panel: &Panel, sizes: &Sizes, plot_width: u32, plot_height: u32) -> (f64, f64) {
    let labels: Vec<&str> =
        panel.series.iter().filter_map(|s| s.label.as_deref()).chain(panel.key.iter().map(|k| k.label.as_str())).collect();
    let longest = labels.iter().map(|label| label.chars().count()).max().unwrap_or(0) as f64;
    let text = sizes.text as f64;
    let width = longest * CHARACTER_WIDTH_EM * text + legend_glyph_length(sizes) as f64 + 2.0 * text;
    let height = labels.len() as f64 * 1.3 * text + text;
    (width / plot_width.max(1) as f64, height / plot_height.max(1) as f64)
}

/// Finds the corner whose legend-sized box covers the fewest sampled points
/// of the drawn lines. Returns the corner and how many points it covers.
pub(crate) fn quietest_corner(panel: &Panel, x_axis: &Axis, y_axis: &Axis, (width, height): (f64, f64)) -> (SeriesLabelPosition, usize) {
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
