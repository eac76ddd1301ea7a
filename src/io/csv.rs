//! A run's evaluations as CSV, one row per (evaluation, layer), for
//! spreadsheets and data-frame libraries.
//!
//! Every number is written with Rust's `{}` formatting of f64, the shortest
//! text that parses back to the same value, so nothing is rounded. Rows end
//! in `\n`. No field needs quoting, because all of them are numbers.
//!
//! Non-finite values (a diverged run) are written `NaN`, `inf` and `-inf`.
//! Rust's `str::parse::<f64>` and Python's `float` read them back as
//! numbers. Spreadsheet programs import them as text cells, which SUM and
//! AVERAGE over a range skip. A field that does not apply, which the run
//! file stores as null (`bound_grad_rms` below x_L), is left empty.

use crate::io::run_file::RunFile;
use crate::metrics::LayerMetrics;
use std::fmt::Write;

/// Columns of [`run_csv`], in order. The first four repeat on each layer of
/// an evaluation; the rest are the [`LayerMetrics`] fields of that name.
pub const CSV_COLUMNS: [&str; 18] = [
    "step",
    "lr",
    "train_loss",
    "val_loss",
    "layer",
    "mean_abs",
    "entry_var",
    "data_var",
    "rms",
    "max_abs",
    "max_token_norm",
    "grad_rms",
    "max_token_grad_norm",
    "bound_max_token_norm",
    "bound_mean_abs",
    "bound_entry_var",
    "bound_grad_rms",
    "grad_bound_ratio",
];

/// Returns the layer-record fields of [`CSV_COLUMNS`] from `layer` on, in
/// column order; `None` where the field does not apply.
fn layer_fields(metrics: &LayerMetrics) -> [Option<f64>; 13] {
    [
        Some(metrics.mean_abs),
        Some(metrics.entry_var),
        Some(metrics.data_var),
        Some(metrics.rms),
        Some(metrics.max_abs),
        Some(metrics.max_token_norm),
        Some(metrics.grad_rms),
        Some(metrics.max_token_grad_norm),
        Some(metrics.bound_max_token_norm),
        Some(metrics.bound_mean_abs),
        Some(metrics.bound_entry_var),
        metrics.bound_grad_rms,
        metrics.grad_bound_ratio,
    ]
}

/// Formats the run's evaluations as CSV with a header row of
/// [`CSV_COLUMNS`] and one row per evaluation and block boundary l = 0..L.
pub fn run_csv(run: &RunFile) -> String {
    let mut csv = CSV_COLUMNS.join(",");
    csv.push('\n');
    for eval in &run.evals {
        for metrics in &eval.layers {
            // Writing to a String cannot fail, so the results of write! are ignored.
            let _ = write!(csv, "{},{},{},{},{}", eval.step, eval.lr, eval.train_loss, eval.val_loss, metrics.layer);
            for field in layer_fields(metrics) {
                csv.push(',');
                if let Some(value) = field {
                    let _ = write!(csv, "{value}");
                }
            }
            csv.push('\n');
        }
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DataConfig, ModelConfig, TrainConfig};
    use crate::io::run_file::{EvalBatch, EvalRecord, SCHEMA_NAME, SCHEMA_VERSION};

    /// Builds layer metrics whose fields are all distinct, awkward values.
    fn metrics(layer: usize, seed: f64) -> LayerMetrics {
        let value = |i: f64| seed * (1.0 + i) / 3.0 + 1e-17 * i;
        LayerMetrics {
            layer,
            mean_abs: value(1.0),
            entry_var: value(2.0),
            data_var: value(3.0),
            rms: value(4.0),
            max_abs: value(5.0),
            max_token_norm: value(6.0),
            grad_rms: value(7.0) * 1e-9,
            max_token_grad_norm: value(8.0),
            bound_max_token_norm: value(9.0) * 1e12,
            bound_mean_abs: value(10.0),
            bound_entry_var: value(11.0),
            bound_grad_rms: (layer == 2).then(|| value(12.0)),
            grad_bound_ratio: (layer == 2).then(|| value(13.0)),
        }
    }

    fn run() -> RunFile {
        let eval = |step: usize, seed: f64| EvalRecord {
            step,
            lr: 0.1 + seed,
            train_loss: std::f64::consts::PI * seed,
            val_loss: std::f64::consts::E / seed,
            layers: (0..3).map(|layer| metrics(layer, seed + layer as f64)).collect(),
            half_steps: Vec::new(),
            blocks: Vec::new(),
            growth_fit: None,
        };
        let mut diverged = eval(10, 7.0);
        diverged.val_loss = f64::INFINITY;
        diverged.layers[1].max_token_norm = f64::NAN;
        diverged.layers[1].rms = f64::NEG_INFINITY;
        RunFile {
            schema: SCHEMA_NAME.to_string(),
            schema_version: SCHEMA_VERSION,
            lnlab_version: "0.1.0".to_string(),
            backend: "cpu".to_string(),
            model: ModelConfig { layers: 2, ..ModelConfig::standard(40) },
            train: TrainConfig::default(),
            data: DataConfig::MobyDick,
            vocab: String::new(),
            parameters: 0,
            eval_batch: EvalBatch { batch: 0, context: 0, tokens: Vec::new(), targets: Vec::new() },
            step_losses: Vec::new(),
            evals: vec![eval(0, 0.3), eval(5, 1.7), diverged],
            non_finite: None,
        }
    }

    /// Parses a field back: empty for `None`, else an f64 (NaN, inf included).
    fn parse(field: &str) -> Option<f64> {
        (!field.is_empty()).then(|| field.parse::<f64>().unwrap_or_else(|e| panic!("field {field:?}: {e}")))
    }

    /// Compares two values bit for bit, except that any NaN equals any NaN.
    fn same(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            (a, b) => a.is_none() && b.is_none(),
        }
    }

    #[test]
    fn header_names_every_column() {
        let csv = run_csv(&run());
        assert_eq!(csv.lines().next().unwrap(), CSV_COLUMNS.join(","));
    }

    #[test]
    fn csv_parses_back_to_the_same_numbers() {
        let run = run();
        let csv = run_csv(&run);
        let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|line| line.split(',').collect()).collect();
        assert_eq!(rows.len(), 3 * 3, "3 evaluations × 3 layers");

        let expected = run.evals.iter().flat_map(|eval| eval.layers.iter().map(move |layer| (eval, layer)));
        for (row, (eval, layer)) in rows.iter().zip(expected) {
            assert_eq!(row.len(), CSV_COLUMNS.len(), "{row:?}");
            assert_eq!(row[0].parse::<usize>().unwrap(), eval.step);
            assert!(same(parse(row[1]), Some(eval.lr)), "lr {}", row[1]);
            assert!(same(parse(row[2]), Some(eval.train_loss)), "train_loss {}", row[2]);
            assert!(same(parse(row[3]), Some(eval.val_loss)), "val_loss {}", row[3]);
            assert_eq!(row[4].parse::<usize>().unwrap(), layer.layer);
            for (column, (field, value)) in row[5..].iter().zip(layer_fields(layer)).enumerate() {
                assert!(same(parse(field), value), "step {} layer {} {}: {field:?} vs {value:?}", eval.step, layer.layer, CSV_COLUMNS[column + 5]);
            }
        }
    }

    #[test]
    fn non_finite_values_are_spelled_out() {
        let csv = run_csv(&run());
        let last_middle = csv.lines().nth(8).unwrap();
        let fields: Vec<&str> = last_middle.split(',').collect();
        assert_eq!(fields[3], "inf");
        assert_eq!(fields[8], "-inf");
        assert_eq!(fields[10], "NaN");
    }

    #[test]
    fn missing_gradient_bound_is_empty() {
        let csv = run_csv(&run());
        let first_layer: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
        assert_eq!(first_layer[16], "");
        assert_eq!(first_layer[17], "");
    }
}
