//! The per-layer statistic that the metric chart plots, with its bound.

use crate::metrics::LayerMetrics;
use serde::{Deserialize, Serialize};

/// A per-layer statistic of the residual stream x_l, as stored in the run
/// file's `layers` records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Mean over b, t, k of `|x[b,t,k]|`.
    MeanAbs,
    /// Mean over tokens of the variance across the d features.
    EntryVar,
    /// Mean over (t, k) of the variance across the B sequences.
    DataVar,
    /// sqrt(mean over b, t, k of x²).
    Rms,
    /// M_l: max over tokens of `‖x[b,t,:]‖₂`.
    MaxTokenNorm,
}

impl Metric {
    pub const ALL: [Metric; 5] = [Metric::MeanAbs, Metric::EntryVar, Metric::DataVar, Metric::Rms, Metric::MaxTokenNorm];

    /// Returns the field name in the run file's layer records.
    pub fn name(&self) -> &'static str {
        match self {
            Metric::MeanAbs => "mean_abs",
            Metric::EntryVar => "entry_var",
            Metric::DataVar => "data_var",
            Metric::Rms => "rms",
            Metric::MaxTokenNorm => "max_token_norm",
        }
    }

    /// Returns the axis text for charts.
    pub fn label(&self) -> &'static str {
        match self {
            Metric::MeanAbs => "mean |x_l| over entries",
            Metric::EntryVar => "variance of x_l across features",
            Metric::DataVar => "variance of x_l across sequences",
            Metric::Rms => "rms of x_l",
            Metric::MaxTokenNorm => "max token norm ‖x_l‖₂",
        }
    }

    /// Parses a run-file name, ignoring ASCII case and accepting `-` for
    /// `_` (`max-token-norm`). Returns `None` for anything else.
    pub fn parse(text: &str) -> Option<Metric> {
        let key = text.trim().to_ascii_lowercase().replace('-', "_");
        Metric::ALL.into_iter().find(|metric| metric.name() == key)
    }

    /// Returns the certified bound on this metric at one layer, or `None`
    /// where the record has no finite bound (a diverged run stores NaN).
    pub fn bound(&self, metrics: &LayerMetrics) -> Option<f64> {
        let bound = match self {
            Metric::MeanAbs => metrics.bound_mean_abs,
            // rms² is the mean of ‖x_t‖²/d over tokens, at most M²/d, so rms ≤ M/sqrt(d) = bound_mean_abs.
            Metric::Rms => metrics.bound_mean_abs,
            Metric::EntryVar | Metric::DataVar => metrics.bound_entry_var,
            Metric::MaxTokenNorm => metrics.bound_max_token_norm,
        };
        bound.is_finite().then_some(bound)
    }

    /// Returns the measured value at one layer, which is NaN where the run diverged.
    pub fn value(&self, metrics: &LayerMetrics) -> f64 {
        match self {
            Metric::MeanAbs => metrics.mean_abs,
            Metric::EntryVar => metrics.entry_var,
            Metric::DataVar => metrics.data_var,
            Metric::Rms => metrics.rms,
            Metric::MaxTokenNorm => metrics.max_token_norm,
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_parse_round_trip() {
        for metric in Metric::ALL {
            assert_eq!(Metric::parse(metric.name()), Some(metric), "{metric:?}");
        }
    }

    #[test]
    fn parse_accepts_hyphens_and_case() {
        assert_eq!(Metric::parse("Max-Token-Norm"), Some(Metric::MaxTokenNorm));
        assert_eq!(Metric::parse("ENTRY_VAR"), Some(Metric::EntryVar));
    }

    #[test]
    fn parse_rejects_unknown_names() {
        assert_eq!(Metric::parse("max_abs"), None);
        assert_eq!(Metric::parse(""), None);
    }

    #[test]
    fn name_matches_serde_key() {
        for metric in Metric::ALL {
            let json = serde_json::to_string(&metric).unwrap();
            assert_eq!(json, format!("\"{}\"", metric.name()));
        }
    }
}
