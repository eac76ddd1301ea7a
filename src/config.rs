//! The experiment's settings: model, training and data, each validated
//! before use so that no user-supplied value can panic the lab.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Position of LayerNorm in each block (see `docs/model.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// `x = LN(x + Δt·f(x))`, no final norm.
    Post,
    /// `x = x + Δt·f(LN(x))`, final norm before the head.
    Pre,
    /// `x = x + Δt·LN_out(f(LN_in(x)))`, final norm before the head.
    Peri,
    /// `x = x + Δt·f(x)`, no norm anywhere.
    None,
}

impl Placement {
    pub const ALL: [Placement; 4] = [Placement::Post, Placement::Pre, Placement::Peri, Placement::None];

    pub fn name(self) -> &'static str {
        match self {
            Placement::Post => "post",
            Placement::Pre => "pre",
            Placement::Peri => "peri",
            Placement::None => "none",
        }
    }

    /// Human-readable label for charts and messages.
    pub fn label(self) -> &'static str {
        match self {
            Placement::Post => "Post-LN",
            Placement::Pre => "Pre-LN",
            Placement::Peri => "Peri-LN",
            Placement::None => "No LN",
        }
    }

    /// Whether the head reads `LN_f(x_L)` instead of `x_L`.
    pub fn has_final_ln(self) -> bool {
        matches!(self, Placement::Pre | Placement::Peri)
    }

    pub fn parse(text: &str) -> Result<Placement, ConfigError> {
        match text.to_ascii_lowercase().as_str() {
            "post" | "post-ln" => Ok(Placement::Post),
            "pre" | "pre-ln" => Ok(Placement::Pre),
            "peri" | "peri-ln" => Ok(Placement::Peri),
            "none" | "no-ln" => Ok(Placement::None),
            _ => Err(ConfigError::new("placement", text, "one of post, pre, peri, none")),
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A setting that is outside its allowed range.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid {field} = {value}: expected {allowed}")]
pub struct ConfigError {
    /// Name of the setting, as on the command line (`width`, `dt`, ...).
    pub field: &'static str,
    pub value: String,
    /// The allowed range or set, in words.
    pub allowed: String,
}

impl ConfigError {
    pub fn new(field: &'static str, value: impl fmt::Display, allowed: impl Into<String>) -> Self {
        ConfigError { field, value: value.to_string(), allowed: allowed.into() }
    }
}

/// Upper limits that keep a run inside what a browser tab can hold. They are
/// generous for teaching-scale models and stop typing accidents (a width of
/// 64000) before any allocation.
pub mod limits {
    pub const MAX_LAYERS: usize = 64;
    pub const MAX_WIDTH: usize = 1024;
    pub const MAX_HEADS: usize = 64;
    pub const MAX_CONTEXT: usize = 1024;
    pub const MAX_VOCAB: usize = 512;
    pub const MAX_BATCH: usize = 512;
    pub const MAX_STEPS: usize = 10_000_000;
    /// Largest Δt: steps above 1 are allowed for experiments, but not absurd ones.
    pub const MAX_DT: f64 = 10.0;
    pub const MAX_LR: f64 = 10.0;
}

/// The network of the lab's model specification: width, depth, placement
/// and the options of section 1 of `docs/model.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub placement: Placement,
    /// Number of blocks L.
    pub layers: usize,
    /// Model width d.
    pub width: usize,
    /// Number of attention heads H; `width` must be a multiple of it.
    pub heads: usize,
    /// Context length T (also the number of learned positions).
    pub context: usize,
    /// Vocabulary size V, set from the data.
    pub vocab: usize,
    /// Residual step Δt.
    pub dt: f64,
    /// Tie the head `W_U` to the token embedding `wte` (GPT-2 does).
    #[serde(default)]
    pub tied_head: bool,
    /// Add a bias `b_U` to the logits (GPT-2 has none).
    #[serde(default = "default_true")]
    pub head_bias: bool,
    /// Apply `LN_emb` to the sum of token and position embeddings.
    #[serde(default)]
    pub embedding_ln: bool,
    /// Draw `W_o` and `W_2` from N(0, (0.02/sqrt(2L))²) instead of N(0, 0.02²).
    #[serde(default = "default_true")]
    pub scaled_residual_init: bool,
}

fn default_true() -> bool {
    true
}

impl ModelConfig {
    /// The standard preset: Pre-LN, 8 layers, width 64, 4 heads, context 64.
    pub fn standard(vocab: usize) -> Self {
        ModelConfig {
            placement: Placement::Pre,
            layers: 8,
            width: 64,
            heads: 4,
            context: 64,
            vocab,
            dt: 1.0,
            tied_head: false,
            head_bias: true,
            embedding_ln: false,
            scaled_residual_init: true,
        }
    }

    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }

    /// MLP hidden width, 4d.
    pub fn hidden(&self) -> usize {
        4 * self.width
    }

    /// Whether this is GPT-2's architecture, whose checkpoints use the
    /// Hugging Face GPT-2 tensor names alone.
    pub fn is_gpt2_architecture(&self) -> bool {
        self.placement == Placement::Pre
            && self.tied_head
            && !self.head_bias
            && !self.embedding_ln
            && self.dt == 1.0
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        use limits::*;
        check_range("layers", self.layers, 1, MAX_LAYERS)?;
        check_range("width", self.width, 1, MAX_WIDTH)?;
        check_range("heads", self.heads, 1, MAX_HEADS)?;
        if self.width % self.heads != 0 {
            return Err(ConfigError::new(
                "heads",
                self.heads,
                format!("a divisor of width {}", self.width),
            ));
        }
        check_range("context", self.context, 1, MAX_CONTEXT)?;
        check_range("vocab", self.vocab, 2, MAX_VOCAB)?;
        if !(self.dt.is_finite() && self.dt > 0.0 && self.dt <= MAX_DT) {
            return Err(ConfigError::new("dt", self.dt, format!("a number in (0, {MAX_DT}]")));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW with β1 0.9, β2 0.95, ε 1e-8 and decoupled weight decay.
    Adamw,
    /// Plain SGD with decoupled weight decay.
    Sgd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Linear warm-up, then the base learning rate.
    Constant,
    /// Linear warm-up, then a cosine decay to `min_lr_ratio` × lr at the last step.
    Cosine,
}

/// Optimisation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    pub schedule: Schedule,
    /// Fraction of the peak rate that the cosine schedule ends at.
    #[serde(default)]
    pub min_lr_ratio: f64,
    /// Warm-up length in steps (0 for none).
    pub warmup: usize,
    /// Decoupled weight decay on matrices and embeddings.
    pub weight_decay: f64,
    /// Also decay the LayerNorm gains γ (towards 0).
    #[serde(default)]
    pub decay_ln_gains: bool,
    /// Clip the global gradient norm to this value; `None` for no clipping.
    pub grad_clip: Option<f64>,
    /// Sequences per batch B.
    pub batch: usize,
    /// Number of optimiser steps.
    pub steps: usize,
    /// Measure every this many steps (and at step 0 and the last step).
    pub eval_every: usize,
    /// Number of fixed validation batches that the validation loss averages.
    pub eval_batches: usize,
    /// Seed of the one generator behind initialisation and batch sampling.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            optimizer: OptimizerKind::Adamw,
            lr: 3e-3,
            schedule: Schedule::Constant,
            min_lr_ratio: 0.0,
            warmup: 20,
            weight_decay: 0.0,
            decay_ln_gains: false,
            grad_clip: Some(1.0),
            batch: 16,
            steps: 300,
            eval_every: 50,
            eval_batches: 4,
            seed: 1,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        use limits::*;
        // The data-wise variance is a variance across the batch, so it needs
        // at least two sequences.
        check_range("batch", self.batch, 2, MAX_BATCH)?;
        check_range("steps", self.steps, 1, MAX_STEPS)?;
        check_range("eval-every", self.eval_every, 1, MAX_STEPS)?;
        check_range("eval-batches", self.eval_batches, 1, 64)?;
        check_range("warmup", self.warmup, 0, MAX_STEPS)?;
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= MAX_LR) {
            return Err(ConfigError::new("lr", self.lr, format!("a number in (0, {MAX_LR}]")));
        }
        if !(self.weight_decay.is_finite() && (0.0..=1.0).contains(&self.weight_decay)) {
            return Err(ConfigError::new("weight-decay", self.weight_decay, "a number in [0, 1]"));
        }
        if !(self.min_lr_ratio.is_finite() && (0.0..=1.0).contains(&self.min_lr_ratio)) {
            return Err(ConfigError::new("min-lr-ratio", self.min_lr_ratio, "a number in [0, 1]"));
        }
        if let Some(clip) = self.grad_clip {
            if !(clip.is_finite() && clip > 0.0) {
                return Err(ConfigError::new("grad-clip", clip, "a positive number"));
            }
        }
        Ok(())
    }
}

/// Source of the training text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DataConfig {
    /// The default natural-language corpus (Moby-Dick, fetched at set-up).
    MobyDick,
    /// A synthetic task generated in code from the training seed.
    Synthetic { task: crate::data::synthetic::Task },
    /// A UTF-8 text file chosen by the user.
    File { path: String },
}

impl DataConfig {
    /// Parse a `--data` value: a corpus name, a task name, or a file path.
    pub fn parse(text: &str) -> Result<DataConfig, ConfigError> {
        if text.is_empty() {
            return Err(ConfigError::new(
                "data",
                "\"\"",
                "moby-dick, a synthetic task (copy, reverse, sort, add) or a file path",
            ));
        }
        if text == "moby-dick" {
            return Ok(DataConfig::MobyDick);
        }
        if let Some(task) = crate::data::synthetic::Task::parse(text) {
            return Ok(DataConfig::Synthetic { task });
        }
        Ok(DataConfig::File { path: text.to_string() })
    }

    pub fn name(&self) -> String {
        match self {
            DataConfig::MobyDick => "moby-dick".to_string(),
            DataConfig::Synthetic { task } => task.name().to_string(),
            DataConfig::File { path } => path.clone(),
        }
    }
}

fn check_range(field: &'static str, value: usize, min: usize, max: usize) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(field, value, format!("an integer in [{min}, {max}]")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_not_divisible_by_heads() {
        let mut config = ModelConfig::standard(65);
        config.heads = 5;
        let error = config.validate().unwrap_err();
        assert_eq!(error.field, "heads");
        assert_eq!(error.value, "5");
        assert!(error.to_string().contains("divisor of width 64"), "{error}");
    }

    #[test]
    fn depth_zero_rejected() {
        let mut config = ModelConfig::standard(65);
        config.layers = 0;
        let error = config.validate().unwrap_err();
        assert_eq!(error.field, "layers");
        assert!(error.allowed.contains("[1, 64]"));
    }

    #[test]
    fn dt_must_be_positive_and_finite() {
        for dt in [0.0, -0.1, f64::NAN, f64::INFINITY, 11.0] {
            let mut config = ModelConfig::standard(65);
            config.dt = dt;
            let error = config.validate().unwrap_err();
            assert_eq!(error.field, "dt", "dt = {dt}");
        }
    }

    #[test]
    fn batch_of_one_rejected() {
        let config = TrainConfig { batch: 1, ..TrainConfig::default() };
        let error = config.validate().unwrap_err();
        assert_eq!(error.field, "batch");
    }

    #[test]
    fn bad_learning_rate_rejected() {
        for lr in [0.0, -1.0, f64::NAN, 100.0] {
            let config = TrainConfig { lr, ..TrainConfig::default() };
            assert_eq!(config.validate().unwrap_err().field, "lr");
        }
    }

    #[test]
    fn placement_parse() {
        assert_eq!(Placement::parse("Peri-LN").unwrap(), Placement::Peri);
        let error = Placement::parse("middle").unwrap_err();
        assert_eq!(error.field, "placement");
        assert_eq!(error.value, "middle");
    }

    #[test]
    fn defaults_are_valid() {
        ModelConfig::standard(65).validate().unwrap();
        TrainConfig::default().validate().unwrap();
    }
}
