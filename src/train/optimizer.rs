//! AdamW and SGD on the flat parameter buffer, with decoupled weight decay
//! and optional clipping of the global gradient norm.

use crate::config::{OptimizerKind, TrainConfig};
use crate::kernels::cpu::threads::{for_each_part, Shared, SharedMut};
use crate::model::{Layout, TensorKind};

pub const ADAM_BETA1: f64 = 0.9;
pub const ADAM_BETA2: f64 = 0.95;
pub const ADAM_EPS: f64 = 1e-8;

/// Optimiser state: AdamW moments (empty for SGD) and the step count.
#[derive(Clone, Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    /// Per-parameter weight-decay factor, 1 where decay applies and 0 elsewhere.
    decay_mask: Vec<f32>,
    first_moment: Vec<f32>,
    second_moment: Vec<f32>,
    /// Updates taken so far (the t of Adam's bias correction).
    pub updates: u64,
}

impl Optimizer {
    /// Decay applies to matrices and embeddings, and to LayerNorm gains when
    /// `decay_ln_gains` is set; never to biases or LayerNorm shifts.
    pub fn new(config: &TrainConfig, layout: &Layout) -> Optimizer {
        let mut decay_mask = vec![0.0; layout.total];
        for spec in &layout.tensors {
            let decays = match spec.kind {
                TensorKind::Matrix | TensorKind::Embedding => true,
                TensorKind::LnGain => config.decay_ln_gains,
                TensorKind::Bias | TensorKind::LnBias => false,
            };
            if decays {
                decay_mask[spec.range()].fill(1.0);
            }
        }
        let moments = if config.optimizer == OptimizerKind::Adamw { layout.total } else { 0 };
        Optimizer {
            kind: config.optimizer,
            decay_mask,
            first_moment: vec![0.0; moments],
            second_moment: vec![0.0; moments],
            updates: 0,
        }
    }

    /// Returns the AdamW moments (empty for SGD).
    pub fn moments(&self) -> (&[f32], &[f32]) {
        (&self.first_moment, &self.second_moment)
    }

    /// Replaces the moments and the update count, as saved by
    /// [`Optimizer::moments`]. Lengths must match this optimiser's.
    pub fn restore(&mut self, first_moment: &[f32], second_moment: &[f32], updates: u64) {
        self.first_moment.copy_from_slice(first_moment);
        self.second_moment.copy_from_slice(second_moment);
        self.updates = updates;
    }

    /// Apply one update with learning rate `lr` and decay `weight_decay`.
    pub fn update(&mut self, params: &mut [f32], grads: &[f32], lr: f64, weight_decay: f64) {
        assert_eq!(grads.len(), params.len(), "one gradient per parameter");
        assert_eq!(self.decay_mask.len(), params.len(), "an optimiser built for another model");
        self.updates += 1;
        let decay = (lr * weight_decay) as f32;
        let lr32 = lr as f32;
        match self.kind {
            OptimizerKind::Sgd => {
                for ((p, &g), &mask) in params.iter_mut().zip(grads).zip(&self.decay_mask) {
                    *p -= lr32 * g + decay * mask * *p;
                }
            }
            OptimizerKind::Adamw => {
                let t = self.updates as i32;
                let step = AdamStep {
                    lr: lr32,
                    decay,
                    correction1: (1.0 - ADAM_BETA1.powi(t)) as f32,
                    correction2: (1.0 - ADAM_BETA2.powi(t)) as f32,
                };
                let len = params.len();
                assert_eq!(self.first_moment.len(), len, "an optimiser built for another model");
                assert_eq!(self.second_moment.len(), len, "an optimiser built for another model");
                let (params, first, second) = (SharedMut(params.as_mut_ptr()), SharedMut(self.first_moment.as_mut_ptr()), SharedMut(self.second_moment.as_mut_ptr()));
                let (grads, mask) = (Shared(grads.as_ptr()), Shared(self.decay_mask.as_ptr()));
                // Each parameter's update depends on its own values only, so
                // the parts may run on any thread with the same result.
                for_each_part(len, 1 << 15, 16, |range| {
                    // SAFETY: the five slices have `len` elements (asserted
                    // above) and the parts are disjoint ranges of them.
                    unsafe {
                        let part_mut = |base: SharedMut<f32>| std::slice::from_raw_parts_mut(base.get().add(range.start), range.len());
                        let part = |base: Shared<f32>| std::slice::from_raw_parts(base.get().add(range.start), range.len());
                        step.apply(part_mut(params), part(grads), part(mask), part_mut(first), part_mut(second));
                    }
                });
            }
        }
    }
}

/// One AdamW update's scalars: the learning rate, the decoupled decay
/// (learning rate times weight decay) and the two bias corrections.
#[derive(Clone, Copy)]
struct AdamStep {
    lr: f32,
    decay: f32,
    correction1: f32,
    correction2: f32,
}

impl AdamStep {
    /// Updates the moments and parameters of one range. Zipped iterators
    /// rather than indexing, so the loop has no bounds checks and
    /// vectorises, with the same roundings.
    fn apply(self, params: &mut [f32], grads: &[f32], mask: &[f32], first: &mut [f32], second: &mut [f32]) {
        let (b1, b2, eps) = (ADAM_BETA1 as f32, ADAM_BETA2 as f32, ADAM_EPS as f32);
        let moments = first.iter_mut().zip(second.iter_mut());
        for (((p, &g), &mask), (first, second)) in params.iter_mut().zip(grads).zip(mask).zip(moments) {
            let m = b1 * *first + (1.0 - b1) * g;
            let v = b2 * *second + (1.0 - b2) * g * g;
            *first = m;
            *second = v;
            let step = (m / self.correction1) / ((v / self.correction2).sqrt() + eps);
            *p -= self.lr * step + self.decay * mask * *p;
        }
    }
}

/// ‖g‖₂ over all parameters, accumulated in f64.
pub fn global_norm(grads: &[f32]) -> f64 {
    // Eight running sums rather than one, so that the additions overlap
    // instead of each waiting for the last. The order is fixed.
    let mut lanes = [0f64; 8];
    let chunks = grads.chunks_exact(lanes.len());
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &g) in lanes.iter_mut().zip(chunk) {
            *lane += (g as f64) * (g as f64);
        }
    }
    let total = rest.iter().fold(lanes.iter().sum::<f64>(), |total, &g| total + (g as f64) * (g as f64));
    total.sqrt()
}

/// Scale `grads` so their global norm is at most `max_norm`; returns the
/// norm before clipping.
pub fn clip_global_norm(grads: &mut [f32], max_norm: f64) -> f64 {
    let norm = global_norm(grads);
    if norm > max_norm && norm.is_finite() {
        let scale = (max_norm / norm) as f32;
        grads.iter_mut().for_each(|g| *g *= scale);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;

    #[test]
    fn first_adamw_step_moves_each_weight_by_lr() {
        let model = ModelConfig { layers: 1, width: 4, heads: 1, context: 2, vocab: 3, ..ModelConfig::standard(3) };
        let layout = Layout::new(&model);
        let config = TrainConfig::default();
        let mut optimizer = Optimizer::new(&config, &layout);
        let mut params = vec![1.0f32; layout.total];
        let grads: Vec<f32> = (0..layout.total).map(|i| if i % 2 == 0 { 0.5 } else { -3.0 }).collect();
        optimizer.update(&mut params, &grads, 0.01, 0.0);
        for (p, g) in params.iter().zip(&grads) {
            // After bias correction the first step is lr·sign(g).
            let expected = 1.0 - 0.01 * g.signum();
            assert!((p - expected).abs() < 1e-6, "{p} vs {expected}");
        }
    }

    #[test]
    fn weight_decay_skips_biases_and_ln() {
        let model = ModelConfig { layers: 1, width: 4, heads: 1, context: 2, vocab: 3, ..ModelConfig::standard(3) };
        let layout = Layout::new(&model);
        let config = TrainConfig { optimizer: OptimizerKind::Sgd, ..TrainConfig::default() };
        let mut optimizer = Optimizer::new(&config, &layout);
        let mut params = vec![1.0f32; layout.total];
        optimizer.update(&mut params, &vec![0.0; layout.total], 0.1, 0.5);
        for spec in &layout.tensors {
            let value = params[spec.offset];
            let decays = matches!(spec.kind, TensorKind::Matrix | TensorKind::Embedding);
            let expected = if decays { 0.95 } else { 1.0 };
            assert!((value - expected).abs() < 1e-7, "{}: {value}", spec.name);
        }
    }

    #[test]
    fn clipping_caps_norm() {
        let mut grads = vec![3.0f32, 4.0];
        let before = clip_global_norm(&mut grads, 1.0);
        assert_eq!(before, 5.0);
        assert!((global_norm(&grads) - 1.0).abs() < 1e-6);
    }
}
