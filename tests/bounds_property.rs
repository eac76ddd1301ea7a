//! Property test: over random small configurations trained for a few steps,
//! every layer's measured max token norm and moments stay at or below their
//! certified bounds, and the gradient under the final LayerNorm stays below
//! its per-token bound.

use lnlab::config::{DataConfig, ModelConfig, OptimizerKind, Placement, TrainConfig};
use lnlab::data::synthetic::Task;
use lnlab::data::Dataset;
use lnlab::metrics::{within_bound, LayerMetrics};
use lnlab::train::trainer::StepOutcome;
use lnlab::train::Trainer;
use proptest::prelude::*;

fn placement_strategy() -> impl Strategy<Value = Placement> {
    prop::sample::select(Placement::ALL.to_vec())
}

fn check_layer(placement: Placement, m: &LayerMetrics) -> Result<(), TestCaseError> {
    let context = format!("{placement:?} state {}: {m:?}", m.layer);
    prop_assert!(within_bound(m.max_token_norm, m.bound_max_token_norm), "max token norm: {}", context);
    prop_assert!(within_bound(m.mean_abs, m.bound_mean_abs), "mean abs: {}", context);
    prop_assert!(within_bound(m.rms, m.bound_mean_abs), "rms: {}", context);
    prop_assert!(within_bound(m.entry_var, m.bound_entry_var), "entry var: {}", context);
    prop_assert!(within_bound(m.data_var, m.bound_entry_var), "data var: {}", context);
    if let Some(bound) = m.bound_grad_rms {
        prop_assert!(within_bound(m.grad_rms, bound), "grad rms: {}", context);
        let ratio = m.grad_bound_ratio.unwrap();
        prop_assert!(within_bound(ratio, 1.0), "per-token gradient ratio: {}", context);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn measurements_stay_within_bounds(
        placement in placement_strategy(),
        layers in 1usize..5,
        heads in 1usize..4,
        head_dim in 1usize..6,
        context in 2usize..9,
        batch in 2usize..5,
        dt in prop::sample::select(vec![0.1, 0.5, 1.0, 2.0]),
        lr in prop::sample::select(vec![1e-3, 1e-2, 5e-2]),
        tied_head in any::<bool>(),
        embedding_ln in any::<bool>(),
        sgd in any::<bool>(),
        task in prop::sample::select(Task::ALL.to_vec()),
        seed in 0u64..1000,
    ) {
        let data = DataConfig::Synthetic { task };
        let dataset = Dataset::load(&data, seed).unwrap();
        let model = ModelConfig {
            placement, layers, width: heads * head_dim, heads, context, vocab: dataset.vocab.len(), dt,
            tied_head, head_bias: true, embedding_ln, scaled_residual_init: true,
        };
        let train = TrainConfig {
            optimizer: if sgd { OptimizerKind::Sgd } else { OptimizerKind::Adamw },
            lr, warmup: 0, batch, steps: 6, eval_every: 3, eval_batches: 1, seed, weight_decay: 0.1,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(model, train, data, dataset, None).unwrap();
        loop {
            match trainer.step().unwrap() {
                StepOutcome::Trained { .. } => {}
                StepOutcome::Finished => break,
                StepOutcome::Diverged(non_finite) => return Err(TestCaseError::fail(format!("diverged: {non_finite}"))),
            }
        }
        prop_assert_eq!(trainer.run.evals.len(), 3);
        for eval in &trainer.run.evals {
            for m in eval.half_steps.iter() {
                check_layer(placement, m)?;
            }
            prop_assert_eq!(eval.layers.len(), layers + 1);
        }
    }
}

#[test]
fn peri_bound_grows_linearly_with_depth() {
    // With unit gains and zero shifts, r(LN) = sqrt(d), so the Peri-LN bound
    // at initialisation is M_0 + Δt·2·l·sqrt(d) exactly.
    let data = DataConfig::Synthetic { task: Task::Sort };
    let dataset = Dataset::load(&data, 1).unwrap();
    let model = ModelConfig { placement: Placement::Peri, layers: 4, width: 16, heads: 2, context: 8, dt: 0.5, ..ModelConfig::standard(dataset.vocab.len()) };
    let train = TrainConfig { steps: 1, eval_batches: 1, batch: 4, ..TrainConfig::default() };
    let mut trainer = Trainer::new(model, train, data, dataset, None).unwrap();
    trainer.evaluate().unwrap();
    let layers = &trainer.run.evals[0].layers;
    let m0 = layers[0].max_token_norm;
    for (l, m) in layers.iter().enumerate() {
        let expected = m0 + 0.5 * 2.0 * l as f64 * 4.0;
        assert!((m.bound_max_token_norm - expected).abs() < 1e-9, "layer {l}: {} vs {expected}", m.bound_max_token_norm);
    }
}
