//! Finite-difference check of every parameter gradient in f64, for every
//! placement, Δt 1 and 0.1, tied and untied head, with odd shapes and a
//! non-uniformly weighted loss so that cancelling terms cannot hide a bug.

use lnlab::config::{ModelConfig, Placement};
use lnlab::model::Model;
use lnlab::rng::seeded;
use rand::Rng;

const BATCH: usize = 2;
const CONTEXT: usize = 5;

fn odd_config(placement: Placement, dt: f64, tied_head: bool, embedding_ln: bool) -> ModelConfig {
    ModelConfig {
        placement,
        layers: 3,
        width: 12,
        heads: 3,
        context: 6,
        vocab: 7,
        dt,
        tied_head,
        head_bias: true,
        embedding_ln,
        scaled_residual_init: true,
    }
}

/// A model whose parameters are all far from their initial values, so that
/// every LayerNorm gain, bias and shift carries a visible gradient.
fn perturbed_model(config: &ModelConfig, seed: u64) -> Model<f64> {
    let mut rng = seeded(seed);
    let mut model = Model::<f64>::init(config, &mut rng);
    for value in model.params.iter_mut() {
        *value += rng.random_range(-0.4..0.4);
    }
    model
}

fn batch(seed: u64, vocab: u32) -> (Vec<u32>, Vec<u32>, Vec<f64>) {
    let mut rng = seeded(seed);
    let tokens = (0..BATCH * CONTEXT).map(|_| rng.random_range(0..vocab)).collect();
    let targets = (0..BATCH * CONTEXT).map(|_| rng.random_range(0..vocab)).collect();
    let weights = (0..BATCH * CONTEXT).map(|_| rng.random_range(0.2..2.0)).collect();
    (tokens, targets, weights)
}

fn check_gradients(config: &ModelConfig) {
    let model = perturbed_model(config, 7);
    let (tokens, targets, weights) = batch(11, config.vocab as u32);
    let loss_of = |m: &Model<f64>| m.forward(&tokens, &targets, BATCH, Some(&weights)).unwrap().loss;

    let pass = model.forward(&tokens, &targets, BATCH, Some(&weights)).unwrap();
    let grads = model.backward(&pass, Some(&weights));

    let h = 1e-5;
    let mut probe = model.clone();
    for spec in &model.layout.tensors {
        // Every entry of small tensors; an even spread of 40 in larger ones.
        let stride = (spec.len() / 40).max(1);
        let mut largest = 0.0f64;
        for index in spec.range().step_by(stride) {
            let original = probe.params[index];
            probe.params[index] = original + h;
            let plus = loss_of(&probe);
            probe.params[index] = original - h;
            let minus = loss_of(&probe);
            probe.params[index] = original;

            let numeric = (plus - minus) / (2.0 * h);
            let analytic = grads.params[index];
            largest = largest.max(numeric.abs());
            // Central differences in f64 carry about 1e-11 of rounding noise
            // at h = 1e-5; some entries (the key bias) have a true gradient of
            // exactly 0, so the tolerance has an absolute floor.
            let tolerance = 1e-9 + 1e-6 * (numeric.abs() + analytic.abs());
            assert!(
                (numeric - analytic).abs() <= tolerance,
                "{:?} Δt={} tied={}: {}[{}] analytic {analytic:e} numeric {numeric:e}",
                config.placement, config.dt, config.tied_head, spec.name, index - spec.offset,
            );
        }
        // Unused tensors would pass trivially, so each must matter.
        assert!(largest > 1e-9, "{} has no effect on the loss", spec.name);
    }
}

#[test]
fn gradients_match_finite_differences() {
    for placement in Placement::ALL {
        for dt in [1.0, 0.1] {
            for tied_head in [false, true] {
                check_gradients(&odd_config(placement, dt, tied_head, false));
            }
        }
    }
}

#[test]
fn gradients_with_embedding_ln() {
    for placement in Placement::ALL {
        check_gradients(&odd_config(placement, 0.5, false, true));
    }
}

#[test]
fn residual_gradients_match_finite_differences() {
    // ∂loss/∂x_l drives the gradient-norm chart, so check it too: nudge one
    // entry of the embedding output through the position embedding, whose
    // row t is added to x_0[b, t] for every b.
    for placement in Placement::ALL {
        let config = odd_config(placement, 1.0, false, false);
        let model = perturbed_model(&config, 3);
        let (tokens, targets, weights) = batch(5, config.vocab as u32);
        let pass = model.forward(&tokens, &targets, BATCH, Some(&weights)).unwrap();
        let grads = model.backward(&pass, Some(&weights));
        let wpe = model.layout.wpe;
        let d = config.width;
        for (t, k) in [(0, 0), (2, 5), (4, 11)] {
            let summed: f64 = (0..BATCH).map(|b| grads.states[0][(b * CONTEXT + t) * d + k]).sum();
            let analytic = grads.params[model.layout.tensors[wpe].offset + t * d + k];
            assert!((summed - analytic).abs() < 1e-12, "{placement:?}: {summed} vs {analytic}");
        }
        assert_eq!(grads.states.len(), 2 * config.layers + 1);
    }
}
