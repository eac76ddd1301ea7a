//! The whole training step on the GPU (lavapipe) against the CPU reference:
//! loss, every parameter gradient and every per-layer statistic after one
//! step, and the loss trajectory of 20 steps, for every placement and Δt.
//!
//! Tolerances: gradients and losses within 1e-4 of the largest reference
//! value, statistics within 1e-4 relative. Both sides run in f32 and differ
//! only in summation order, which moves results by about 1e-6 relative;
//! 20 AdamW steps amplify that, since Adam divides by small second moments.

use lnlab::config::{DataConfig, ModelConfig, Placement, TrainConfig};
use lnlab::data::synthetic::Task;
use lnlab::data::{Dataset, Split};
use lnlab::gpu::GpuBackend;
use lnlab::model::Model;
use lnlab::rng::seeded;
use lnlab::train::backend::Backend;
use lnlab::train::trainer::StepOutcome;
use lnlab::train::{RunStart, Trainer};

fn assert_lavapipe(backend: &GpuBackend) {
    assert_eq!(backend.ctx.adapter.backend, "Vulkan", "adapter: {}", backend.ctx.adapter);
    assert!(backend.ctx.adapter.name.contains("llvmpipe"), "adapter: {}", backend.ctx.adapter);
}

fn small_config(placement: Placement, dt: f64, vocab: usize) -> ModelConfig {
    ModelConfig { placement, layers: 2, width: 24, heads: 3, context: 12, vocab, dt, embedding_ln: false, ..ModelConfig::standard(vocab) }
}

fn train_config() -> TrainConfig {
    TrainConfig { batch: 4, steps: 20, eval_every: 10, eval_batches: 2, warmup: 2, lr: 3e-3, seed: 5, ..TrainConfig::default() }
}

/// Largest |a − b| relative to the largest |b|.
fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
}

#[test]
fn one_step_matches_cpu() {
    let data = DataConfig::Synthetic { task: Task::Reverse };
    let dataset = Dataset::load(&data, 1).unwrap();
    for placement in Placement::ALL {
        for dt in [1.0, 0.1] {
            let config = small_config(placement, dt, dataset.vocab.len());
            let train = train_config();
            let model = Model::<f32>::init(&config, &mut seeded(3));
            let batch = dataset.sample_batch(Split::Train, train.batch, config.context, &mut seeded(9));

            let cpu_pass = model.forward(&batch.inputs, &batch.targets, batch.batch, None).unwrap();
            let cpu_grads = model.backward(&cpu_pass, None);
            let cpu_measure = lnlab::metrics::measure(&model, &cpu_pass, &cpu_grads);

            let mut gpu = pollster::block_on(GpuBackend::new(&model, &train)).unwrap();
            assert_lavapipe(&gpu);
            let evaluation = pollster::block_on(gpu.evaluate(std::slice::from_ref(&batch), std::slice::from_ref(&batch))).unwrap();
            let label = format!("{placement:?} Δt={dt}");
            assert!((evaluation.val_loss - cpu_pass.loss as f64).abs() < 1e-5, "{label}: loss {} vs {}", evaluation.val_loss, cpu_pass.loss);

            let gpu_grads = pollster::block_on(gpu.ctx.read_f32(&gpu.model.grads, model.layout.total)).unwrap();
            for spec in &model.layout.tensors {
                let g: Vec<f64> = gpu_grads[spec.range()].iter().map(|&v| v as f64).collect();
                let c: Vec<f64> = cpu_grads.params[spec.range()].iter().map(|&v| v as f64).collect();
                let error = relative_error(&g, &c);
                assert!(error < 1e-4, "{label}: gradient {} differs by {error:e}", spec.name);
            }
            for (g, c) in evaluation.measurement.half_steps.iter().zip(&cpu_measure.half_steps) {
                let gv = [g.mean_abs, g.entry_var, g.data_var, g.rms, g.max_abs, g.max_token_norm, g.grad_rms, g.max_token_grad_norm, g.bound_max_token_norm];
                let cv = [c.mean_abs, c.entry_var, c.data_var, c.rms, c.max_abs, c.max_token_norm, c.grad_rms, c.max_token_grad_norm, c.bound_max_token_norm];
                for (name, (x, y)) in ["mean_abs", "entry_var", "data_var", "rms", "max_abs", "max_token_norm", "grad_rms", "max_token_grad_norm", "bound"].iter().zip(gv.iter().zip(&cv)) {
                    assert!((x - y).abs() <= 1e-4 * y.abs().max(1e-6), "{label}: state {} {name}: {x} vs {y}", g.layer);
                }
            }
        }
    }
}

#[test]
fn twenty_steps_follow_cpu() {
    let data = DataConfig::Synthetic { task: Task::Sort };
    let dataset = Dataset::load(&data, 2).unwrap();
    for placement in Placement::ALL {
        let config = small_config(placement, 1.0, dataset.vocab.len());
        let train = train_config();
        let mut cpu = Trainer::new(config.clone(), train.clone(), data.clone(), dataset.clone(), None).unwrap();
        let start = RunStart::new(config.clone(), train.clone(), data.clone(), dataset.clone(), None).unwrap();
        let backend = pollster::block_on(GpuBackend::new(&start.model, &train)).unwrap();
        assert_lavapipe(&backend);
        let mut gpu: Trainer<GpuBackend> = start.with_backend(backend);
        loop {
            let outcome = cpu.step().unwrap();
            let gpu_outcome = pollster::block_on(gpu.step_async()).unwrap();
            assert_eq!(std::mem::discriminant(&outcome), std::mem::discriminant(&gpu_outcome));
            if outcome == StepOutcome::Finished {
                break;
            }
        }
        let (c, g) = (&cpu.run.step_losses, &gpu.run.step_losses);
        assert_eq!(c.len(), 20);
        assert_eq!(g.len(), 20);
        let error = relative_error(g, c);
        assert!(error < 1e-4, "{placement:?}: losses differ by {error:e}: {g:?} vs {c:?}");
    }
}

#[test]
fn nan_weight_marks_its_layer() {
    let data = DataConfig::Synthetic { task: Task::Copy };
    let dataset = Dataset::load(&data, 1).unwrap();
    let config = small_config(Placement::Pre, 1.0, dataset.vocab.len());
    let train = train_config();
    let mut model = Model::<f32>::init(&config, &mut seeded(3));
    // A NaN in block 1's MLP first reaches the stream at x_2.
    let id = model.layout.find("h.1.mlp.c_fc.weight").unwrap();
    model.tensor_mut(id)[5] = f32::NAN;
    let batch = dataset.sample_batch(Split::Train, train.batch, config.context, &mut seeded(9));

    let mut gpu = pollster::block_on(GpuBackend::new(&model, &train)).unwrap();
    assert_lavapipe(&gpu);
    let evaluation = pollster::block_on(gpu.evaluate(std::slice::from_ref(&batch), std::slice::from_ref(&batch))).unwrap();
    let layers = &evaluation.measurement.layers;
    assert!(layers[1].max_token_norm.is_finite(), "x_1 is before the NaN");
    assert!(layers[2].max_token_norm.is_nan(), "x_2: {:?}", layers[2]);
    let non_finite = evaluation.measurement.first_non_finite(0).expect("a non-finite state is reported");
    assert_eq!(non_finite.layer, Some(2), "{non_finite}");
}

#[test]
fn nan_gradient_named_and_update_skipped() {
    let data = DataConfig::Synthetic { task: Task::Add };
    let dataset = Dataset::load(&data, 1).unwrap();
    let config = small_config(Placement::Peri, 1.0, dataset.vocab.len());
    let train = TrainConfig { eval_every: 3, steps: 3, ..train_config() };
    let start = RunStart::new(config, train.clone(), data, dataset, None).unwrap();
    let mut model = start.model.clone();
    let id = model.layout.find("h.0.attn.c_proj.weight").unwrap();
    model.tensor_mut(id)[0] = f32::INFINITY;
    let backend = pollster::block_on(GpuBackend::new(&model, &train)).unwrap();
    assert_lavapipe(&backend);
    let mut trainer = start.with_backend(backend);
    let outcome = loop {
        match pollster::block_on(trainer.step_async()).unwrap() {
            StepOutcome::Trained { .. } => continue,
            other => break other,
        }
    };
    let StepOutcome::Diverged(non_finite) = outcome else { panic!("expected divergence, got {outcome:?}") };
    // The infinite weight makes the forward pass non-finite at the first
    // step, before any gradient is formed; either report names its place.
    assert_eq!(non_finite.step, 0, "{non_finite}");
    let params = pollster::block_on(trainer.backend.params()).unwrap();
    assert_eq!(params, model.params, "no update may follow a non-finite step");
}

#[test]
fn model_too_large_for_adapter_rejected() {
    let config = ModelConfig { layers: 1, width: 1024, heads: 1, context: 1024, ..ModelConfig::standard(64) };
    let train = TrainConfig { batch: 512, ..train_config() };
    let model = Model::<f32>::init(&ModelConfig { context: 4, ..config.clone() }, &mut seeded(1));
    let model = Model::<f32>::from_params(&config, {
        let mut params = model.params;
        params.resize(lnlab::model::Layout::new(&config).total, 0.0);
        params
    });
    let error = match pollster::block_on(GpuBackend::new(&model, &train)) {
        Ok(_) => panic!("a 512 × 1024 × 1024 attention buffer was accepted"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("maxStorageBufferBindingSize") || error.contains("maxBufferSize"), "{error}");
    assert!(error.contains("largest configuration that fits is batch"), "{error}");
}
