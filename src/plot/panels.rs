//! The data of each chart, taken from one or more run files: which lines to
//! draw, their labels and the caption notes.
//!
//! A single run's lines get one colour per role (measured, bound, fit).
//! Overlaid runs get one colour per run, and the stroke distinguishes the
//! roles: solid with markers for measured values,
//! dashed for certified bounds, dotted for fits. The legend then names each
//! run once and explains each stroke once, in a neutral colour.

use super::render::{KeyEntry, Marker, Panel, Series, Stroke};
use super::{AxisScale, ChartRun, Metric, PlotError, PlotOptions, Theme, MAX_OVERLAID_RUNS};
use crate::config::Placement;
use crate::io::run_file::{EvalRecord, RunFile};
use crate::metrics::within_bound;
use plotters::style::{Color, RGBColor};

/// Maximum number of points of the per-step training-loss line. Longer
/// runs are averaged over equal groups of steps.
const MAX_STEP_LOSS_POINTS: usize = 1000;

/// Points per layer of the growth-fit curve, so it bends smoothly on a linear axis.
const FIT_SAMPLES_PER_LAYER: usize = 8;

/// Colours of one run's lines, by role.
struct RunColours {
    measured: RGBColor,
    bound: RGBColor,
    fit: RGBColor,
    gradient: RGBColor,
    validation: RGBColor,
}

impl RunColours {
    fn new(theme: Theme, index: usize, run_count: usize) -> RunColours {
        if run_count == 1 {
            RunColours {
                measured: theme.run_colour(0),
                bound: theme.run_colour(1),
                fit: theme.run_colour(2),
                gradient: theme.run_colour(3),
                validation: theme.run_colour(1),
            }
        } else {
            let colour = theme.run_colour(index);
            RunColours { measured: colour, bound: colour, fit: colour, gradient: colour, validation: colour }
        }
    }
}

/// Checks the number of runs and returns the evaluation of each that
/// `options.eval_index` names, or each run's last.
pub(crate) fn select_evals<'a>(runs: &[ChartRun<'a>], options: &PlotOptions) -> Result<Vec<&'a EvalRecord>, PlotError> {
    if runs.is_empty() {
        return Err(PlotError::NoRuns);
    }
    if runs.len() > MAX_OVERLAID_RUNS {
        return Err(PlotError::TooManyRuns { count: runs.len(), max: MAX_OVERLAID_RUNS });
    }
    runs.iter().map(|chart_run| select_eval(chart_run, options)).collect()
}

fn select_eval<'a>(chart_run: &ChartRun<'a>, options: &PlotOptions) -> Result<&'a EvalRecord, PlotError> {
    let run: &'a RunFile = chart_run.run;
    let count = run.evals.len();
    if count == 0 {
        return Err(PlotError::NoEvaluations { run: chart_run.label.clone() });
    }
    let index = options.eval_index.unwrap_or(count - 1);
    run.evals.get(index).ok_or(PlotError::EvalIndexOutOfRange { run: chart_run.label.clone(), index, count })
}

/// Returns the placement label shared by all runs, if they share one.
fn common_placement(runs: &[ChartRun]) -> Option<&'static str> {
    let first = runs.first()?.run.model.placement;
    runs.iter().all(|r| r.run.model.placement == first).then(|| first.label())
}

/// Formats the title of a per-layer chart: "Pre-LN: gradient by layer, step 20".
/// Overlaid runs of different placements or steps leave those parts out.
/// Where the runs were measured at different steps, the title reads "end
/// of each run" when each shows its final step, because the labels then
/// name the step counts. Otherwise a caption note lists the steps.
fn layer_chart_title(runs: &[ChartRun], evals: &[&EvalRecord], subject: &str, options: &PlotOptions, notes: &mut Vec<String>) -> String {
    let prefix = common_placement(runs).map(|label| format!("{label}: ")).unwrap_or_default();
    let first_step = evals[0].step;
    let when = if evals.iter().all(|e| e.step == first_step) {
        format!("step {first_step}")
    } else if options.eval_index.is_none() && runs.iter().zip(evals).all(|(r, e)| e.step == r.run.train.steps) {
        "end of each run".to_string()
    } else {
        let mut steps: Vec<String> = evals.iter().map(|e| e.step.to_string()).collect();
        let last = steps.pop().unwrap_or_default();
        notes.push(format!("measured at steps {} and {last}, in legend order", steps.join(", ")));
        match options.eval_index {
            None => "last evaluation of each run".to_string(),
            Some(index) => format!("evaluation {index} of each run"),
        }
    };
    format!("{prefix}{subject} by layer, {when}")
}

/// Returns `label` for a single run and `None` for an overlay, whose legend
/// names each run once by its measured line and explains the strokes in a key.
fn single_label(overlay: bool, label: impl Into<String>) -> Option<String> {
    (!overlay).then(|| label.into())
}

/// Returns the growth-fit curve and κ where the chart shows a Pre-LN run's
/// max token norm, the only quantity the run file fits.
fn growth_fit_curve(run: &RunFile, eval: &EvalRecord, metric: Metric) -> Option<(f64, Vec<(f64, f64)>)> {
    let fit = eval.growth_fit.as_ref()?;
    if run.model.placement != Placement::Pre || metric != Metric::MaxTokenNorm || !(fit.c.is_finite() && fit.kappa.is_finite()) {
        return None;
    }
    let last = eval.layers.len().saturating_sub(1);
    let samples = last * FIT_SAMPLES_PER_LAYER;
    let curve = (0..=samples)
        .map(|i| {
            let l = i as f64 / FIT_SAMPLES_PER_LAYER as f64;
            (l, fit.c * (fit.kappa * l * run.model.dt).exp())
        })
        .collect();
    Some((fit.kappa, curve))
}

/// Builds the chart of the chosen metric against layer, with its certified
/// bound and, for Pre-LN max token norms, the exponential fit.
pub(crate) fn metric_panel(runs: &[ChartRun], options: &PlotOptions) -> Result<Panel, PlotError> {
    let evals = select_evals(runs, options)?;
    let metric = options.metric;
    let overlay = runs.len() > 1;
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    let (mut any_above, mut any_fit) = (false, false);

    for (index, (chart_run, eval)) in runs.iter().zip(&evals).enumerate() {
        let colours = RunColours::new(options.theme, index, runs.len());
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
        let fit = growth_fit_curve(chart_run.run, eval, metric);

        let measured_label = match (&fit, overlay) {
            (_, false) => metric.label().to_string(),
            (Some((kappa, _)), true) => format!("{}, fit κ = {kappa:.3}", chart_run.label),
            (None, true) => chart_run.label.clone(),
        };
        lines.push(Series::new(Some(measured_label), measured, colours.measured, Stroke::Solid, Some(Marker::Circle), index));
        lines.push(Series::new(single_label(overlay, "certified bound"), bound, colours.bound, Stroke::Dashed, None, index));
        if !above.is_empty() {
            any_above = true;
            let layers: Vec<String> = above.iter().map(|(l, _)| format!("{l}")).collect();
            let run_prefix = if overlay { format!("{}: ", chart_run.label) } else { String::new() };
            notes.push(format!("{run_prefix}above the certified bound at layer {}, a bug in the lab", layers.join(", ")));
            let label = single_label(overlay, "above the certified bound");
            lines.push(Series::new(label, above, colours.bound, Stroke::None, Some(Marker::Cross), index));
        }
        if let Some((kappa, curve)) = fit {
            any_fit = true;
            let label = single_label(overlay, format!("exponential fit (κ = {kappa:.3}), a fit, not a bound"));
            lines.push(Series::new(label, curve, colours.fit, Stroke::Dotted, None, index));
        }
    }

    let mut key = Vec::new();
    if overlay {
        let neutral = options.theme.neutral();
        key.push(KeyEntry::new("measured", neutral, Stroke::Solid, None));
        key.push(KeyEntry::new("certified bound", neutral, Stroke::Dashed, None));
        if any_above {
            key.push(KeyEntry::new("above the certified bound", neutral, Stroke::None, Some(Marker::Cross)));
        }
        if any_fit {
            key.push(KeyEntry::new("exponential fit, a fit, not a bound", neutral, Stroke::Dotted, None));
        }
    }

    Ok(Panel {
        title: layer_chart_title(runs, &evals, metric.label(), options, &mut notes),
        x_label: "layer l (block boundary)".to_string(),
        y_label: metric.label().to_string(),
        x_padding: 0.3,
        x_scale: options.x_scale,
        y_scale: options.layer_scale,
        theme: options.theme,
        run_labels: run_labels(runs),
        series: lines,
        key,
        notes,
    })
}

/// Returns the run labels a panel's notes name, or none for a single run,
/// whose notes need no name.
fn run_labels(runs: &[ChartRun]) -> Vec<String> {
    if runs.len() > 1 { runs.iter().map(|r| r.label.clone()).collect() } else { Vec::new() }
}

/// Builds the chart of the gradient rms against layer, with the certified
/// bound at x_L where a run has one (placements with a final LayerNorm).
pub(crate) fn gradient_panel(runs: &[ChartRun], options: &PlotOptions) -> Result<Panel, PlotError> {
    let evals = select_evals(runs, options)?;
    let overlay = runs.len() > 1;
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    let mut any_bound = false;

    for (index, (chart_run, eval)) in runs.iter().zip(&evals).enumerate() {
        let colours = RunColours::new(options.theme, index, runs.len());
        let measured: Vec<(f64, f64)> = eval.layers.iter().map(|m| (m.layer as f64, m.grad_rms)).collect();
        let label = if overlay { chart_run.label.clone() } else { "gradient rms".to_string() };
        lines.push(Series::new(Some(label), measured, colours.gradient, Stroke::Solid, Some(Marker::Circle), index));

        let last = eval.layers.last();
        if let Some((layer, bound, value)) = last.and_then(|m| Some((m.layer as f64, m.bound_grad_rms?, m.grad_rms))) {
            any_bound = true;
            let label = single_label(overlay, "certified bound at x_L");
            lines.push(Series::new(label, vec![(layer, bound)], colours.bound, Stroke::None, Some(Marker::Triangle), index));
            if value.is_finite() && bound.is_finite() && !within_bound(value, bound) {
                let run_prefix = if overlay { format!("{}: ", chart_run.label) } else { String::new() };
                notes.push(format!("{run_prefix}gradient at x_L above its certified bound, a bug in the lab"));
            }
        }
    }

    let mut key = Vec::new();
    if overlay && any_bound {
        key.push(KeyEntry::new("certified bound at x_L", options.theme.neutral(), Stroke::None, Some(Marker::Triangle)));
    }

    Ok(Panel {
        title: layer_chart_title(runs, &evals, "gradient", options, &mut notes),
        x_label: "layer l (block boundary)".to_string(),
        y_label: "rms of ∂loss/∂x_l per token".to_string(),
        x_padding: 0.3,
        x_scale: options.x_scale,
        y_scale: options.layer_scale,
        theme: options.theme,
        run_labels: run_labels(runs),
        series: lines,
        key,
        notes,
    })
}

/// Returns the steps a run's loss lines span, as (first, last).
fn step_span(run: &RunFile, batch_losses: &[(f64, f64)], x_scale: AxisScale) -> (f64, f64) {
    let first = run.evals.iter().map(|e| e.step).min().unwrap_or(0) as f64;
    // A log x axis cannot place step 0, so a reference line starts at 1 there.
    let first = if x_scale == AxisScale::Log { first.max(1.0) } else { first };
    let last = (run.evals.iter().map(|e| e.step).max().unwrap_or(0) as f64).max(batch_losses.last().map_or(0.0, |p| p.0));
    (first, last)
}

/// Builds the chart of training and validation loss against step, with
/// the per-step training-batch loss and ln V, the loss of a uniform guess.
/// Runs with the same vocabulary share one ln V line.
pub(crate) fn loss_panel(runs: &[ChartRun], options: &PlotOptions) -> Result<Panel, PlotError> {
    select_evals(runs, &PlotOptions { eval_index: None, ..options.clone() })?;
    let theme = options.theme;
    let overlay = runs.len() > 1;
    let shared_vocab = runs.iter().all(|r| r.run.model.vocab == runs[0].run.model.vocab);
    let mut lines = Vec::new();
    let mut span = (f64::INFINITY, f64::NEG_INFINITY);

    for (index, chart_run) in runs.iter().enumerate() {
        let run = chart_run.run;
        let colours = RunColours::new(theme, index, runs.len());
        let train: Vec<(f64, f64)> = run.evals.iter().map(|e| (e.step as f64, e.train_loss)).collect();
        let validation: Vec<(f64, f64)> = run.evals.iter().map(|e| (e.step as f64, e.val_loss)).collect();
        let (batch_label, batch_losses) = step_loss_points(&run.step_losses);
        let (first, last) = step_span(run, &batch_losses, options.x_scale);
        span = (span.0.min(first), span.1.max(last));

        let faint = colours.measured.mix(theme.faint_alpha());
        lines.push(Series::new(single_label(overlay, batch_label), batch_losses, faint, Stroke::Solid, None, index));
        let train_label = if overlay { chart_run.label.clone() } else { "train loss (fixed batches)".to_string() };
        lines.push(Series::new(Some(train_label), train, colours.measured, Stroke::Solid, Some(Marker::Circle), index));
        let (validation_stroke, validation_marker) = if overlay { (Stroke::Dashed, Marker::Triangle) } else { (Stroke::Solid, Marker::Circle) };
        let label = single_label(overlay, "validation loss");
        lines.push(Series::new(label, validation, colours.validation, validation_stroke, Some(validation_marker), index));
        if !shared_vocab {
            let uniform = (run.model.vocab as f64).ln();
            lines.push(Series::new(None, vec![(first, uniform), (last, uniform)], colours.measured, Stroke::Dotted, None, index));
        }
    }

    let neutral = theme.neutral();
    if shared_vocab {
        let uniform = (runs[0].run.model.vocab as f64).ln();
        let points = vec![(span.0, uniform), (span.1, uniform)];
        lines.push(Series::new(Some("ln V (uniform guess)".to_string()), points, neutral, Stroke::Dotted, None, 0).shared());
    }
    let mut key = Vec::new();
    if overlay {
        key.push(KeyEntry::new("training batch", neutral.mix(theme.faint_alpha() + 0.1), Stroke::Solid, None));
        key.push(KeyEntry::new("train loss (fixed batches)", neutral, Stroke::Solid, None));
        key.push(KeyEntry::new("validation loss", neutral, Stroke::Dashed, None));
        if !shared_vocab {
            key.push(KeyEntry::new("ln V (uniform guess) of each run", neutral, Stroke::Dotted, None));
        }
    }

    let prefix = common_placement(runs).map(|label| format!("{label}: ")).unwrap_or_default();
    Ok(Panel {
        title: format!("{prefix}loss by step"),
        x_label: "step".to_string(),
        y_label: "loss (nats)".to_string(),
        x_padding: 0.0,
        x_scale: options.x_scale,
        y_scale: options.loss_scale,
        theme,
        run_labels: run_labels(runs),
        series: lines,
        key,
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

/// Formats the line above the charts. A single run's heading names its
/// settings; overlaid runs' heading names the settings they share. Either
/// names any run that diverged.
pub(crate) fn figure_heading(runs: &[ChartRun]) -> String {
    let parts: Vec<Vec<String>> = runs.iter().map(|r| heading_parts(r.run)).collect();
    let mut heading = match parts.as_slice() {
        [single] => single.join(", "),
        _ => {
            let shared: Vec<&str> =
                (0..parts[0].len()).filter(|&i| parts.iter().all(|p| p[i] == parts[0][i])).map(|i| parts[0][i].as_str()).collect();
            if shared.is_empty() {
                format!("{} runs", runs.len())
            } else {
                format!("{} runs, all with {}", runs.len(), shared.join(", "))
            }
        }
    };
    for chart_run in runs {
        if let Some(non_finite) = &chart_run.run.non_finite {
            let run_prefix = if runs.len() > 1 { format!("{} ", chart_run.label) } else { String::new() };
            heading.push_str(&format!(" ({run_prefix}diverged: {non_finite})"));
        }
    }
    heading
}

fn heading_parts(run: &RunFile) -> Vec<String> {
    let model = &run.model;
    vec![
        model.placement.label().to_string(),
        format!("L = {}", model.layers),
        format!("d = {}", model.width),
        format!("{} heads", model.heads),
        format!("Δt = {}", model.dt),
        format!("data {}", run.data.name()),
        format!("{} steps at lr {}", run.train.steps, run.train.lr),
    ]
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
