//! The run file: a JSON record of one training run, written by
//! `lnlab train` and read by `lnlab plot` (schema in `docs/run-file.md`).

use crate::config::{DataConfig, ModelConfig, TrainConfig};
use crate::metrics::{BlockGradNorms, GrowthFit, LayerMetrics, NonFinite};
use serde::{Deserialize, Serialize};

pub const SCHEMA_NAME: &str = "lnlab-run";
pub const SCHEMA_VERSION: u32 = 1;
/// Largest run file the reader accepts.
pub const MAX_RUN_FILE_BYTES: usize = 256 << 20;

/// The batch every evaluation measures, so a run can be re-measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalBatch {
    pub batch: usize,
    pub context: usize,
    /// Input token ids, row-major [batch, context].
    pub tokens: Vec<u32>,
    /// Target token ids (the inputs shifted by one), [batch, context].
    pub targets: Vec<u32>,
}

/// Everything measured at one evaluation step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Optimiser updates taken before this measurement.
    pub step: usize,
    /// Learning rate of the most recent update (0 at step 0).
    #[serde(with = "crate::io::json_float")]
    pub lr: f64,
    /// Mean loss over the fixed training evaluation batches.
    #[serde(with = "crate::io::json_float")]
    pub train_loss: f64,
    /// Mean loss over the fixed validation batches.
    #[serde(with = "crate::io::json_float")]
    pub val_loss: f64,
    /// Block boundaries l = 0..L, measured on the evaluation batch.
    pub layers: Vec<LayerMetrics>,
    /// All 2L + 1 half-step states (`layer` is the half-step index).
    pub half_steps: Vec<LayerMetrics>,
    /// Per-block parameter-gradient norms.
    pub blocks: Vec<BlockGradNorms>,
    /// Exponential fit of the max token norm against depth (Pre-LN only).
    pub growth_fit: Option<GrowthFit>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFile {
    pub schema: String,
    pub schema_version: u32,
    /// Version of lnlab that wrote the file.
    pub lnlab_version: String,
    /// Compute backend of the run: `cpu` or the GPU adapter's description.
    pub backend: String,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub data: DataConfig,
    /// The tokenizer's characters in id order.
    pub vocab: String,
    /// Number of trainable parameters.
    pub parameters: usize,
    pub eval_batch: EvalBatch,
    /// Training-batch loss of every update, in order.
    #[serde(with = "float_list")]
    pub step_losses: Vec<f64>,
    pub evals: Vec<EvalRecord>,
    /// The first non-finite value, if the run diverged.
    pub non_finite: Option<NonFinite>,
}

/// A run file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    #[error("run file is {size} bytes, larger than the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("run file is not valid JSON for schema {SCHEMA_NAME}: {0}")]
    Json(#[from] serde_json::Error),
    #[error("file has schema \"{found}\", expected \"{SCHEMA_NAME}\"")]
    WrongSchema { found: String },
    #[error("run file has schema version {found}; this lnlab reads version {SCHEMA_VERSION}")]
    UnsupportedVersion { found: u32 },
    #[error("run file has no schema_version; this lnlab reads version {SCHEMA_VERSION}")]
    MissingVersion,
    #[error("run file is inconsistent: {0}")]
    Inconsistent(String),
}

impl RunFile {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("run records serialise without failure")
    }

    /// Halves the density of the evaluations until at most `max` remain
    /// (`max` ≥ 2), always keeping the first and the last, so a long run's
    /// record stays bounded while its charts keep their shape.
    pub fn thin_evals(&mut self, max: usize) {
        let max = max.max(2);
        while self.evals.len() > max {
            let last = self.evals.len() - 1;
            let mut index = 0;
            self.evals.retain(|_| {
                let keep = index == 0 || index == last || index % 2 == 0;
                index += 1;
                keep
            });
        }
    }

    /// Parse and check a run file's bytes.
    pub fn from_json(bytes: &[u8]) -> Result<RunFile, RunFileError> {
        if bytes.len() > MAX_RUN_FILE_BYTES {
            return Err(RunFileError::TooLarge { size: bytes.len(), max: MAX_RUN_FILE_BYTES });
        }
        // Check the header first so an old or foreign file gets a precise
        // message instead of a field error.
        #[derive(Deserialize)]
        struct Header {
            schema: Option<String>,
            schema_version: Option<u32>,
        }
        let header: Header = serde_json::from_slice(bytes)?;
        let schema = header.schema.unwrap_or_default();
        if schema != SCHEMA_NAME {
            return Err(RunFileError::WrongSchema { found: schema });
        }
        match header.schema_version {
            Some(SCHEMA_VERSION) => {}
            Some(found) => return Err(RunFileError::UnsupportedVersion { found }),
            None => return Err(RunFileError::MissingVersion),
        }
        let run: RunFile = serde_json::from_slice(bytes)?;
        run.check()?;
        Ok(run)
    }

    fn check(&self) -> Result<(), RunFileError> {
        self.model.validate().map_err(|e| RunFileError::Inconsistent(e.to_string()))?;
        let layers = self.model.layers + 1;
        for eval in &self.evals {
            if eval.layers.len() != layers || eval.half_steps.len() != 2 * self.model.layers + 1 || eval.blocks.len() != self.model.layers {
                return Err(RunFileError::Inconsistent(format!(
                    "evaluation at step {} has {} layers, {} half-steps and {} blocks for a {}-block model",
                    eval.step, eval.layers.len(), eval.half_steps.len(), eval.blocks.len(), self.model.layers,
                )));
            }
        }
        let batch = &self.eval_batch;
        // Both factors come from the file, so their product may overflow.
        if batch.batch.checked_mul(batch.context) != Some(batch.tokens.len()) {
            return Err(RunFileError::Inconsistent(format!(
                "evaluation batch has {} tokens, expected batch × context = {} × {}", batch.tokens.len(), batch.batch, batch.context,
            )));
        }
        if batch.targets.len() != batch.tokens.len() {
            return Err(RunFileError::Inconsistent(format!(
                "evaluation batch has {} targets for {} tokens; expected one target per token", batch.targets.len(), batch.tokens.len(),
            )));
        }
        Ok(())
    }
}

/// `Vec<f64>` with non-finite entries written as `null`.
mod float_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(values: &[f64], serializer: S) -> Result<S::Ok, S::Error> {
        let list: Vec<Option<f64>> = values.iter().map(|v| v.is_finite().then_some(*v)).collect();
        list.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f64>, D::Error> {
        let list = Vec::<Option<f64>>::deserialize(deserializer)?;
        Ok(list.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    }
}
