//! The training loop: sample, queue a step on the backend, and measure at
//! every evaluation step. It never depends on the hardware behind the
//! backend.

use super::backend::{complete_now, Backend, CpuBackend};
use super::schedule::learning_rate;
use crate::config::{ConfigError, DataConfig, ModelConfig, TrainConfig};
use crate::data::{Batch, DataError, Dataset, Split};
use crate::io::run_file::{EvalBatch, EvalRecord, RunFile, SCHEMA_NAME, SCHEMA_VERSION};
use crate::metrics::NonFinite;
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
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
    #[error("a saved training state with {} parameters and {} moment entries does not fit this run's {} and {}", found.0, found.1, expected.0, expected.1)]
    StateMismatch { found: (usize, usize), expected: (usize, usize) },
}

/// A point a run can return to: the training state and the loop's own
/// position (step, batch generator, length of the run record).
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Updates taken when the snapshot was made.
    pub step: usize,
    last_lr: f64,
    rng: LabRng,
    /// Step of the last evaluation recorded, found by step so that thinning
    /// older evaluations does not move it.
    last_eval_step: Option<usize>,
    step_losses: usize,
    pub state: super::backend::TrainState,
}

/// Result of one call to [`Trainer::step`].
#[derive(Clone, Debug, PartialEq)]
pub enum StepOutcome {
    /// An update was queued, and `evaluated` is true when a record was added.
    Trained { step: usize, evaluated: bool },
    /// Training stopped at a non-finite value; the run file records it.
    Diverged(NonFinite),
    /// Every step has been taken.
    Finished,
}

/// Everything a run needs before its backend exists: the initial model and
/// the generator positioned after the evaluation batches.
pub struct RunStart {
    pub model: Model<f32>,
    pub train_config: TrainConfig,
    pub data_config: DataConfig,
    pub dataset: Dataset,
    rng: LabRng,
    val_batches: Vec<Batch>,
    train_batches: Vec<Batch>,
}

impl RunStart {
    /// Validate the settings, initialise the model from the seed (or take
    /// `start`, whose configuration must match) and draw the fixed
    /// evaluation batches.
    pub fn new(
        model_config: ModelConfig, train_config: TrainConfig, data_config: DataConfig, dataset: Dataset, start: Option<Model<f32>>,
    ) -> Result<RunStart, TrainError> {
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
        Ok(RunStart { model, train_config, data_config, dataset, rng, val_batches, train_batches })
    }

    /// Start training on `backend`, which must hold `self.model`.
    pub fn with_backend<B: Backend>(self, backend: B) -> Trainer<B> {
        let first = &self.val_batches[0];
        let run = RunFile {
            schema: SCHEMA_NAME.to_string(),
            schema_version: SCHEMA_VERSION,
            lnlab_version: env!("CARGO_PKG_VERSION").to_string(),
            backend: backend.name(),
            model: self.model.config.clone(),
            train: self.train_config.clone(),
            data: self.data_config,
            vocab: self.dataset.vocab.chars().iter().collect(),
            parameters: self.model.layout.total,
            eval_batch: EvalBatch {
                batch: first.batch,
                context: first.context,
                tokens: first.inputs.clone(),
                targets: first.targets.clone(),
            },
            step_losses: Vec::new(),
            evals: Vec::new(),
            non_finite: None,
        };
        Trainer {
            backend,
            model_config: self.model.config,
            train_config: self.train_config,
            dataset: self.dataset,
            rng: self.rng,
            val_batches: self.val_batches,
            train_batches: self.train_batches,
            pending: Vec::new(),
            step: 0,
            last_lr: 0.0,
            run,
        }
    }
}

pub struct Trainer<B: Backend = CpuBackend> {
    pub backend: B,
    pub model_config: ModelConfig,
    pub train_config: TrainConfig,
    dataset: Dataset,
    rng: LabRng,
    /// Fixed batches for the reported losses; `val_batches[0]` is also the
    /// batch the per-layer metrics are measured on.
    val_batches: Vec<Batch>,
    train_batches: Vec<Batch>,
    /// Batches of the steps queued since the backend last reported.
    pending: Vec<Batch>,
    /// Updates taken so far.
    pub step: usize,
    last_lr: f64,
    pub run: RunFile,
}

impl Trainer<CpuBackend> {
    /// Start a run on the CPU reference.
    pub fn new(
        model_config: ModelConfig, train_config: TrainConfig, data_config: DataConfig, dataset: Dataset, start: Option<Model<f32>>,
    ) -> Result<Trainer<CpuBackend>, TrainError> {
        let start = RunStart::new(model_config, train_config, data_config, dataset, start)?;
        let backend = CpuBackend::new(start.model.clone(), &start.train_config);
        Ok(start.with_backend(backend))
    }

    /// Run [`Trainer::step_async`] to completion; CPU backend futures never wait.
    pub fn step(&mut self) -> Result<StepOutcome, TrainError> {
        complete_now(self.step_async())
    }

    /// Run [`Trainer::evaluate_async`] to completion; CPU backend futures never wait.
    pub fn evaluate(&mut self) -> Result<Option<NonFinite>, TrainError> {
        complete_now(self.evaluate_async())
    }

    pub fn model(&self) -> &Model<f32> {
        &self.backend.model
    }
}

impl<B: Backend> Trainer<B> {
    pub fn is_finished(&self) -> bool {
        self.step >= self.train_config.steps || self.run.non_finite.is_some()
    }

    /// Queue one update and measure when the step is due for evaluation.
    /// The first call also records the evaluation at step 0.
    pub async fn step_async(&mut self) -> Result<StepOutcome, TrainError> {
        if let Some(non_finite) = &self.run.non_finite {
            return Ok(StepOutcome::Diverged(non_finite.clone()));
        }
        if self.step >= self.train_config.steps {
            return Ok(StepOutcome::Finished);
        }
        if self.run.evals.is_empty() {
            if let Some(non_finite) = self.evaluate_async().await? {
                return Ok(StepOutcome::Diverged(non_finite));
            }
        }

        let batch = self.dataset.sample_batch(Split::Train, self.train_config.batch, self.model_config.context, &mut self.rng);
        let lr = learning_rate(&self.train_config, self.step);
        self.backend.train_step(&batch, self.step, lr)?;
        self.pending.push(batch);
        self.last_lr = lr;
        self.step += 1;

        let due = self.step % self.train_config.eval_every == 0 || self.step == self.train_config.steps;
        let queue_full = self.pending.len() >= self.backend.queue_capacity();
        if due || queue_full || self.backend.reports_cheaply() {
            if let Some(non_finite) = self.collect_steps().await? {
                return Ok(StepOutcome::Diverged(self.locate(non_finite).await?));
            }
        }
        if due {
            if let Some(non_finite) = self.evaluate_async().await? {
                return Ok(StepOutcome::Diverged(non_finite));
            }
        }
        Ok(StepOutcome::Trained { step: self.step, evaluated: due })
    }

    /// Take the backend's report of the queued steps into the run.
    async fn collect_steps(&mut self) -> Result<Option<NonFinite>, TrainError> {
        let first_step = self.run.step_losses.len();
        let report = self.backend.finish_steps(&self.pending).await?;
        self.pending.clear();
        let bad_loss = report.losses.iter().position(|l| !l.is_finite()).map(|i| (first_step + i, report.losses[i]));
        self.run.step_losses.extend(report.losses);
        let non_finite = match (bad_loss, report.non_finite) {
            // A non-finite loss comes with non-finite gradients; name the loss.
            (Some((step, loss)), _) => Some(NonFinite::new(step, None, "train_loss", loss)),
            (None, gradient) => gradient,
        };
        if let Some(non_finite) = &non_finite {
            self.run.non_finite = Some(non_finite.clone());
        }
        Ok(non_finite)
    }

    /// Places a divergence found in a loss or the gradient norm in a layer,
    /// by measuring the model that produced it (its update was skipped).
    /// The measurement joins the run record. When every layer is finite the
    /// original report is kept, because the overflow happened at the output.
    async fn locate(&mut self, found: NonFinite) -> Result<NonFinite, TrainError> {
        if found.layer.is_some() {
            return Ok(found);
        }
        let measured = self.evaluate_async().await?.filter(|m| m.layer.is_some());
        let located = measured.map(|m| NonFinite { step: found.step, ..m }).unwrap_or(found);
        self.run.non_finite = Some(located.clone());
        Ok(located)
    }

    /// Measure the current model, append the record to the run, and return
    /// the first non-finite value if there is one.
    pub async fn evaluate_async(&mut self) -> Result<Option<NonFinite>, TrainError> {
        let evaluation = self.backend.evaluate(&self.train_batches, &self.val_batches).await?;
        let (train_loss, val_loss) = (evaluation.train_loss, evaluation.val_loss);
        let measurement = evaluation.measurement;
        // A non-finite state or gradient locates the layer where it started,
        // which is more useful than the loss it spoils.
        let non_finite = measurement.first_non_finite(self.step).or_else(|| {
            if !train_loss.is_finite() {
                Some(NonFinite::new(self.step, None, "train_loss", train_loss))
            } else if !val_loss.is_finite() {
                Some(NonFinite::new(self.step, None, "val_loss", val_loss))
            } else {
                None
            }
        });
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

    /// Saves the point the run has reached, after collecting any queued
    /// steps. The run should be finite there: take snapshots after an
    /// evaluation that found no non-finite value.
    pub async fn snapshot(&mut self) -> Result<Snapshot, TrainError> {
        if !self.pending.is_empty() {
            self.collect_steps().await?;
        }
        Ok(Snapshot {
            step: self.step,
            last_lr: self.last_lr,
            rng: self.rng.clone(),
            last_eval_step: self.run.evals.last().map(|e| e.step),
            step_losses: self.run.step_losses.len(),
            state: self.backend.save_state().await?,
        })
    }

    /// Returns the run to `snapshot`: the model, optimiser, step and batch
    /// sequence, with the run record cut back to what it held then. The
    /// record of a divergence after the snapshot is dropped.
    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<(), TrainError> {
        self.backend.load_state(&snapshot.state)?;
        self.step = snapshot.step;
        self.last_lr = snapshot.last_lr;
        self.rng = snapshot.rng.clone();
        self.pending.clear();
        self.run.evals.retain(|e| snapshot.last_eval_step.is_some_and(|last| e.step <= last));
        self.run.step_losses.truncate(snapshot.step_losses);
        self.run.non_finite = None;
        Ok(())
    }

    /// Read the current model back from the backend.
    pub async fn model_async(&mut self) -> Result<Model<f32>, TrainError> {
        let params = self.backend.params().await?;
        Ok(Model::from_params(&self.model_config, params))
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }
}
