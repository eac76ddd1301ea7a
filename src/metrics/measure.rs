//! One evaluation: every per-layer statistic with its bounds, from a forward
//! and backward pass on the evaluation batch.

use super::bounds::{fit_growth, Bounds, FinalGradSummary, GrowthFit, WeightNorms};
use super::hidden_stats::{measure_state, BlockGradNorms, LayerMetrics};
use super::non_finite::NonFinite;
use crate::config::{ModelConfig, Placement};
use crate::kernels::cpu::Scalar;
use crate::model::{ForwardPass, Gradients, Group, Layout, Model};

#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// All 2L + 1 half-step states; `layer` is the half-step index.
    pub half_steps: Vec<LayerMetrics>,
    /// The L + 1 block boundaries x_0..x_L.
    pub layers: Vec<LayerMetrics>,
    pub blocks: Vec<BlockGradNorms>,
    /// Exponential fit of the Pre-LN max token norms (Pre-LN only).
    pub growth_fit: Option<GrowthFit>,
}

/// Measure every state of `pass` on the CPU and fill in its bounds.
pub fn measure<F: Scalar>(model: &Model<F>, pass: &ForwardPass<F>, grads: &Gradients<F>) -> Measurement {
    let d = model.config.width;
    let raw: Vec<LayerMetrics> = pass
        .states
        .iter()
        .zip(&grads.states)
        .enumerate()
        .map(|(i, (state, grad))| measure_state(i, state, grad, pass.batch, pass.context, d))
        .collect();
    let norms = WeightNorms::of_model(model);
    let last = pass.states.len() - 1;
    let final_grad = pass.ln_f.as_ref().map(|stats| FinalGradSummary::of(&stats.rstd, &grads.states[last], d));
    let tensor_grad_norms: Vec<f64> = model
        .layout
        .tensors
        .iter()
        .map(|spec| grads.params[spec.range()].iter().map(|g| g.as_f64().powi(2)).sum::<f64>().sqrt())
        .collect();
    assemble(&model.config, &model.layout, raw, &norms, final_grad, &tensor_grad_norms)
}

/// Combine raw statistics (bounds still 0) with the weight norms into a
/// measurement. Both backends end here, so they share every bound.
///
/// `raw` has the 2L + 1 half-step states; `tensor_grad_norms` has one
/// Frobenius norm per tensor of the layout.
pub fn assemble(
    config: &ModelConfig, layout: &Layout, mut half_steps: Vec<LayerMetrics>, norms: &WeightNorms,
    final_grad: Option<FinalGradSummary>, tensor_grad_norms: &[f64],
) -> Measurement {
    let d = config.width;
    let bounds = Bounds::compute(config, norms, half_steps[0].max_token_norm, final_grad);
    for (metrics, &bound) in half_steps.iter_mut().zip(&bounds.token_norm) {
        metrics.bound_max_token_norm = bound;
        // mean|x| ≤ RMS ≤ M/sqrt(d), and both variances ≤ mean x² ≤ M²/d.
        metrics.bound_mean_abs = bound / (d as f64).sqrt();
        metrics.bound_entry_var = bound * bound / d as f64;
    }
    if let Some(last) = half_steps.last_mut() {
        last.bound_grad_rms = bounds.final_grad_rms;
        last.grad_bound_ratio = bounds.final_grad_ratio;
    }

    let layers: Vec<LayerMetrics> = half_steps
        .iter()
        .step_by(2)
        .enumerate()
        .map(|(l, metrics)| LayerMetrics { layer: l, ..metrics.clone() })
        .collect();

    let growth_fit = if config.placement == Placement::Pre {
        let norms: Vec<f64> = layers.iter().map(|m| m.max_token_norm).collect();
        fit_growth(&norms, config.dt)
    } else {
        None
    };

    Measurement { half_steps, layers, blocks: block_grad_norms(layout, tensor_grad_norms), growth_fit }
}

/// Frobenius norms of each block's attention, MLP and LayerNorm gradients,
/// from the per-tensor norms.
pub fn block_grad_norms(layout: &Layout, tensor_grad_norms: &[f64]) -> Vec<BlockGradNorms> {
    let mut squares = vec![[0.0f64; 3]; layout.blocks.len()];
    for (spec, norm) in layout.tensors.iter().zip(tensor_grad_norms) {
        let Some(block) = spec.block else { continue };
        let part = match spec.group {
            Group::Attention => 0,
            Group::Mlp => 1,
            Group::LayerNorm => 2,
            Group::Embedding | Group::Head => continue,
        };
        squares[block][part] += norm * norm;
    }
    squares
        .iter()
        .enumerate()
        .map(|(block, s)| BlockGradNorms { block, attention: s[0].sqrt(), mlp: s[1].sqrt(), layernorm: s[2].sqrt() })
        .collect()
}

impl Measurement {
    /// The non-finite statistic nearest its cause: first the lowest layer
    /// with a non-finite hidden state (a forward pass carries it upwards),
    /// then the highest layer with a non-finite gradient (a backward pass
    /// carries it downwards), then the block parameter gradients.
    pub fn first_non_finite(&self, step: usize) -> Option<NonFinite> {
        for m in &self.layers {
            let quantities =
                [("mean_abs", m.mean_abs), ("entry_var", m.entry_var), ("data_var", m.data_var), ("rms", m.rms), ("max_abs", m.max_abs), ("max_token_norm", m.max_token_norm)];
            if let Some((name, value)) = quantities.into_iter().find(|(_, v)| !v.is_finite()) {
                return Some(NonFinite::new(step, Some(m.layer), name, value));
            }
        }
        for m in self.layers.iter().rev() {
            if let Some((name, value)) = [("grad_rms", m.grad_rms), ("max_token_grad_norm", m.max_token_grad_norm)].into_iter().find(|(_, v)| !v.is_finite()) {
                return Some(NonFinite::new(step, Some(m.layer), name, value));
            }
        }
        for b in &self.blocks {
            let parts = [("grad_norm_attention", b.attention), ("grad_norm_mlp", b.mlp), ("grad_norm_layernorm", b.layernorm)];
            if let Some((name, value)) = parts.into_iter().find(|(_, v)| !v.is_finite()) {
                return Some(NonFinite::new(step, Some(b.block), name, value));
            }
        }
        None
    }
}
