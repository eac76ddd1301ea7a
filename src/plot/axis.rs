//! Axis ranges, tick positions and tick labels, chosen from the values a
//! chart draws so that no value set (empty, constant, zero on a log axis,
//! NaN) gives a degenerate or unreadable axis.

use super::AxisScale;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use std::ops::Range;

/// Maximum number of ticks on an axis. The 1-2-5 steps often give fewer.
const MAX_TICKS: usize = 8;

/// A drawn axis: its scale (after any fallback), range and ticks.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Axis {
    pub scale: AxisScale,
    pub range: Range<f64>,
    pub ticks: Vec<f64>,
    /// Spacing of evenly spaced ticks, which sets the decimals of every
    /// label; `None` for ticks at 1-2-5 multiples of powers of ten.
    pub tick_step: Option<f64>,
    /// Reason the scale differs from the request, for the chart caption.
    pub fallback_note: Option<String>,
}

impl Axis {
    /// Builds a linear axis of whole numbers (layers, steps), widened by
    /// `padding` on each side so that end markers are not cut off.
    pub fn integer(values: &[f64], padding: f64) -> Axis {
        let (low, high) = finite_extent(values.iter().copied()).unwrap_or((0.0, 1.0));
        // A single value gets one unit on each side, but stays at or above
        // zero when it is (a run with only the step-0 evaluation).
        let (low, high) = match low == high {
            true if low >= 0.0 => ((low - 1.0).max(0.0), high + 1.0),
            true => (low - 1.0, high + 1.0),
            false => (low, high),
        };
        let step = nice_step((high - low) / MAX_TICKS as f64).max(1.0);
        Axis {
            scale: AxisScale::Linear,
            range: low - padding..high + padding,
            ticks: multiples_within(step, low, high),
            tick_step: Some(step),
            fallback_note: None,
        }
    }

    /// Builds a value axis on the requested scale. A log axis uses only the
    /// positive values, and falls back to linear when there are none.
    pub fn values(values: &[f64], requested: AxisScale) -> Axis {
        if requested == AxisScale::Log {
            let positive = values.iter().copied().filter(|v| *v > 0.0);
            if let Some((low, high)) = finite_extent(positive) {
                return Axis::with_range(AxisScale::Log, log_range(low, high), None);
            }
        }
        let (low, high) = finite_extent(values.iter().copied()).unwrap_or((0.0, 1.0));
        let fallback_note = (requested == AxisScale::Log)
            .then(|| "no positive values for a log axis, so this axis is linear".to_string());
        Axis::with_range(AxisScale::Linear, linear_range(low, high), fallback_note)
    }

    fn with_range(scale: AxisScale, range: Range<f64>, fallback_note: Option<String>) -> Axis {
        let (ticks, tick_step) = match scale {
            AxisScale::Log => log_ticks(&range),
            AxisScale::Linear => {
                let step = nice_step((range.end - range.start) / MAX_TICKS as f64);
                (multiples_within(step, range.start, range.end), Some(step))
            }
        };
        Axis { scale, range, ticks, tick_step, fallback_note }
    }

    /// Extends the axis upwards so that the old range fills only the lower
    /// `1 - fraction` of it (fraction capped at 0.6), which leaves room for
    /// a legend above the data.
    pub fn with_headroom(self, fraction: f64) -> Axis {
        let data_share = 1.0 - fraction.clamp(0.0, 0.6);
        let Range { start, end } = self.range;
        let end = match self.scale {
            AxisScale::Linear => start + (end - start) / data_share,
            AxisScale::Log => (start.ln() + (end.ln() - start.ln()) / data_share).exp(),
        };
        if !end.is_finite() {
            return Axis { range: start..self.range.end, ..self };
        }
        Axis::with_range(self.scale, start..end, self.fallback_note)
    }

    /// Returns whether a value can be placed on this axis: finite, and positive on a log axis.
    pub fn can_place(&self, value: f64) -> bool {
        value.is_finite() && (self.scale == AxisScale::Linear || value > 0.0)
    }

    /// Returns the position of `value` in [0, 1] along the axis (log-spaced on a log axis).
    pub fn fraction(&self, value: f64) -> f64 {
        let transform = |v: f64| if self.scale == AxisScale::Log { v.ln() } else { v };
        let (low, high) = (transform(self.range.start), transform(self.range.end));
        (transform(value) - low) / (high - low)
    }

    /// Formats a tick label: scientific notation when the largest tick is at
    /// least 10⁵ or below 10⁻³ in magnitude, plain decimals otherwise.
    pub fn tick_label(&self, value: f64) -> String {
        let largest = self.ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
        if largest >= 1e5 || (largest > 0.0 && largest < 1e-3) {
            return format_scientific(value);
        }
        match self.tick_step {
            Some(step) => format!("{value:.*}", decimals_for(step)),
            None => trim_zeros(&format!("{value:.*}", decimals_for(value.abs()))).to_string(),
        }
    }
}

/// Returns the number of decimals that shows a 1-2-5 multiple of a power of ten exactly.
fn decimals_for(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) {
        return 0;
    }
    (-step.log10().floor()).clamp(0.0, 12.0) as usize
}

/// Formats with at most four significant digits, so 250000 reads "2.5e5".
fn format_scientific(value: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let text = format!("{value:.3e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    format!("{}e{exponent}", trim_zeros(mantissa))
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// Returns the smallest and largest finite value, or `None` when there is none.
fn finite_extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |extent, v| match extent {
        None => Some((v, v)),
        Some((low, high)) => Some((low.min(v), high.max(v))),
    })
}

/// Returns the data extent plus 5 % on each side. A constant is widened by
/// 10 % of its magnitude, or by 1 at zero.
fn linear_range(low: f64, high: f64) -> Range<f64> {
    let padding = if low == high {
        if low == 0.0 { 1.0 } else { 0.1 * low.abs() }
    } else {
        0.05 * (high - low)
    };
    let padded = low - padding..high + padding;
    // Padding values near f64::MAX overflows, so those are drawn unpadded.
    if padded.start.is_finite() && padded.end.is_finite() && padded.start < padded.end {
        padded
    } else {
        low..high
    }
}

/// Returns the positive data extent plus 5 % of its log span on each side.
/// A constant, or a span under a tenth of a decade, is widened to a tenth
/// of a decade first.
fn log_range(low: f64, high: f64) -> Range<f64> {
    let (log_low, log_high) = (low.log10(), high.log10());
    let span = (log_high - log_low).max(0.1);
    let middle = 0.5 * (log_low + log_high);
    let half = 0.5 * span * 1.1;
    10f64.powf(middle - half)..10f64.powf(middle + half)
}

/// Chooses ticks for a log axis from powers of ten, then 1-2-5 and 1-to-9
/// multiples of them, then evenly spaced values, taking the first choice
/// that gives at least three ticks. Returns the ticks and, for evenly
/// spaced ones, their spacing.
fn log_ticks(range: &Range<f64>) -> (Vec<f64>, Option<f64>) {
    let (first_decade, last_decade) = (range.start.log10().floor() as i32, range.end.log10().ceil() as i32);
    for mantissas in [&[1.0][..], &[1.0, 2.0, 5.0], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]] {
        let ticks: Vec<f64> = (first_decade..=last_decade)
            .flat_map(|decade| mantissas.iter().map(move |m| m * 10f64.powi(decade)))
            .filter(|t| range.contains(t))
            .collect();
        if ticks.len() >= 3 {
            // Keeps every tick unless there are more than MAX_TICKS, as with powers of ten over many decades.
            let stride = ticks.len().div_ceil(MAX_TICKS);
            return (ticks.into_iter().step_by(stride).collect(), None);
        }
    }
    let step = nice_step((range.end - range.start) / 4.0);
    (multiples_within(step, range.start, range.end), Some(step))
}

/// Returns the smallest of 1, 2 and 5 times a power of ten that is at least `rough`.
fn nice_step(rough: f64) -> f64 {
    if !(rough.is_finite() && rough > 0.0) {
        return 1.0;
    }
    let power = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|step| *step >= rough).unwrap_or(10.0 * power)
}

/// Returns the multiples of `step` in [low, high], computed as k·step so
/// that rounding does not accumulate.
fn multiples_within(step: f64, low: f64, high: f64) -> Vec<f64> {
    let first = (low / step).ceil() as i64;
    let last = (high / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A plotters coordinate (linear or log) with the ticks chosen here, because
/// plotters 0.3.7 gives a log range inside one decade (3 to 8) no ticks.
pub(crate) struct Ticked<R> {
    pub inner: R,
    pub ticks: Vec<f64>,
}

impl<R: Ranged<ValueType = f64>> Ranged for Ticked<R> {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    /// Returns the chosen ticks for the bold grid and labels, and none for the light grid.
    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_values_get_a_wide_range() {
        for value in [0.0, 3.0, -2.0, 1e-30] {
            let axis = Axis::values(&[value, value], AxisScale::Linear);
            assert!(axis.range.start < value, "{value}: {:?}", axis.range);
            assert!(value < axis.range.end, "{value}: {:?}", axis.range);
        }
        let log = Axis::values(&[5.0, 5.0], AxisScale::Log);
        assert!(log.range.start < 5.0, "{:?}", log.range);
        assert!(5.0 < log.range.end, "{:?}", log.range);
    }

    #[test]
    fn log_axis_skips_zero_and_negative() {
        let axis = Axis::values(&[0.0, -1.0, 2.0, 50.0], AxisScale::Log);
        assert_eq!(axis.scale, AxisScale::Log);
        assert!(axis.range.start > 0.0, "{:?}", axis.range);
        assert!(axis.range.start < 2.0, "{:?}", axis.range);
        assert!(!axis.can_place(0.0));
        assert!(axis.can_place(2.0));
    }

    #[test]
    fn log_axis_without_positive_values_is_linear() {
        let axis = Axis::values(&[0.0, -1.0, f64::NAN], AxisScale::Log);
        assert_eq!(axis.scale, AxisScale::Linear);
        assert!(axis.fallback_note.is_some());
        assert!(axis.range.start <= -1.0, "{:?}", axis.range);
        assert!(axis.range.end >= 0.0, "{:?}", axis.range);
    }

    #[test]
    fn non_finite_values_ignored() {
        let axis = Axis::values(&[f64::NAN, 1.0, f64::INFINITY, 3.0], AxisScale::Linear);
        assert!(axis.range.start.is_finite());
        assert!(axis.range.end.is_finite());
        assert!(axis.range.end < 4.0, "{:?}", axis.range);
        let empty = Axis::values(&[f64::NAN], AxisScale::Linear);
        assert!(empty.range.start < empty.range.end);
    }

    #[test]
    fn log_ticks_inside_one_decade() {
        let axis = Axis::values(&[3.0, 8.0], AxisScale::Log);
        assert!(axis.ticks.len() >= 3, "{:?}", axis.ticks);
        assert!(axis.ticks.iter().all(|t| axis.range.contains(t)));
    }

    #[test]
    fn log_ticks_over_many_decades_are_thinned() {
        let axis = Axis::values(&[1e-20, 1e20], AxisScale::Log);
        assert!(axis.ticks.len() <= MAX_TICKS, "{:?}", axis.ticks);
        assert!(axis.ticks.len() >= 3, "{:?}", axis.ticks);
    }

    #[test]
    fn integer_ticks_are_whole_numbers() {
        let axis = Axis::integer(&[0.0, 1.0, 2.0], 0.3);
        assert_eq!(axis.ticks, vec![0.0, 1.0, 2.0]);
        let long = Axis::integer(&[0.0, 64.0], 0.3);
        assert!(long.ticks.iter().all(|t| t.fract() == 0.0));
        assert!(long.ticks.len() <= MAX_TICKS + 1, "{:?}", long.ticks);
    }

    #[test]
    fn linear_tick_labels_share_decimals() {
        let axis = Axis::values(&[0.0, 1.0], AxisScale::Linear);
        assert_eq!(axis.tick_step, Some(0.2));
        assert_eq!(axis.tick_label(0.1 + 0.2), "0.3");
        assert_eq!(axis.tick_label(1.0), "1.0");
    }

    #[test]
    fn log_tick_labels_drop_trailing_zeros() {
        let axis = Axis::values(&[0.02, 30.0], AxisScale::Log);
        assert_eq!(axis.tick_step, None);
        assert_eq!(axis.tick_label(0.02), "0.02");
        assert_eq!(axis.tick_label(20.0), "20");
    }

    #[test]
    fn large_ticks_use_scientific_notation() {
        let axis = Axis::values(&[1.0, 3e5], AxisScale::Log);
        assert_eq!(axis.tick_label(250000.0), "2.5e5");
        assert_eq!(axis.tick_label(1e-4), "1e-4");
        assert_eq!(axis.tick_label(0.0), "0");
    }

    #[test]
    fn headroom_keeps_data_in_lower_part() {
        for scale in [AxisScale::Linear, AxisScale::Log] {
            let axis = Axis::values(&[1.0, 10.0], scale);
            let top = axis.range.end;
            let roomy = axis.with_headroom(0.25);
            assert!((roomy.fraction(top) - 0.75).abs() < 1e-9, "{scale:?}: {}", roomy.fraction(top));
            assert!(roomy.ticks.iter().all(|t| roomy.range.contains(t)));
        }
    }

    #[test]
    fn single_step_axis_starts_at_zero() {
        let axis = Axis::integer(&[0.0], 0.0);
        assert_eq!(axis.range, 0.0..1.0);
    }
}
