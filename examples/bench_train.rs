//! Training throughput of the CPU reference on the standard preset
//! (Pre-LN, 8 layers, width 64, 4 heads, context 64, batch 16, AdamW) on
//! the default corpus. Run with `cargo run --release --example bench_train`.
//!
//! Prints steps per second over timed steps that exclude evaluations, after
//! a few warm-up steps, for each placement.

use lnlab::config::{DataConfig, ModelConfig, Placement, TrainConfig};
use lnlab::data::Dataset;
use lnlab::train::Trainer;
use std::time::Instant;

const WARMUP_STEPS: usize = 3;
const TIMED_STEPS: usize = 30;

/// Count the model FLOPs of one training step. The matrix products take 6
/// per parameter per token (2 forward, 4 backward). Attention scores and
/// weighted sums take 6·T·d per token per block: 2·T·d forward for both
/// (the causal mask halves the full 4·T·d) and twice that backward.
fn flops_per_step(config: &ModelConfig, parameters: usize, batch: usize) -> f64 {
    let tokens = (batch * config.context) as f64;
    let attention = 6.0 * config.layers as f64 * config.context as f64 * config.width as f64;
    tokens * (6.0 * parameters as f64 + attention)
}

fn main() {
    let data = DataConfig::MobyDick;
    let dataset = Dataset::load(&data, 1).unwrap_or_else(|e| panic!("{e}"));
    println!("cpu reference, f32, matrixmultiply, 1 thread, standard preset, {TIMED_STEPS} timed steps");
    for placement in Placement::ALL {
        let model = ModelConfig { placement, ..ModelConfig::standard(dataset.vocab.len()) };
        // One step more than run, so the final-step evaluation never happens.
        let steps = WARMUP_STEPS + TIMED_STEPS + 1;
        let train = TrainConfig { steps, eval_every: steps + 1, eval_batches: 1, ..TrainConfig::default() };
        let mut trainer = Trainer::new(model.clone(), train, data.clone(), dataset.clone(), None).unwrap();
        // The first step also records the step-0 evaluation, so it belongs
        // to the warm-up.
        for _ in 0..WARMUP_STEPS {
            trainer.step().unwrap();
        }
        let start = Instant::now();
        for _ in 0..TIMED_STEPS {
            trainer.step().unwrap();
        }
        let seconds = start.elapsed().as_secs_f64();
        let per_second = TIMED_STEPS as f64 / seconds;
        let gflops = flops_per_step(&model, trainer.model.layout.total, 16) * per_second / 1e9;
        println!("{:8}  {:6.2} steps/s  {:6.2} GFLOP/s  ({} parameters)", placement.label(), per_second, gflops, trainer.model.layout.total);
    }
}
