//! The training loop on the CPU reference: sample, forward, backward,
//! clip, update, and measure at every evaluation step.

use super::optimizer::{clip_global_norm, Optimizer};
use super::schedule::learning_rate;
use crate::config::{ConfigError, DataConfig, ModelConfig, TrainConfig};
use crate::data::{Batch, DataError, Dataset, Split};
use crate::io::run_file::{EvalBatch, EvalRecord, RunFile, SCHEMA_NAME, SCHEMA_VERSION};
use crate::metrics::{measure, NonFinite};
use crate::model::{BatchError, Model};
use crate::rng::{seeded, LabRng};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("the data has {data} distinct characters but the model's vocabulary is {model}")]
    VocabMismatch { data: usize, model: usize },
}

/// Result of one call to [`Trainer::step`].
#[derive(Clone, Debug, PartialEq)]
pub enum StepOutcome {
    /// An update was applied, and `evaluated` is true when a record was added.
    Trained { step: usize, loss: f64, evaluated: bool },
    /// Training stopped at a non-finite value; the run file records it.
    Diverged(NonFinite),
    /// Every step has been taken.
    Finished,
}

pub struct Trainer {
    pub model: Model<f32>,
    pub train_config: TrainConfig,
    dataset: Dataset,
    optimizer: Optimizer,
    rng: LabRng,
    /// Fixed batches for the reported losses; `val_batches[0]` is also the
    /// batch the per-layer metrics are measured on.
    val_batches: Vec<Batch>,
    train_batches: Vec<Batch>,
    /// Updates taken so far.
    pub step: usize,
    last_lr: f64,
    pub run: RunFile,
}

impl Trainer {
    /// Validate the settings, initialise the model from the seed (or take
    /// `start`, whose configuration must match) and draw the fixed
    /// evaluation batches.
    pub fn new(
        model_config: ModelConfig, train_config: TrainConfig, data_config: DataConfig, dataset: Dataset, start: Option<Model<f32>>,
    ) -> Result<Trainer, TrainError> {
        model_config.validate()?;
        train_config.validate()?;
        if dataset.vocab.len() != model_config.vocab {
            return Err(TrainError::VocabMismatch { data: dataset.vocab.len(), model: model_config.vocab });
        }
        dataset.check_context(model_config.context)?;

        // One generator: initialisation first, then the evaluation batches,
        // then the training batches. Loading a checkpoint still draws the
        // initial weights, so the batch sequence does not depend on it.
        let mut rng = seeded(train_config.seed);
        let mut model = Model::<f32>::init(&model_config, &mut rng);
        if let Some(start) = start {
            if start.config != model_config {
                return Err(TrainError::Config(ConfigError::new(
                    "load",
                    "checkpoint",
                    format!("a checkpoint with the same model settings ({:?})", start.config),
                )));
            }
            model = start;
        }
        let (batch, context) = (train_config.batch, model_config.context);
        let val_batches: Vec<Batch> =
            (0..train_config.eval_batches).map(|_| dataset.sample_batch(Split::Validation, batch, context, &mut rng)).collect();
        let train_batches: Vec<Batch> =
            (0..train_config.eval_batches).map(|_| dataset.sample_batch(Split::Train, batch, context, &mut rng)).collect();

        let first = &val_batches[0];
        let run = RunFile {
            schema: SCHEMA_NAME.to_string(),
            schema_version: SCHEMA_VERSION,
            lnlab_version: env!("CARGO_PKG_VERSION").to_string(),
            backend: "cpu".to_string(),
            model: model_config,
            train: train_config.clone(),
            data: data_config,
            vocab: dataset.vocab.chars().iter().collect(),
            parameters: model.layout.total,
            eval_batch: EvalBatch { batch, context, tokens: first.inputs.clone(), targets: first.targets.clone() },
            step_losses: Vec::new(),
            evals: Vec::new(),
            non_finite: None,
        };
        let optimizer = Optimizer::new(&train_config, &model.layout);
        Ok(Trainer { model, train_config, dataset, optimizer, rng, val_batches, train_batches, step: 0, last_lr: 0.0, run })
    }

    pub fn is_finished(&self) -> bool {
        self.step >= self.train_config.steps || self.run.non_finite.is_some()
    }

    /// Take one update; measure when the step is due for evaluation. The
    /// first call also records the evaluation at step 0.
    pub fn step(&mut self) -> Result<StepOutcome, TrainError> {
        if let Some(non_finite) = &self.run.non_finite {
            return Ok(StepOutcome::Diverged(non_finite.clone()));
        }
        if self.step >= self.train_config.steps {
            return Ok(StepOutcome::Finished);
        }
        if self.run.evals.is_empty() {
            if let Some(non_finite) = self.evaluate()? {
                return Ok(StepOutcome::Diverged(non_finite));
            }
        }

        let batch = self.dataset.sample_batch(Split::Train, self.train_config.batch, self.model.config.context, &mut self.rng);
        let pass = self.model.forward(&batch.inputs, &batch.targets, batch.batch, None)?;
        let loss = pass.loss as f64;
        self.run.step_losses.push(loss);
        if !loss.is_finite() {
            return Ok(self.diverge(NonFinite::new(self.step, None, "train_loss", loss)));
        }
        let mut grads = self.model.backward(&pass, None).params;
        if let Some(non_finite) = self.non_finite_gradient(&grads) {
            return Ok(self.diverge(non_finite));
        }
        if let Some(max_norm) = self.train_config.grad_clip {
            clip_global_norm(&mut grads, max_norm);
        }
        let lr = learning_rate(&self.train_config, self.step);
        self.optimizer.update(&mut self.model.params, &grads, lr, self.train_config.weight_decay);
        self.last_lr = lr;
        self.step += 1;

        let due = self.step % self.train_config.eval_every == 0 || self.step == self.train_config.steps;
        if due {
            if let Some(non_finite) = self.evaluate()? {
                return Ok(StepOutcome::Diverged(non_finite));
            }
        }
        Ok(StepOutcome::Trained { step: self.step, loss, evaluated: due })
    }

    fn diverge(&mut self, non_finite: NonFinite) -> StepOutcome {
        self.run.non_finite = Some(non_finite.clone());
        StepOutcome::Diverged(non_finite)
    }

    /// Locate the first tensor whose gradient contains a non-finite value.
    fn non_finite_gradient(&self, grads: &[f32]) -> Option<NonFinite> {
        self.model.layout.tensors.iter().find_map(|spec| {
            let bad = grads[spec.range()].iter().find(|g| !g.is_finite())?;
            Some(NonFinite::new(self.step, spec.block, format!("grad:{}", spec.name), *bad as f64))
        })
    }

    /// Measure the current model, append the record to the run, and return
    /// the first non-finite value if there is one.
    pub fn evaluate(&mut self) -> Result<Option<NonFinite>, TrainError> {
        let mean_loss = |model: &Model<f32>, batches: &[Batch]| -> Result<f64, TrainError> {
            let mut total = 0.0;
            for b in batches {
                total += model.forward(&b.inputs, &b.targets, b.batch, None)?.loss as f64;
            }
            Ok(total / batches.len() as f64)
        };
        let train_loss = mean_loss(&self.model, &self.train_batches)?;
        let val_loss = mean_loss(&self.model, &self.val_batches)?;

        let eval = &self.val_batches[0];
        let pass = self.model.forward(&eval.inputs, &eval.targets, eval.batch, None)?;
        let grads = self.model.backward(&pass, None);
        let measurement = measure(&self.model, &pass, &grads);

        let non_finite = if !train_loss.is_finite() {
            Some(NonFinite::new(self.step, None, "train_loss", train_loss))
        } else if !val_loss.is_finite() {
            Some(NonFinite::new(self.step, None, "val_loss", val_loss))
        } else {
            measurement.first_non_finite(self.step)
        };
        self.run.evals.push(EvalRecord {
            step: self.step,
            lr: self.last_lr,
            train_loss,
            val_loss,
            layers: measurement.layers,
            half_steps: measurement.half_steps,
            blocks: measurement.blocks,
            growth_fit: measurement.growth_fit,
        });
        if let Some(non_finite) = &non_finite {
            self.run.non_finite = Some(non_finite.clone());
        }
        Ok(non_finite)
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }
}
