//! The data of each chart, taken from a run file: which lines to draw,
//! their labels and the caption notes.

use super::render::{Marker, Panel, Series, Stroke};
use super::{Metric, PlotError, PlotOptions};
use crate::config::Placement;
use crate::io::run_file::{EvalRecord, RunFile};
use crate::metrics::within_bound;
use plotters::style::{Color, RGBAColor, RGBColor};

const MEASURED: RGBColor = RGBColor(31, 119, 180);
const BOUND: RGBColor = RGBColor(214, 39, 40);
const FIT: RGBColor = RGBColor(44, 160, 44);
const GRADIENT: RGBColor = RGBColor(148, 103, 189);
const VALIDATION: RGBColor = RGBColor(255, 127, 14);
const REFERENCE: RGBColor = RGBColor(110, 110, 110);

/// Maximum number of points of the per-step training-loss line. Longer
/// runs are averaged over equal groups of steps.
const MAX_STEP_LOSS_POINTS: usize = 1000;

/// Points per layer of the growth-fit curve, so it bends smoothly on a linear axis.
const FIT_SAMPLES_PER_LAYER: usize = 8;

/// Returns the evaluation that `options.eval_index` names, or the last one.
pub(crate) fn select_eval<'a>(run: &'a RunFile, options: &PlotOptions) -> Result<&'a EvalRecord, PlotError> {
    let count = run.evals.len();
    if count == 0 {
        return Err(PlotError::NoEvaluations);
    }
    let index = options.eval_index.unwrap_or(count - 1);
    run.evals.get(index).ok_or(PlotError::EvalIndexOutOfRange { index, count })
}

fn series(label: impl Into<String>, points: Vec<(f64, f64)>, color: RGBAColor, stroke: Stroke, marker: Option<Marker>) -> Series {
    Series { label: label.into(), points, color, stroke, marker }
}

/// Builds the chart of the chosen metric against layer, with its certified
/// bound and, for Pre-LN max token norms, the exponential fit.
pub(crate) fn metric_panel(run: &RunFile, options: &PlotOptions) -> Result<Panel, PlotError> {
    let eval = select_eval(run, options)?;
    let metric = options.metric;
    let placement = run.model.placement;

    let measured: Vec<(f64, f64)> = eval.layers.iter().map(|m| (m.layer as f64, metric.value(m))).collect();
    let bound: Vec<(f64, f64)> =
        eval.layers.iter().map(|m| (m.layer as f64, metric.bound(m).unwrap_or(f64::NAN))).collect();
    let above: Vec<(f64, f64)> = eval
        .layers
        .iter()
        .filter_map(|m| {
            let value = metric.value(m);
            let bound = metric.bound(m)?;
            (value.is_finite() && !within_bound(value, bound)).then_some((m.layer as f64, value))
        })
        .collect();

    let mut lines = vec![
        series(metric.label(), measured, MEASURED.to_rgba(), Stroke::Solid, Some(Marker::Circle)),
        series("certified bound", bound, BOUND.to_rgba(), Stroke::Dashed, None),
    ];
    let mut notes = Vec::new();
    if !above.is_empty() {
        let layers: Vec<String> = above.iter().map(|(l, _)| format!("{l}")).collect();
        notes.push(format!("above the certified bound at layer {}, a bug in the lab", layers.join(", ")));
        lines.push(series("above the certified bound", above, BOUND.to_rgba(), Stroke::None, Some(Marker::Cross)));
    }

    // The run file fits the max token norm only, so the curve belongs on
    // that chart alone.
    if let (Placement::Pre, Metric::MaxTokenNorm, Some(fit)) = (placement, metric, &eval.growth_fit) {
        if fit.c.is_finite() && fit.kappa.is_finite() {
            let last = eval.layers.len().saturating_sub(1);
            let samples = last * FIT_SAMPLES_PER_LAYER;
            let curve = (0..=samples)
                .map(|i| {
                    let l = i as f64 / FIT_SAMPLES_PER_LAYER as f64;
                    (l, fit.c * (fit.kappa * l * run.model.dt).exp())
                })
                .collect();
            let label = format!("exponential fit (κ = {:.3}), a fit, not a bound", fit.kappa);
            lines.push(series(label, curve, FIT.to_rgba(), Stroke::Dotted, None));
        }
    }

    Ok(Panel {
        title: format!("{}: {} by layer, step {}", placement.label(), metric.label(), eval.step),
        x_label: "layer l (block boundary)".to_string(),
        y_label: metric.label().to_string(),
        x_padding: 0.3,
        x_scale: options.x_scale,
        y_scale: options.layer_scale,
        series: lines,
        notes,
    })
}

/// Builds the chart of the gradient rms against layer, with the certified
/// bound at x_L where the run has one (placements with a final LayerNorm).
pub(crate) fn gradient_panel(run: &RunFile, options: &PlotOptions) -> Result<Panel, PlotError> {
    let eval = select_eval(run, options)?;
    let measured: Vec<(f64, f64)> = eval.layers.iter().map(|m| (m.layer as f64, m.grad_rms)).collect();
    let mut lines = vec![series("gradient rms", measured, GRADIENT.to_rgba(), Stroke::Solid, Some(Marker::Circle))];
    let mut notes = Vec::new();

    let last = eval.layers.last();
    if let Some((layer, bound, value)) = last.and_then(|m| Some((m.layer as f64, m.bound_grad_rms?, m.grad_rms))) {
        lines.push(series("certified bound at x_L", vec![(layer, bound)], BOUND.to_rgba(), Stroke::None, Some(Marker::Triangle)));
        if value.is_finite() && bound.is_finite() && !within_bound(value, bound) {
            notes.push("gradient at x_L above its certified bound, a bug in the lab".to_string());
        }
    }

    Ok(Panel {
        title: format!("{}: gradient by layer, step {}", run.model.placement.label(), eval.step),
        x_label: "layer l (block boundary)".to_string(),
        y_label: "rms of ∂loss/∂x_l per token".to_string(),
        x_padding: 0.3,
        x_scale: options.x_scale,
        y_scale: options.layer_scale,
        series: lines,
        notes,
    })
}

/// Builds the chart of training and validation loss against step, with
/// the per-step training-batch loss and ln V, the loss of a uniform guess.
pub(crate) fn loss_panel(run: &RunFile, options: &PlotOptions) -> Result<Panel, PlotError> {
    if run.evals.is_empty() {
        return Err(PlotError::NoEvaluations);
    }
    let train: Vec<(f64, f64)> = run.evals.iter().map(|e| (e.step as f64, e.train_loss)).collect();
    let validation: Vec<(f64, f64)> = run.evals.iter().map(|e| (e.step as f64, e.val_loss)).collect();
    let (batch_label, batch_losses) = step_loss_points(&run.step_losses);

    let first_step = run.evals.iter().map(|e| e.step).min().unwrap_or(0) as f64;
    // A log x axis cannot place step 0, so the reference line starts at 1 there.
    let first_step = if options.x_scale == crate::plot::AxisScale::Log { first_step.max(1.0) } else { first_step };
    let last_step = (run.evals.iter().map(|e| e.step).max().unwrap_or(0) as f64).max(batch_losses.last().map_or(0.0, |p| p.0));
    let uniform = (run.model.vocab as f64).ln();

    let faint = MEASURED.mix(0.3);
    let lines = vec![
        series(batch_label, batch_losses, faint, Stroke::Solid, None),
        series("train loss (fixed batches)", train, MEASURED.to_rgba(), Stroke::Solid, Some(Marker::Circle)),
        series("validation loss", validation, VALIDATION.to_rgba(), Stroke::Solid, Some(Marker::Circle)),
        series("ln V (uniform guess)", vec![(first_step, uniform), (last_step, uniform)], REFERENCE.to_rgba(), Stroke::Dotted, None),
    ];

    Ok(Panel {
        title: format!("{}: loss by step", run.model.placement.label()),
        x_label: "step".to_string(),
        y_label: "loss (nats)".to_string(),
        x_padding: 0.0,
        x_scale: options.x_scale,
        y_scale: options.loss_scale,
        series: lines,
        notes: Vec::new(),
    })
}

/// Converts the per-step training-batch losses to (step, loss) points and
/// their legend text, averaged over groups of steps when there are too
/// many. A group with a non-finite loss stays NaN, so the line breaks there.
fn step_loss_points(losses: &[f64]) -> (String, Vec<(f64, f64)>) {
    let group = losses.len().div_ceil(MAX_STEP_LOSS_POINTS).max(1);
    let points = losses
        .chunks(group)
        .enumerate()
        .map(|(i, chunk)| {
            let middle = (i * group) as f64 + (chunk.len() - 1) as f64 / 2.0;
            (middle, chunk.iter().sum::<f64>() / chunk.len() as f64)
        })
        .collect();
    let label = if group == 1 {
        "training batch (each step)".to_string()
    } else {
        format!("training batch (mean of {group} steps)")
    };
    (label, points)
}

/// Formats the line above the charts that names the run's settings and any divergence.
pub(crate) fn figure_heading(run: &RunFile) -> String {
    let model = &run.model;
    let mut heading = format!(
        "{}, L = {}, d = {}, {} heads, Δt = {}, data {}, {} steps at lr {}",
        model.placement.label(),
        model.layers,
        model.width,
        model.heads,
        model.dt,
        run.data.name(),
        run.train.steps,
        run.train.lr,
    );
    if let Some(non_finite) = &run.non_finite {
        heading.push_str(&format!(" (diverged: {non_finite})"));
    }
    heading
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_losses_are_averaged_in_groups() {
        let losses = vec![2.0; 2500];
        let (label, points) = step_loss_points(&losses);
        assert_eq!(points.len(), 834);
        assert!(label.contains("mean of 3 steps"), "{label}");
        assert_eq!(points[0], (1.0, 2.0));
    }

    #[test]
    fn short_step_losses_kept() {
        let (label, points) = step_loss_points(&[3.0, f64::NAN, 1.0]);
        assert_eq!(label, "training batch (each step)");
        assert_eq!(points.len(), 3);
        assert!(points[1].1.is_nan());
    }
}
