//! The per-layer and loss tables, and the data table behind each chart.

use super::Lab;
use crate::io::run_file::RunFile;
use crate::plot::{ChartKind, Metric};
use leptos::prelude::*;

/// Full-precision text for data attributes, so a page test compares the
/// same numbers the charts use.
pub fn number_text(value: f64) -> String {
    if value.is_finite() { format!("{value:e}") } else { "NaN".into() }
}

/// Short text for a table cell.
fn cell(value: f64) -> String {
    if !value.is_finite() {
        "NaN".into()
    } else if value != 0.0 && (value.abs() < 1e-3 || value.abs() >= 1e5) {
        format!("{value:.3e}")
    } else {
        format!("{value:.4}")
    }
}

/// Returns the run the tables describe: the one in training, or else the last run
/// drawn on the charts.
fn table_run(lab: Lab) -> Option<RunFile> {
    let active = lab.active.get();
    lab.runs.with(|list| {
        active
            .and_then(|id| list.iter().find(|r| r.id == id))
            .or_else(|| list.iter().rev().find(|r| r.shown))
            .map(|r| r.run.clone())
    })
}

#[component]
pub fn LayerTable(lab: Lab) -> impl IntoView {
    let rows = move || table_run(lab).and_then(|r| r.evals.last().map(|e| e.layers.clone())).unwrap_or_default();
    view! {
        <table id="layer-table">
            <caption>"Latest measurement by layer, with certified bounds"</caption>
            <thead><tr>
                <th scope="col">"layer"</th><th scope="col">"max token norm"</th><th scope="col">"bound"</th>
                <th scope="col">"mean |x|"</th><th scope="col">"bound"</th><th scope="col">"variance across features"</th><th scope="col">"variance across sequences"</th>
                <th scope="col">"bound (both variances)"</th><th scope="col">"gradient rms"</th>
            </tr></thead>
            <tbody>
                {move || rows().into_iter().map(|m| view! {
                    <tr
                        data-layer=m.layer.to_string()
                        data-mean-abs=number_text(m.mean_abs)
                        data-entry-var=number_text(m.entry_var)
                        data-data-var=number_text(m.data_var)
                        data-max-token-norm=number_text(m.max_token_norm)
                        data-bound-mean-abs=number_text(m.bound_mean_abs)
                        data-bound-entry-var=number_text(m.bound_entry_var)
                        data-bound-max-token-norm=number_text(m.bound_max_token_norm)
                        data-grad-rms=number_text(m.grad_rms)
                    >
                        <th scope="row">{m.layer}</th>
                        <td>{cell(m.max_token_norm)}</td><td>{cell(m.bound_max_token_norm)}</td>
                        <td>{cell(m.mean_abs)}</td><td>{cell(m.bound_mean_abs)}</td>
                        <td>{cell(m.entry_var)}</td><td>{cell(m.data_var)}</td>
                        <td>{cell(m.bound_entry_var)}</td><td>{format!("{:.3e}", m.grad_rms)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
pub fn LossTable(lab: Lab) -> impl IntoView {
    let rows = move || table_run(lab).map(|r| r.evals.iter().map(|e| (e.step, e.train_loss, e.val_loss)).collect::<Vec<_>>()).unwrap_or_default();
    view! {
        <table id="loss-table">
            <caption>"Loss at each measurement (nats per character)"</caption>
            <thead><tr><th scope="col">"step"</th><th scope="col">"train loss"</th><th scope="col">"validation loss"</th></tr></thead>
            <tbody>
                {move || rows().into_iter().map(|(step, train, val)| view! {
                    <tr data-step=step.to_string() data-train-loss=number_text(train) data-val-loss=number_text(val)>
                        <th scope="row">{step}</th><td>{format!("{train:.4}")}</td><td>{format!("{val:.4}")}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// Header and rows of a chart's data table.
pub struct DataTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Builds the numbers one chart draws, one column per run and quantity,
/// as a table that screen readers and keyboard users can read.
pub fn chart_table(kind: ChartKind, runs: &[(String, RunFile)], metric: Metric) -> DataTable {
    let mut header = Vec::new();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let row = |rows: &mut Vec<Vec<String>>, index: usize, key: String| -> usize {
        while rows.len() <= index {
            rows.push(Vec::new());
        }
        if rows[index].is_empty() {
            rows[index].push(key);
        }
        index
    };
    match kind {
        ChartKind::Metric | ChartKind::Gradient => {
            header.push("layer".to_string());
            let depth = runs.iter().filter_map(|(_, r)| r.evals.last().map(|e| e.layers.len())).max().unwrap_or(0);
            for layer in 0..depth {
                row(&mut rows, layer, layer.to_string());
            }
            for (label, run) in runs {
                let last = run.evals.last();
                if kind == ChartKind::Metric {
                    header.push(format!("{label}: {}", metric.label()));
                    header.push(format!("{label}: bound"));
                } else {
                    header.push(format!("{label}: gradient rms"));
                }
                for (layer, cells) in rows.iter_mut().enumerate() {
                    let m = last.and_then(|e| e.layers.get(layer));
                    if kind == ChartKind::Metric {
                        cells.push(m.map(|m| cell(metric.value(m))).unwrap_or_default());
                        cells.push(m.and_then(|m| metric.bound(m)).map(cell).unwrap_or_default());
                    } else {
                        cells.push(m.map(|m| format!("{:.3e}", m.grad_rms)).unwrap_or_default());
                    }
                }
            }
        }
        ChartKind::Loss => {
            header.push("step".to_string());
            let mut steps: Vec<usize> = runs.iter().flat_map(|(_, r)| r.evals.iter().map(|e| e.step)).collect();
            steps.sort_unstable();
            steps.dedup();
            for (index, step) in steps.iter().enumerate() {
                row(&mut rows, index, step.to_string());
            }
            for (label, run) in runs {
                header.push(format!("{label}: train loss"));
                header.push(format!("{label}: validation loss"));
                for (index, step) in steps.iter().enumerate() {
                    let eval = run.evals.iter().find(|e| e.step == *step);
                    rows[index].push(eval.map(|e| cell(e.train_loss)).unwrap_or_default());
                    rows[index].push(eval.map(|e| cell(e.val_loss)).unwrap_or_default());
                }
            }
        }
        ChartKind::LayerStep => {
            header.push("step".to_string());
            if let Some((label, run)) = runs.first() {
                let depth = run.model.layers + 1;
                header.extend((0..depth).map(|l| format!("{label}: layer {l}")));
                for (index, eval) in run.evals.iter().enumerate() {
                    row(&mut rows, index, eval.step.to_string());
                    rows[index].extend(eval.layers.iter().map(|m| cell(metric.value(m))));
                }
            }
        }
    }
    DataTable { header, rows }
}
