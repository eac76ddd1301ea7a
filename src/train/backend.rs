//! The interface between the training loop and the hardware that runs a
//! step, with the CPU reference as its first implementation.
//!
//! Steps are queued without waiting for results, so a GPU can run many
//! steps back to back. Losses and non-finite reports come back only when
//! the loop requests them: at evaluations, and after every step when the
//! backend reports cheaply.

use super::optimizer::{clip_global_norm, Optimizer};
use super::TrainError;
use crate::config::TrainConfig;
use crate::data::Batch;
use crate::metrics::{measure, Measurement, NonFinite};
use crate::model::scratch::recycle;
use crate::model::Model;

/// Results of the steps queued since the last report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepReport {
    /// Training-batch loss of each step, in order.
    pub losses: Vec<f64>,
    /// The first non-finite gradient among them. From that step on the
    /// backend applies no update, so the parameters stay at their last
    /// finite values.
    pub non_finite: Option<NonFinite>,
}

/// Losses on the fixed evaluation batches and the per-layer measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub train_loss: f64,
    pub val_loss: f64,
    pub measurement: Measurement,
}

/// Everything a backend needs to continue a run exactly: the parameters,
/// the optimiser's moments (empty for SGD) and its update count.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    pub params: Vec<f32>,
    pub first_moment: Vec<f32>,
    pub second_moment: Vec<f32>,
    pub updates: u64,
}

/// Something that trains and measures the model of one run.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// Human-readable name, recorded in run files: `cpu` or the adapter.
    fn name(&self) -> String;

    /// Return true when [`Backend::finish_steps`] costs nothing, so the loop
    /// may call it after every step and stop at the first non-finite value.
    fn reports_cheaply(&self) -> bool;

    /// Largest number of steps that may be queued between reports.
    fn queue_capacity(&self) -> usize;

    /// Queue one update on `batch` with learning rate `lr`; `step` is the
    /// 0-based index of the update in the run.
    fn train_step(&mut self, batch: &Batch, step: usize, lr: f64) -> Result<(), TrainError>;

    /// Wait for the queued steps and report them. `pending` holds their
    /// batches in order, used to locate a non-finite gradient.
    async fn finish_steps(&mut self, pending: &[Batch]) -> Result<StepReport, TrainError>;

    /// Mean losses over `train_batches` and `val_batches`, and the
    /// measurement on `val_batches[0]`.
    async fn evaluate(&mut self, train_batches: &[Batch], val_batches: &[Batch]) -> Result<Evaluation, TrainError>;

    /// Read the current parameters, in layout order.
    async fn params(&mut self) -> Result<Vec<f32>, TrainError>;

    /// Copies the training state out. Call it with no steps queued.
    async fn save_state(&mut self) -> Result<TrainState, TrainError>;

    /// Puts a state from [`Backend::save_state`] back, for the same model
    /// and optimiser, and clears any non-finite report.
    fn load_state(&mut self, state: &TrainState) -> Result<(), TrainError>;
}

/// The CPU reference in f32.
pub struct CpuBackend {
    pub model: Model<f32>,
    optimizer: Optimizer,
    grad_clip: Option<f64>,
    weight_decay: f64,
    pending_losses: Vec<f64>,
    non_finite: Option<NonFinite>,
}

impl CpuBackend {
    pub fn new(model: Model<f32>, train: &TrainConfig) -> CpuBackend {
        let optimizer = Optimizer::new(train, &model.layout);
        CpuBackend { model, optimizer, grad_clip: train.grad_clip, weight_decay: train.weight_decay, pending_losses: Vec::new(), non_finite: None }
    }

    /// Change the weight decay of the following updates.
    pub fn set_weight_decay(&mut self, weight_decay: f64) {
        self.weight_decay = weight_decay;
    }

    /// Locate the first tensor whose gradient contains a non-finite value.
    fn non_finite_gradient(&self, grads: &[f32], step: usize) -> Option<NonFinite> {
        self.model.layout.tensors.iter().find_map(|spec| {
            let bad = grads[spec.range()].iter().find(|g| !g.is_finite())?;
            Some(NonFinite::new(step, spec.block, format!("grad:{}", spec.name), *bad as f64))
        })
    }

    /// Record the training loss of update `step` and apply its gradient,
    /// unless the gradient (or an earlier one) is not finite.
    pub fn apply_gradient(&mut self, loss: f64, mut grads: Vec<f32>, step: usize, lr: f64) {
        self.pending_losses.push(loss);
        if self.non_finite.is_some() {
            return;
        }
        if let Some(non_finite) = self.non_finite_gradient(&grads, step) {
            self.non_finite = Some(non_finite);
            return;
        }
        if let Some(max_norm) = self.grad_clip {
            clip_global_norm(&mut grads, max_norm);
        }
        self.optimizer.update(&mut self.model.params, &grads, lr, self.weight_decay);
        recycle(vec![grads]);
    }

    fn mean_loss(&self, batches: &[Batch]) -> Result<f64, TrainError> {
        let mut total = 0.0;
        for b in batches {
            let pass = self.model.forward(&b.inputs, &b.targets, b.batch, None)?;
            total += pass.loss as f64;
            recycle(pass.into_buffers());
        }
        Ok(total / batches.len() as f64)
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn reports_cheaply(&self) -> bool {
        true
    }

    fn queue_capacity(&self) -> usize {
        usize::MAX
    }

    fn train_step(&mut self, batch: &Batch, step: usize, lr: f64) -> Result<(), TrainError> {
        let pass = self.model.forward(&batch.inputs, &batch.targets, batch.batch, None)?;
        if self.non_finite.is_some() {
            self.pending_losses.push(pass.loss as f64);
            return Ok(());
        }
        let gradients = self.model.backward(&pass, None);
        recycle(gradients.states);
        let loss = pass.loss as f64;
        recycle(pass.into_buffers());
        self.apply_gradient(loss, gradients.params, step, lr);
        Ok(())
    }

    async fn finish_steps(&mut self, _pending: &[Batch]) -> Result<StepReport, TrainError> {
        Ok(StepReport { losses: std::mem::take(&mut self.pending_losses), non_finite: self.non_finite.clone() })
    }

    async fn evaluate(&mut self, train_batches: &[Batch], val_batches: &[Batch]) -> Result<Evaluation, TrainError> {
        let train_loss = self.mean_loss(train_batches)?;
        let val_loss = self.mean_loss(val_batches)?;
        let eval = &val_batches[0];
        let pass = self.model.forward(&eval.inputs, &eval.targets, eval.batch, None)?;
        let grads = self.model.backward(&pass, None);
        Ok(Evaluation { train_loss, val_loss, measurement: measure(&self.model, &pass, &grads) })
    }

    async fn params(&mut self) -> Result<Vec<f32>, TrainError> {
        Ok(self.model.params.clone())
    }

    async fn save_state(&mut self) -> Result<TrainState, TrainError> {
        let (first_moment, second_moment) = self.optimizer.moments();
        Ok(TrainState {
            params: self.model.params.clone(),
            first_moment: first_moment.to_vec(),
            second_moment: second_moment.to_vec(),
            updates: self.optimizer.updates,
        })
    }

    fn load_state(&mut self, state: &TrainState) -> Result<(), TrainError> {
        check_state_sizes(state, self.model.params.len(), self.optimizer.moments().0.len())?;
        self.model.params.copy_from_slice(&state.params);
        self.optimizer.restore(&state.first_moment, &state.second_moment, state.updates);
        self.pending_losses.clear();
        self.non_finite = None;
        Ok(())
    }
}

/// Checks that a saved state fits a model of `params` parameters and an
/// optimiser with `moments` entries per moment.
pub fn check_state_sizes(state: &TrainState, params: usize, moments: usize) -> Result<(), TrainError> {
    if state.params.len() != params || state.first_moment.len() != moments || state.second_moment.len() != moments {
        return Err(TrainError::StateMismatch {
            found: (state.params.len(), state.first_moment.len()),
            expected: (params, moments),
        });
    }
    Ok(())
}

/// Run a future that completes without waiting, as every CPU backend
/// future does. Panics if it would wait.
pub fn complete_now<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("a CPU backend future waited; only GPU backends may wait"),
    }
}
