//! Training throughput on the default corpus (Moby-Dick), batch 16, AdamW.
//!
//!     cargo run --release --example bench_train -- [--backend cpu|gpu] \
//!         [--model small|standard|large] [--placement pre|post|peri|none|all] \
//!         [--warmup N] [--steps N] [--threads N]
//!     cargo run --release --example bench_train -- gpu    # short for --backend gpu
//!
//! Models (4 heads each): small is 4 layers, width 32, context 32; standard
//! is the CLI's default, 8 layers, width 64, context 64; large is 16 layers,
//! width 128, context 128. Without options it runs every placement of the
//! standard model on the CPU reference.
//!
//! Prints one line per placement: steps per second over `--steps` timed
//! steps after `--warmup` untimed ones, evaluations excluded, and the
//! achieved GFLOP/s by the count in `flops_per_step`. scripts/torch_bench.py
//! prints the same line format for PyTorch.

use lnlab::config::{DataConfig, ModelConfig, Placement, TrainConfig};
use lnlab::data::Dataset;
use lnlab::gpu::GpuBackend;
use lnlab::train::{Backend, CpuBackend, RunStart, Trainer};
use std::process::exit;
use std::time::Instant;

const USAGE: &str = "usage: bench_train [cpu|gpu | --backend cpu|gpu] [--model small|standard|large] \
[--placement pre|post|peri|none|all] [--warmup N] [--steps N] [--threads N]";

struct Options {
    use_gpu: bool,
    model_name: String,
    placements: Vec<Placement>,
    warmup: usize,
    timed: usize,
    threads: usize,
}

/// Prints `message` and the usage line, then exits with status 2.
fn fail(message: &str) -> ! {
    eprintln!("bench_train: {message}\n{USAGE}");
    exit(2);
}

fn parse_count(option: &str, value: &str) -> usize {
    value.parse().unwrap_or_else(|_| fail(&format!("invalid value '{value}' for {option}: expected a whole number")))
}

fn parse_options() -> Options {
    let mut use_gpu = false;
    let mut model_name = "standard".to_string();
    let mut placements = Placement::ALL.to_vec();
    let mut warmup = None;
    let mut timed = None;
    let mut threads = 1;

    let mut args = std::env::args().skip(1);
    while let Some(option) = args.next() {
        if option == "--help" || option == "-h" {
            println!("{USAGE}");
            exit(0);
        }
        // A bare `cpu` or `gpu` is short for `--backend cpu` or `--backend gpu`.
        if option == "cpu" || option == "gpu" {
            use_gpu = option == "gpu";
            continue;
        }
        let value = args.next().unwrap_or_else(|| fail(&format!("missing value for {option}")));
        match option.as_str() {
            "--backend" => {
                use_gpu = match value.as_str() {
                    "cpu" => false,
                    "gpu" => true,
                    other => fail(&format!("invalid backend '{other}': expected cpu or gpu")),
                }
            }
            "--model" => model_name = value,
            "--placement" if value == "all" => placements = Placement::ALL.to_vec(),
            "--placement" => placements = vec![Placement::parse(&value).unwrap_or_else(|e| fail(&e.to_string()))],
            "--warmup" => warmup = Some(parse_count(&option, &value)),
            "--steps" => timed = Some(parse_count(&option, &value)),
            "--threads" => threads = parse_count(&option, &value),
            other => fail(&format!("unknown option '{other}'")),
        }
    }

    // The GPU path on a software adapter (lavapipe) is about 100 times slower
    // than the CPU reference, hence fewer steps by default.
    let (default_warmup, default_timed) = if use_gpu { (2, 5) } else { (3, 30) };
    let timed = timed.unwrap_or(default_timed);
    if timed == 0 {
        fail("--steps must be at least 1");
    }
    if threads == 0 {
        fail("--threads must be at least 1");
    }
    Options { use_gpu, model_name, placements, warmup: warmup.unwrap_or(default_warmup), timed, threads }
}

/// Builds the named model with `placement` and the corpus's vocabulary size.
fn model_config(name: &str, placement: Placement, vocab: usize) -> ModelConfig {
    let standard = ModelConfig { placement, ..ModelConfig::standard(vocab) };
    match name {
        "small" => ModelConfig { layers: 4, width: 32, context: 32, ..standard },
        "standard" => standard,
        "large" => ModelConfig { layers: 16, width: 128, context: 128, ..standard },
        other => fail(&format!("invalid model '{other}': expected small, standard or large")),
    }
}

/// Counts the model FLOPs of one training step: 2·m·n·k for every forward
/// matrix product, times 3 for forward and backward. With M = B·T tokens,
/// per block that is 24·M·d² for the four linear layers (d→3d, d→d, d→4d,
/// 4d→d) and 4·B·T²·d for attention scores and weighted sums, counted in
/// full although the causal mask makes half of them zero. The head adds
/// 2·M·d·V. LayerNorm, GELU, softmax and the optimiser are not counted.
fn flops_per_step(config: &ModelConfig, batch: usize) -> f64 {
    let (b, t, d, v) = (batch as f64, config.context as f64, config.width as f64, config.vocab as f64);
    let tokens = b * t;
    let block = 24.0 * tokens * d * d + 4.0 * b * t * t * d;
    let forward = config.layers as f64 * block + 2.0 * tokens * d * v;
    3.0 * forward
}

/// Times `timed` steps after `warmup` steps and returns steps per second.
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
    let options = parse_options();
    lnlab::kernels::cpu::threads::set_threads(options.threads).unwrap_or_else(|e| fail(&e));
    let thread_label = if options.threads == 1 { "1 thread".to_string() } else { format!("{} threads", options.threads) };
    let data = DataConfig::MobyDick;
    let dataset = Dataset::load(&data, 1).unwrap_or_else(|e| fail(&format!("{e}; fetch the corpus with scripts/fetch-corpus.sh")));

    for &placement in &options.placements {
        let model = model_config(&options.model_name, placement, dataset.vocab.len());
        // One step more than measured, so that the evaluation after the last
        // step falls outside the timed region. Evaluations run only at step 0
        // and after that last step.
        let steps = options.warmup + options.timed + 1;
        let train = TrainConfig { steps, eval_every: steps, eval_batches: 1, ..TrainConfig::default() };
        let start = RunStart::new(model.clone(), train.clone(), data.clone(), dataset.clone(), None).unwrap_or_else(|e| fail(&e.to_string()));
        let parameters = start.model.layout.total;
        let flops = flops_per_step(&model, train.batch);

        let (per_second, backend, dispatches) = if options.use_gpu {
            let backend = pollster::block_on(GpuBackend::new(&start.model, &train)).unwrap_or_else(|e| fail(&e.to_string()));
            let name = backend.ctx.adapter.to_string();
            let dispatches = backend.model.dispatches_per_step();
            let mut trainer = start.with_backend(backend);
            (steps_per_second(&mut trainer, options.warmup, options.timed), name, Some(dispatches))
        } else {
            let backend = CpuBackend::new(start.model.clone(), &train);
            let mut trainer = start.with_backend(backend);
            (steps_per_second(&mut trainer, options.warmup, options.timed), format!("lnlab cpu reference, f32, {thread_label}"), None)
        };

        let dispatches = dispatches.map(|n| format!(", {n} dispatches per step")).unwrap_or_default();
        println!(
            "{:8} {:8} {:9.3} steps/s {:8.3} GFLOP/s  ({:.3} GFLOP per step, {parameters} parameters, {} steps after {} warm-up{dispatches}) on {backend}",
            options.model_name,
            placement.label(),
            per_second,
            flops * per_second / 1e9,
            flops / 1e9,
            options.timed,
            options.warmup,
        );
    }
}
