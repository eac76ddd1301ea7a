//! The GPU backend: the training loop's [`Backend`] on a WebGPU device.
//!
//! A step is one command encoder and one submit: clear the gradients, run
//! forward, backward and the optimiser in one compute pass, and copy the
//! step's loss into a small buffer. Nothing is read back inside a step; the
//! losses, the optimiser's non-finite record and the statistics are read
//! at evaluations.

use super::context::{BufferNeeds, GpuContext, GpuError};
use super::kernels::{Kernels, STATS_PER_STATE};
use super::model::{largest_buffer_bytes, GpuModel, NONE_STEP};
use super::self_test::self_test;
use crate::config::{ModelConfig, OptimizerKind, TrainConfig};
use crate::data::Batch;
use crate::metrics::bounds::{FinalGradSummary, MatrixNorms, WeightNorms};
use crate::metrics::measure::assemble;
use crate::metrics::{LayerMetrics, NonFinite};
use crate::model::Model;
use crate::train::backend::{check_state_sizes, Backend, Evaluation, StepReport, TrainState};
use crate::train::TrainError;

/// Most steps queued before the loop collects their losses, so the GPU
/// never runs far ahead of what the page shows.
const MAX_QUEUED_STEPS: usize = 64;

pub struct GpuBackend {
    pub ctx: GpuContext,
    pub model: GpuModel,
    train: TrainConfig,
    /// Loss of each queued step, [capacity].
    step_losses: wgpu::Buffer,
    capacity: usize,
    /// Steps queued since the last report.
    queued: usize,
    /// Index of the first queued step in the run.
    first_queued_step: usize,
    /// Updates queued so far in the run, the count behind Adam's bias correction.
    steps_taken: usize,
    eval_losses: wgpu::Buffer,
}

/// The largest configuration like `config` whose biggest buffer fits in
/// `available` bytes, in words.
fn largest_fitting(config: &ModelConfig, batch: usize, available: u64) -> String {
    let mut b = batch;
    while b >= 2 {
        if largest_buffer_bytes(config, b) <= available {
            return format!("batch {b} with the same model");
        }
        b /= 2;
    }
    let mut smaller = config.clone();
    while smaller.context > 1 {
        smaller.context /= 2;
        if largest_buffer_bytes(&smaller, 2) <= available {
            return format!("batch 2 with context {}", smaller.context);
        }
    }
    "none with these layers and width".to_string()
}

impl GpuBackend {
    /// Open a device sized for `model` at the training batch size, check it
    /// with the self-test, and upload the model.
    pub async fn new(model: &Model<f32>, train: &TrainConfig) -> Result<GpuBackend, GpuError> {
        let config = model.config.clone();
        let batch = train.batch;
        let needs = BufferNeeds { largest_buffer: largest_buffer_bytes(&config, batch) };
        let ctx = GpuContext::new(needs, |available| largest_fitting(&config, batch, available)).await?;
        let kernels = Kernels::new(&ctx);
        self_test(&ctx, &kernels).await?;
        Ok(GpuBackend::with_context(ctx, kernels, model, train))
    }

    /// Upload `model` to an open device whose kernels are compiled.
    pub fn with_context(ctx: GpuContext, kernels: Kernels, model: &Model<f32>, train: &TrainConfig) -> GpuBackend {
        let gpu_model = GpuModel::new(&ctx, &kernels, model, train, train.batch);
        let capacity = train.eval_every.clamp(1, MAX_QUEUED_STEPS);
        let step_losses = ctx.zeros("step losses", capacity);
        let eval_losses = ctx.zeros("evaluation losses", 2 * train.eval_batches);
        GpuBackend {
            ctx, model: gpu_model, train: train.clone(), step_losses, capacity, queued: 0, first_queued_step: 0, steps_taken: 0, eval_losses,
        }
    }

    /// Use `train`'s learning-rate and decay settings for the following
    /// updates. The batch size and evaluation batches stay as built.
    pub fn set_schedule(&mut self, train: &TrainConfig) {
        self.train.lr = train.lr;
        self.train.warmup = train.warmup;
        self.train.weight_decay = train.weight_decay;
        self.train.steps = train.steps;
    }

    fn write_batch(&self, batch: &Batch) {
        self.ctx.queue.write_buffer(&self.model.tokens, 0, bytemuck::cast_slice(&batch.inputs));
        self.ctx.queue.write_buffer(&self.model.targets, 0, bytemuck::cast_slice(&batch.targets));
    }

    fn check_batch(&self, batch: &Batch) -> Result<(), TrainError> {
        if batch.batch != self.model.batch || batch.context != self.model.context {
            return Err(TrainError::Gpu(GpuError::Device(format!(
                "batch of {} × {} does not match the {} × {} the GPU plans were built for",
                batch.batch, batch.context, self.model.batch, self.model.context,
            ))));
        }
        Ok(())
    }

    /// Forward and backward on `batch`, then the statistics, in one submit.
    fn submit_measurement(&self, batch: &Batch) {
        self.write_batch(batch);
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("measure") });
        encoder.clear_buffer(&self.model.grads, 0, None);
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("measure"), timestamp_writes: None });
            self.model.forward.encode(&mut pass);
            self.model.backward.encode(&mut pass);
            self.model.measure.encode(&mut pass);
        }
        self.ctx.queue.submit([encoder.finish()]);
    }

    async fn read_norms(&self, buffer: &wgpu::Buffer, jobs: usize) -> Result<Vec<MatrixNorms>, GpuError> {
        let values = self.ctx.read_f32(buffer, 3 * jobs).await?;
        Ok(values
            .chunks_exact(3)
            .map(|v| MatrixNorms { frobenius: v[0] as f64, max_row_sum: v[1] as f64, max_column_sum: v[2] as f64 })
            .collect())
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> String {
        self.ctx.adapter.to_string()
    }

    fn reports_cheaply(&self) -> bool {
        false
    }

    fn queue_capacity(&self) -> usize {
        self.capacity
    }

    fn train_step(&mut self, batch: &Batch, step: usize, lr: f64) -> Result<(), TrainError> {
        self.check_batch(batch)?;
        if self.queued == self.capacity {
            return Err(TrainError::Gpu(GpuError::Device(format!("more than {} steps queued without a report", self.capacity))));
        }
        if self.queued == 0 {
            self.first_queued_step = step;
        }
        self.write_batch(batch);
        let settings = self.model.step_params(&self.train, step, lr);
        self.ctx.queue.write_buffer(&self.model.step_uniform, 0, bytemuck::bytes_of(&settings));

        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("training step") });
        encoder.clear_buffer(&self.model.grads, 0, None);
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("training step"), timestamp_writes: None });
            self.model.forward.encode(&mut pass);
            self.model.backward.encode(&mut pass);
            self.model.optimizer.encode(&mut pass);
        }
        encoder.copy_buffer_to_buffer(&self.model.loss, 0, &self.step_losses, (self.queued * 4) as u64, 4);
        self.ctx.queue.submit([encoder.finish()]);
        self.queued += 1;
        self.steps_taken = step + 1;
        Ok(())
    }

    async fn finish_steps(&mut self, pending: &[Batch]) -> Result<StepReport, TrainError> {
        let losses: Vec<f64> = self.ctx.read_f32(&self.step_losses, self.queued).await?.into_iter().map(f64::from).collect();
        let state = self.ctx.read_f32(&self.model.optimizer_state, 4).await?;
        self.queued = 0;
        let bad_step = state[3].to_bits();
        if bad_step == u32::MAX {
            return Ok(StepReport { losses, non_finite: None });
        }

        // Every update from the bad step on was skipped, so the parameters
        // are those the bad step saw: rerun its batch to find the tensor.
        let bad_step = bad_step as usize;
        let mut non_finite = NonFinite::new(bad_step, None, "gradient norm", f64::NAN);
        if let Some(batch) = bad_step.checked_sub(self.first_queued_step).and_then(|i| pending.get(i)) {
            self.submit_measurement(batch);
            let norms = self.read_norms(&self.model.grad_norms, self.model.layout.tensors.len()).await?;
            if let Some((spec, norm)) = self.model.layout.tensors.iter().zip(&norms).find(|(_, n)| !n.frobenius.is_finite()) {
                non_finite = NonFinite::new(bad_step, spec.block, format!("grad:{}", spec.name), norm.frobenius);
            }
        }
        Ok(StepReport { losses, non_finite: Some(non_finite) })
    }

    async fn evaluate(&mut self, train_batches: &[Batch], val_batches: &[Batch]) -> Result<Evaluation, TrainError> {
        for (j, batch) in train_batches.iter().chain(val_batches).enumerate() {
            self.check_batch(batch)?;
            self.write_batch(batch);
            let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("evaluation loss") });
            self.model.forward.encode_pass(&mut encoder, "evaluation loss");
            encoder.copy_buffer_to_buffer(&self.model.loss, 0, &self.eval_losses, (j * 4) as u64, 4);
            self.ctx.queue.submit([encoder.finish()]);
        }
        self.submit_measurement(&val_batches[0]);

        let losses = self.ctx.read_f32(&self.eval_losses, train_batches.len() + val_batches.len()).await?;
        let mean = |values: &[f32]| values.iter().map(|&v| v as f64).sum::<f64>() / values.len() as f64;
        let train_loss = mean(&losses[..train_batches.len()]);
        let val_loss = mean(&losses[train_batches.len()..]);

        let states = self.model.states.len();
        let stats = self.ctx.read_f32(&self.model.stats, STATS_PER_STATE * states + 2).await?;
        let half_steps: Vec<LayerMetrics> = stats.chunks_exact(STATS_PER_STATE).take(states).enumerate().map(|(i, s)| raw_metrics(i, s)).collect();
        let final_grad = self.model.layout.ln_f.map(|_| FinalGradSummary {
            rows: self.model.batch * self.model.context,
            rstd_square_sum: stats[STATS_PER_STATE * states] as f64,
            max_grad_over_rstd: stats[STATS_PER_STATE * states + 1] as f64,
        });
        let weight_results = self.read_norms(&self.model.weight_norms, self.model.weight_job_count).await?;
        let norms = WeightNorms::from_jobs(&self.model.config, &self.model.layout, &weight_results);
        let grad_norms: Vec<f64> =
            self.read_norms(&self.model.grad_norms, self.model.layout.tensors.len()).await?.iter().map(|n| n.frobenius).collect();
        let measurement = assemble(&self.model.config, &self.model.layout, half_steps, &norms, final_grad, &grad_norms);
        Ok(Evaluation { train_loss, val_loss, measurement })
    }

    async fn params(&mut self) -> Result<Vec<f32>, TrainError> {
        Ok(self.ctx.read_f32(&self.model.params, self.model.layout.total).await?)
    }

    async fn save_state(&mut self) -> Result<TrainState, TrainError> {
        let total = self.model.layout.total;
        let params = self.ctx.read_f32(&self.model.params, total).await?;
        // SGD keeps no moments; the buffers exist but stay unused.
        let (first_moment, second_moment) = if self.train.optimizer == OptimizerKind::Adamw {
            (self.ctx.read_f32(&self.model.first_moment, total).await?, self.ctx.read_f32(&self.model.second_moment, total).await?)
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(TrainState { params, first_moment, second_moment, updates: self.steps_taken as u64 })
    }

    fn load_state(&mut self, state: &TrainState) -> Result<(), TrainError> {
        let total = self.model.layout.total;
        let moments = if self.train.optimizer == OptimizerKind::Adamw { total } else { 0 };
        check_state_sizes(state, total, moments)?;
        let queue = &self.ctx.queue;
        queue.write_buffer(&self.model.params, 0, bytemuck::cast_slice(&state.params));
        if moments > 0 {
            queue.write_buffer(&self.model.first_moment, 0, bytemuck::cast_slice(&state.first_moment));
            queue.write_buffer(&self.model.second_moment, 0, bytemuck::cast_slice(&state.second_moment));
        }
        // Clear the sticky non-finite flag so updates resume.
        let cleared = [0.0f32, 1.0, 0.0, f32::from_bits(NONE_STEP)];
        queue.write_buffer(&self.model.optimizer_state, 0, bytemuck::cast_slice(&cleared));
        self.queued = 0;
        self.steps_taken = state.updates as usize;
        Ok(())
    }
}

/// One state's statistics as read back (layout of `shaders/stats.wgsl`),
/// with the bounds left at 0. A set non-finite flag turns that side's
/// values into NaN, because a GPU `max` may drop a NaN.
fn raw_metrics(layer: usize, s: &[f32]) -> LayerMetrics {
    let state_bad = s[8] != 0.0;
    let grad_bad = s[9] != 0.0;
    let state = |v: f32| if state_bad { f64::NAN } else { v as f64 };
    let grad = |v: f32| if grad_bad { f64::NAN } else { v as f64 };
    LayerMetrics {
        layer,
        mean_abs: state(s[0]),
        entry_var: state(s[1]),
        data_var: state(s[2]),
        rms: state(s[3]),
        max_abs: state(s[4]),
        max_token_norm: state(s[5]),
        grad_rms: grad(s[6]),
        max_token_grad_norm: grad(s[7]),
        bound_max_token_norm: 0.0,
        bound_mean_abs: 0.0,
        bound_entry_var: 0.0,
        bound_grad_rms: None,
        grad_bound_ratio: None,
    }
}
