//! The CPU step split into shards of whole sequences. Each shard's loss and
//! gradient are computed on their own, here or in parallel elsewhere (the
//! page's workers), and then combined in shard order. The arithmetic
//! depends only on the number of shards, so a run gives the same numbers
//! whichever runner computed its shards.

use super::backend::{Backend, CpuBackend, Evaluation, StepReport, TrainState};
use super::TrainError;
use crate::config::TrainConfig;
use crate::data::Batch;
use crate::model::scratch::recycle;
use crate::model::{BatchError, Model};

/// Loss and parameter gradient of one shard, each the mean over the
/// shard's own positions.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardGradient {
    pub loss: f32,
    pub grads: Vec<f32>,
}

/// Split `batch` into at most `shards` runs of whole sequences, the first
/// ones one sequence longer when the sequences do not divide evenly.
pub fn split_batch(batch: &Batch, shards: usize) -> Vec<Batch> {
    let count = shards.clamp(1, batch.batch.max(1));
    let (base, extra) = (batch.batch / count, batch.batch % count);
    let mut start = 0;
    (0..count)
        .map(|s| {
            let rows = base + usize::from(s < extra);
            let positions = start * batch.context..(start + rows) * batch.context;
            start += rows;
            Batch { batch: rows, context: batch.context, inputs: batch.inputs[positions.clone()].to_vec(), targets: batch.targets[positions].to_vec() }
        })
        .collect()
}

/// Compute the loss and gradient of one shard with `model`'s parameters.
pub fn shard_gradient(model: &Model<f32>, shard: &Batch) -> Result<ShardGradient, BatchError> {
    let pass = model.forward(&shard.inputs, &shard.targets, shard.batch, None)?;
    let gradients = model.backward(&pass, None);
    recycle(gradients.states);
    let loss = pass.loss;
    recycle(pass.into_buffers());
    Ok(ShardGradient { loss, grads: gradients.params })
}

/// Combine shard results into the loss and gradient of the whole batch:
/// each shard is weighted by its share of the sequences, and the weighted
/// terms are added in shard order.
pub fn combine(parts: Vec<ShardGradient>, shards: &[Batch]) -> (f64, Vec<f32>) {
    assert_eq!(parts.len(), shards.len(), "one result per shard");
    let total: usize = shards.iter().map(|s| s.batch).sum();
    let weights: Vec<f32> = shards.iter().map(|s| (s.batch as f64 / total as f64) as f32).collect();
    let loss = parts.iter().zip(&weights).map(|(part, &w)| w as f64 * part.loss as f64).sum();
    let mut parts = parts.into_iter().zip(weights);
    let (first, w0) = parts.next().expect("a batch has at least one shard");
    let mut grads = first.grads;
    for g in grads.iter_mut() {
        *g *= w0;
    }
    for (part, w) in parts {
        assert_eq!(part.grads.len(), grads.len(), "shard gradients of different models");
        for (g, &p) in grads.iter_mut().zip(&part.grads) {
            *g += w * p;
        }
        recycle(vec![part.grads]);
    }
    (loss, grads)
}

/// Something that computes the gradients of a batch's shards.
#[allow(async_fn_in_trait)]
pub trait ShardRunner {
    /// Return one result per shard, in shard order, for `model`'s current
    /// parameters.
    async fn gradients(&mut self, model: &Model<f32>, shards: &[Batch]) -> Result<Vec<ShardGradient>, TrainError>;

    /// Describe where the shards are computed, for the page.
    fn describe(&self) -> String;
}

/// Computes the shards here, one after another.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalShards;

impl ShardRunner for LocalShards {
    async fn gradients(&mut self, model: &Model<f32>, shards: &[Batch]) -> Result<Vec<ShardGradient>, TrainError> {
        shards.iter().map(|shard| Ok(shard_gradient(model, shard)?)).collect()
    }

    fn describe(&self) -> String {
        "in this thread".to_string()
    }
}

/// The CPU reference with each step's batch split into a fixed number of
/// shards, whose gradients `runner` computes. Evaluations, the optimiser
/// and the saved state are the CPU reference's own.
pub struct ShardedBackend<R: ShardRunner> {
    pub cpu: CpuBackend,
    pub runner: R,
    shards: usize,
    /// Steps queued since the last report: batch, step index, learning rate.
    queued: Vec<(Batch, usize, f64)>,
}

impl<R: ShardRunner> ShardedBackend<R> {
    pub fn new(model: Model<f32>, train: &TrainConfig, shards: usize, runner: R) -> ShardedBackend<R> {
        ShardedBackend { cpu: CpuBackend::new(model, train), runner, shards: shards.max(1), queued: Vec::new() }
    }
}

impl<R: ShardRunner> Backend for ShardedBackend<R> {
    fn name(&self) -> String {
        self.cpu.name()
    }

    fn reports_cheaply(&self) -> bool {
        true
    }

    fn queue_capacity(&self) -> usize {
        1
    }

    fn train_step(&mut self, batch: &Batch, step: usize, lr: f64) -> Result<(), TrainError> {
        self.cpu.model.check_batch(&batch.inputs, batch.batch)?;
        self.cpu.model.check_batch(&batch.targets, batch.batch)?;
        self.queued.push((batch.clone(), step, lr));
        Ok(())
    }

    async fn finish_steps(&mut self, pending: &[Batch]) -> Result<StepReport, TrainError> {
        for (batch, step, lr) in std::mem::take(&mut self.queued) {
            let shards = split_batch(&batch, self.shards);
            let parts = self.runner.gradients(&self.cpu.model, &shards).await?;
            let (loss, grads) = combine(parts, &shards);
            self.cpu.apply_gradient(loss, grads, step, lr);
        }
        self.cpu.finish_steps(pending).await
    }

    async fn evaluate(&mut self, train_batches: &[Batch], val_batches: &[Batch]) -> Result<Evaluation, TrainError> {
        self.cpu.evaluate(train_batches, val_batches).await
    }

    async fn params(&mut self) -> Result<Vec<f32>, TrainError> {
        self.cpu.params().await
    }

    async fn save_state(&mut self) -> Result<TrainState, TrainError> {
        self.cpu.save_state().await
    }

    fn load_state(&mut self, state: &TrainState) -> Result<(), TrainError> {
        self.queued.clear();
        self.cpu.load_state(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelConfig, Placement};
    use crate::rng::seeded;

    fn model() -> Model<f32> {
        let config = ModelConfig {
            placement: Placement::Peri,
            layers: 2,
            width: 16,
            heads: 2,
            context: 8,
            vocab: 11,
            dt: 1.0,
            tied_head: false,
            head_bias: true,
            embedding_ln: false,
            scaled_residual_init: true,
        };
        Model::init(&config, &mut seeded(3))
    }

    fn batch(sequences: usize, context: usize) -> Batch {
        let inputs: Vec<u32> = (0..sequences * context).map(|i| (i * 7 % 11) as u32).collect();
        let targets: Vec<u32> = (0..sequences * context).map(|i| (i * 5 % 11) as u32).collect();
        Batch { batch: sequences, context, inputs, targets }
    }

    #[test]
    fn one_shard_steps_like_the_cpu_reference() {
        use crate::train::backend::complete_now;
        let train = TrainConfig::default();
        let mut reference = CpuBackend::new(model(), &train);
        let mut sharded = ShardedBackend::new(model(), &train, 1, LocalShards);
        for step in 0..3 {
            let batch = batch(3 + step, 8);
            reference.train_step(&batch, step, 0.01).unwrap();
            sharded.train_step(&batch, step, 0.01).unwrap();
            let pending = [batch];
            assert_eq!(complete_now(sharded.finish_steps(&pending)).unwrap(), complete_now(reference.finish_steps(&pending)).unwrap());
        }
        let same = reference.model.params.iter().zip(&sharded.cpu.model.params).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "one shard updated the parameters differently");
    }

    #[test]
    fn split_keeps_every_sequence_in_order() {
        let whole = batch(5, 8);
        let shards = split_batch(&whole, 2);
        assert_eq!(shards.iter().map(|s| s.batch).collect::<Vec<_>>(), [3, 2]);
        let joined: Vec<u32> = shards.iter().flat_map(|s| s.inputs.clone()).collect();
        assert_eq!(joined, whole.inputs);
        assert_eq!(split_batch(&whole, 9).len(), 5, "no shard is empty");
        assert_eq!(split_batch(&whole, 0).len(), 1);
    }

    #[test]
    fn combined_shards_match_the_whole_batch() {
        let model = model();
        for (sequences, shard_count) in [(4, 2), (5, 2), (6, 4), (3, 3)] {
            let whole = batch(sequences, 8);
            let reference = shard_gradient(&model, &whole).unwrap();
            let shards = split_batch(&whole, shard_count);
            let parts = shards.iter().map(|s| shard_gradient(&model, s).unwrap()).collect();
            let (loss, grads) = combine(parts, &shards);
            assert!((loss - reference.loss as f64).abs() < 1e-5, "{sequences} in {shard_count}: loss {loss} against {}", reference.loss);
            let scale = reference.grads.iter().fold(0f32, |m, g| m.max(g.abs()));
            for (i, (a, b)) in grads.iter().zip(&reference.grads).enumerate() {
                assert!((a - b).abs() <= 1e-5 * scale, "{sequences} in {shard_count}: gradient {i} is {a}, whole batch {b}");
            }
        }
    }
}
