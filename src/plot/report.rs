//! A self-contained HTML report of one or more runs: their settings side
//! by side, the line charts as inline SVG, and per run the per-layer
//! measurements with their bounds and the losses. It has no scripts and
//! loads nothing, so it opens offline and can be handed in as one file.

use super::panels::{figure_heading, select_evals};
use super::{chart_svg, ChartKind, ChartRun, Metric, PlotError, PlotOptions, Theme};
use crate::config::{OptimizerKind, Schedule};
use crate::io::run_file::{EvalRecord, RunFile};
use crate::metrics::within_bound;
use std::fmt::Write;

/// Maximum number of rows of a run's loss table. Longer runs show evaluations at even
/// spacing, always with the first and the last.
const MAX_LOSS_ROWS: usize = 60;

/// Replaces the five characters that HTML gives meaning to (`& < > " '`)
/// with character references, so `text` shows as written in element
/// content and in quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Formats a table number with four significant digits, in scientific
/// notation outside [10⁻³, 10⁵), and NaN, ∞ or −∞ for non-finite values.
fn format_number(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "∞" } else { "−∞" }.to_string();
    }
    if value == 0.0 {
        return "0".to_string();
    }
    let magnitude = value.abs();
    if !(1e-3..1e5).contains(&magnitude) {
        let text = format!("{value:.3e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        return format!("{}e{exponent}", trim_zeros(mantissa));
    }
    let decimals = (3 - magnitude.log10().floor() as i32).max(0) as usize;
    trim_zeros(&format!("{value:.decimals$}")).to_string()
}

/// Removes trailing zeros after a decimal point, and the point if nothing follows it.
fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_string()
}

/// Returns the rows of the settings table: a name and each run's value.
fn settings_rows(run: &RunFile) -> Vec<(&'static str, String)> {
    let (model, train) = (&run.model, &run.train);
    vec![
        ("placement", model.placement.label().to_string()),
        ("layers L", model.layers.to_string()),
        ("width d", model.width.to_string()),
        ("heads H", model.heads.to_string()),
        ("context T", model.context.to_string()),
        ("vocabulary V", model.vocab.to_string()),
        ("residual step Δt", model.dt.to_string()),
        ("tied head", yes_no(model.tied_head)),
        ("head bias", yes_no(model.head_bias)),
        ("embedding LayerNorm", yes_no(model.embedding_ln)),
        ("scaled residual init", yes_no(model.scaled_residual_init)),
        ("parameters", run.parameters.to_string()),
        ("optimiser", match train.optimizer {
            OptimizerKind::Adamw => "AdamW".to_string(),
            OptimizerKind::Sgd => "SGD".to_string(),
        }),
        ("learning rate", train.lr.to_string()),
        ("schedule", match train.schedule {
            Schedule::Constant => "constant".to_string(),
            Schedule::Cosine => format!("cosine to {} × lr", train.min_lr_ratio),
        }),
        ("warm-up steps", train.warmup.to_string()),
        ("weight decay", train.weight_decay.to_string()),
        ("decay LayerNorm gains", yes_no(train.decay_ln_gains)),
        ("gradient clip", train.grad_clip.map_or("none".to_string(), |clip| clip.to_string())),
        ("batch B", train.batch.to_string()),
        ("steps", train.steps.to_string()),
        ("evaluate every", format!("{} steps", train.eval_every)),
        ("evaluation batches", train.eval_batches.to_string()),
        ("seed", train.seed.to_string()),
        ("data", run.data.name()),
        ("backend", run.backend.clone()),
        ("lnlab version", run.lnlab_version.clone()),
        ("evaluations", run.evals.len().to_string()),
        ("diverged", run.non_finite.as_ref().map_or("no".to_string(), |non_finite| non_finite.to_string())),
    ]
}

/// Inline style sheet: light or dark colours, tables that fit the page,
/// and print rules that keep charts and tables whole.
fn style(theme: Theme) -> String {
    let (background, text, border, differs, above) = match theme {
        Theme::Light => ("#ffffff", "#111111", "#b0b0b0", "#fff1b8", "#b00020"),
        Theme::Dark => ("#1e1e1e", "#e6e6e6", "#5a5a5a", "#4d4210", "#ff8a80"),
    };
    format!(
        "body {{ font-family: system-ui, sans-serif; background: {background}; color: {text}; max-width: 64rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.4; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; font-variant-numeric: tabular-nums; }}
th, td {{ border: 1px solid {border}; padding: 0.2rem 0.45rem; text-align: right; vertical-align: top; }}
th:first-child, table.settings td {{ text-align: left; }}
td small {{ display: block; opacity: 0.75; }}
tr.differs {{ background: {differs}; font-weight: bold; }}
td.above {{ color: {above}; font-weight: bold; }}
figure {{ margin: 1rem 0; }}
figure svg {{ width: 100%; height: auto; }}
figcaption {{ font-size: 0.9rem; }}
@media print {{
  body {{ margin: 0; max-width: none; }}
  .scroll {{ overflow: visible; }}
  figure, table {{ break-inside: avoid; }}
  h2, h3 {{ break-after: avoid; }}
  * {{ print-color-adjust: exact; -webkit-print-color-adjust: exact; }}
}}
"
    )
}

/// Builds a self-contained HTML report of `runs` under the heading `title`.
/// It contains a settings table with one column per run, where settings
/// that differ are highlighted, and the metric, gradient and loss charts
/// as inline SVG of `options.width` × `options.height` pixels each. Per run
/// it then has a per-layer table, at the evaluation the charts show
/// (`options.eval_index`, by default the last), and a loss table. All text
/// from the runs and the title is HTML-escaped.
pub fn html_report(runs: &[ChartRun], options: &PlotOptions, title: &str) -> Result<String, PlotError> {
    let evals = select_evals(runs, options)?;
    let charts = [
        (ChartKind::Metric, format!("{} by layer, with its certified bound (dashed).", options.metric.label())),
        (ChartKind::Gradient, "RMS of the loss gradient with respect to x_l, by layer; triangles mark its certified bound at x_L.".to_string()),
        (ChartKind::Loss, "Training and validation loss by step.".to_string()),
    ];
    let mut svgs = Vec::new();
    for (kind, caption) in charts {
        svgs.push((chart_svg(kind, runs, options)?, caption));
    }

    let mut html = String::new();
    let title = escape_html(title);
    // Writing to a String cannot fail, so the results of write! are ignored.
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>\n{}</style>\n</head>\n<body>\n<h1>{title}</h1>\n",
        style(options.theme),
    );
    let _ = writeln!(html, "<p>{}</p>", escape_html(&figure_heading(runs)));

    write_settings(&mut html, runs);

    html.push_str("<h2>Charts</h2>\n");
    for (svg, caption) in svgs {
        let _ = writeln!(html, "<figure>\n{svg}<figcaption>{}</figcaption>\n</figure>", escape_html(&caption));
    }

    html.push_str(
        "<h2>Measurements</h2>\n<p>Each measured value has its certified bound below it. \
         A value above its bound is marked ! and would be a bug in the lab.</p>\n",
    );
    for (chart_run, eval) in runs.iter().zip(evals) {
        let _ = writeln!(html, "<h3>{}</h3>", escape_html(&chart_run.label));
        write_layer_table(&mut html, eval);
        write_loss_table(&mut html, chart_run.run);
    }
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

/// Writes the settings table, one column per run, with the rows whose
/// values differ between runs marked `differs`.
fn write_settings(html: &mut String, runs: &[ChartRun]) {
    let rows: Vec<Vec<(&str, String)>> = runs.iter().map(|r| settings_rows(r.run)).collect();
    html.push_str("<h2>Settings</h2>\n");
    if runs.len() > 1 {
        html.push_str("<p>Settings that differ between the runs are highlighted.</p>\n");
    }
    html.push_str("<div class=\"scroll\"><table class=\"settings\">\n<thead><tr><th>setting</th>");
    for chart_run in runs {
        let _ = write!(html, "<th>{}</th>", escape_html(&chart_run.label));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for (index, (name, first)) in rows[0].iter().enumerate() {
        let differs = rows.iter().any(|run_rows| run_rows[index].1 != *first);
        let class = if differs { " class=\"differs\"" } else { "" };
        let _ = write!(html, "<tr{class}><th>{}</th>", escape_html(name));
        for run_rows in &rows {
            let _ = write!(html, "<td>{}</td>", escape_html(&run_rows[index].1));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table></div>\n");
}

/// Writes a cell with a measured value and, below it, its bound where it
/// has one. A value above its bound, which would be a bug in the lab, is
/// marked `above` and followed by "!".
fn write_value_cell(html: &mut String, value: f64, bound: Option<f64>) {
    let above = matches!(bound, Some(bound) if value.is_finite() && !within_bound(value, bound));
    let bound_text = bound.map_or(String::new(), |bound| format!("<small>bound {}</small>", format_number(bound)));
    if above {
        let _ = write!(html, "<td class=\"above\">{} !{bound_text}</td>", format_number(value));
    } else {
        let _ = write!(html, "<td>{}{bound_text}</td>", format_number(value));
    }
}

/// Writes the table of every layer at `eval`: each metric with its
/// certified bound, the max |x| (which has none), and the gradient rms
/// with its bound at x_L where there is one.
fn write_layer_table(html: &mut String, eval: &EvalRecord) {
    let _ = writeln!(html, "<h4>Layers at step {}</h4>", eval.step);
    html.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>layer</th>");
    for metric in Metric::ALL {
        let _ = write!(html, "<th>{}</th>", metric.name());
    }
    html.push_str("<th>max_abs</th><th>grad_rms</th></tr></thead>\n<tbody>\n");
    for layer in &eval.layers {
        let _ = write!(html, "<tr><th>{}</th>", layer.layer);
        for metric in Metric::ALL {
            write_value_cell(html, metric.value(layer), metric.bound(layer));
        }
        write_value_cell(html, layer.max_abs, None);
        write_value_cell(html, layer.grad_rms, layer.bound_grad_rms.filter(|b| b.is_finite()));
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table></div>\n");
}

/// Returns the indices of the evaluations that the loss table shows: all
/// of them up to [`MAX_LOSS_ROWS`], else evenly spaced ones with the first
/// and the last.
fn loss_rows(count: usize) -> Vec<usize> {
    if count <= MAX_LOSS_ROWS {
        return (0..count).collect();
    }
    let mut rows: Vec<usize> = (0..MAX_LOSS_ROWS).map(|i| i * (count - 1) / (MAX_LOSS_ROWS - 1)).collect();
    rows.dedup();
    rows
}

fn write_loss_table(html: &mut String, run: &RunFile) {
    let rows = loss_rows(run.evals.len());
    html.push_str("<h4>Loss</h4>\n");
    if rows.len() < run.evals.len() {
        let _ = writeln!(html, "<p>{} of {} evaluations, evenly spaced.</p>", rows.len(), run.evals.len());
    }
    html.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>step</th><th>lr</th><th>train_loss</th><th>val_loss</th></tr></thead>\n<tbody>\n");
    for index in rows {
        let eval = &run.evals[index];
        let _ = writeln!(
            html,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            eval.step,
            format_number(eval.lr),
            format_number(eval.train_loss),
            format_number(eval.val_loss),
        );
    }
    html.push_str("</tbody>\n</table></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_replaces_markup_characters() {
        assert_eq!(escape_html("<script>alert('x & \"y\"')</script>"), "&lt;script&gt;alert(&#39;x &amp; &quot;y&quot;&#39;)&lt;/script&gt;");
        assert_eq!(escape_html("Pre-LN, Δt 0.1"), "Pre-LN, Δt 0.1");
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(format_number(1.23456), "1.235");
        assert_eq!(format_number(0.003), "0.003");
        assert_eq!(format_number(12345.6), "12346");
        assert_eq!(format_number(2.5e-5), "2.5e-5");
        assert_eq!(format_number(-1.23456e7), "-1.235e7");
        assert_eq!(format_number(0.0), "0");
        assert_eq!(format_number(f64::NAN), "NaN");
        assert_eq!(format_number(f64::NEG_INFINITY), "−∞");
    }

    #[test]
    fn long_loss_tables_are_thinned() {
        assert_eq!(loss_rows(3), [0, 1, 2]);
        let rows = loss_rows(1000);
        assert_eq!(rows.len(), MAX_LOSS_ROWS);
        assert_eq!(rows.first(), Some(&0));
        assert_eq!(rows.last(), Some(&999));
    }
}
