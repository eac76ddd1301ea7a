//! Training throughput on the standard preset (8 layers, width 64, 4
//! heads, context 64, batch 16, AdamW) on the default corpus, for each
//! placement.
//!
//!     cargo run --release --example bench_train            # CPU reference
//!     cargo run --release --example bench_train -- gpu     # WGSL on the default adapter
//!
//! Prints steps per second over timed steps that exclude evaluations, after
//! warm-up steps, and the achieved model GFLOP/s.

use lnlab::config::{DataConfig, ModelConfig, Placement, TrainConfig};
use lnlab::data::Dataset;
use lnlab::gpu::GpuBackend;
use lnlab::train::{Backend, CpuBackend, RunStart, Trainer};
use std::time::Instant;

/// Count the model FLOPs of one training step. The matrix products take 6
/// per parameter per token (2 forward, 4 backward). Attention scores and
/// weighted sums take 6·T·d per token per block: 2·T·d forward for both
/// (the causal mask halves the full 4·T·d) and twice that backward.
fn flops_per_step(config: &ModelConfig, parameters: usize, batch: usize) -> f64 {
    let tokens = (batch * config.context) as f64;
    let attention = 6.0 * config.layers as f64 * config.context as f64 * config.width as f64;
    tokens * (6.0 * parameters as f64 + attention)
}

/// Time `timed` steps after `warmup` steps; the run is one step longer so
/// the final-step evaluation never happens.
fn steps_per_second<B: Backend>(trainer: &mut Trainer<B>, warmup: usize, timed: usize) -> f64 {
    // The first step also records the step-0 evaluation, so it belongs to
    // the warm-up. Reports are collected inside the timed region because a
    // GPU only finishes its queued steps when asked.
    for _ in 0..warmup {
        pollster::block_on(trainer.step_async()).unwrap();
    }
    pollster::block_on(trainer.backend.finish_steps(&[])).unwrap();
    let start = Instant::now();
    for _ in 0..timed {
        pollster::block_on(trainer.step_async()).unwrap();
    }
    pollster::block_on(trainer.backend.finish_steps(&[])).unwrap();
    timed as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let use_gpu = std::env::args().nth(1).as_deref() == Some("gpu");
    let data = DataConfig::MobyDick;
    let dataset = Dataset::load(&data, 1).unwrap_or_else(|e| panic!("{e}"));
    let (warmup, timed) = if use_gpu { (2, 5) } else { (3, 30) };
    for placement in Placement::ALL {
        let model = ModelConfig { placement, ..ModelConfig::standard(dataset.vocab.len()) };
        let steps = warmup + timed + 1;
        // Evaluations only at step 0 and after the last step.
        let train = TrainConfig { steps, eval_every: steps, eval_batches: 1, ..TrainConfig::default() };
        let start = RunStart::new(model.clone(), train.clone(), data.clone(), dataset.clone(), None).unwrap();
        let parameters = start.model.layout.total;
        let flops = flops_per_step(&model, parameters, train.batch);
        let (per_second, backend, dispatches) = if use_gpu {
            let backend = pollster::block_on(GpuBackend::new(&start.model, &train)).unwrap_or_else(|e| panic!("{e}"));
            let name = backend.ctx.adapter.to_string();
            let dispatches = backend.model.dispatches_per_step();
            let mut trainer = start.with_backend(backend);
            (steps_per_second(&mut trainer, warmup, timed), name, Some(dispatches))
        } else {
            let backend = CpuBackend::new(start.model.clone(), &train);
            let mut trainer = start.with_backend(backend);
            (steps_per_second(&mut trainer, warmup, timed), "cpu reference, f32, 1 thread".to_string(), None)
        };
        let dispatches = dispatches.map(|n| format!(", {n} dispatches per step")).unwrap_or_default();
        println!(
            "{:8}  {:7.3} steps/s  {:7.3} GFLOP/s  ({parameters} parameters, {:.2} GFLOP per step{dispatches}) on {backend}",
            placement.label(), per_second, flops * per_second / 1e9, flops / 1e9,
        );
    }
}
