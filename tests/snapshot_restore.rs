//! Snapshots of a run: restoring one replays the same steps exactly on the
//! CPU, a GPU snapshot continues on the CPU (as after a lost device), and a
//! diverged run rewinds to its last finite state. Thinning a long record
//! keeps its ends.

use lnlab::config::{DataConfig, ModelConfig, OptimizerKind, Placement, TrainConfig};
use lnlab::data::synthetic::Task;
use lnlab::data::Dataset;
use lnlab::gpu::GpuBackend;
use lnlab::train::trainer::StepOutcome;
use lnlab::train::{CpuBackend, RunStart, Trainer};

fn data() -> (DataConfig, Dataset) {
    let data = DataConfig::Synthetic { task: Task::Sort };
    let dataset = Dataset::load(&data, 1).unwrap();
    (data, dataset)
}

fn model_config(placement: Placement, vocab: usize) -> ModelConfig {
    ModelConfig { placement, layers: 2, width: 16, heads: 2, context: 12, ..ModelConfig::standard(vocab) }
}

fn train_config(optimizer: OptimizerKind) -> TrainConfig {
    TrainConfig { optimizer, batch: 4, steps: 12, eval_every: 4, eval_batches: 2, warmup: 2, lr: 3e-3, seed: 7, ..TrainConfig::default() }
}

fn cpu_trainer(placement: Placement, train: TrainConfig) -> Trainer<CpuBackend> {
    let (data, dataset) = data();
    Trainer::new(model_config(placement, dataset.vocab.len()), train, data, dataset, None).unwrap()
}

/// Steps until `step` updates have been taken.
fn train_until<B: lnlab::train::Backend>(trainer: &mut Trainer<B>, step: usize) {
    while trainer.step < step {
        let outcome = pollster::block_on(trainer.step_async()).unwrap();
        assert!(matches!(outcome, StepOutcome::Trained { .. }), "{outcome:?}");
    }
}

#[test]
fn restore_replays_cpu_steps_exactly() {
    for optimizer in [OptimizerKind::Adamw, OptimizerKind::Sgd] {
        let mut trainer = cpu_trainer(Placement::Pre, train_config(optimizer));
        train_until(&mut trainer, 4);
        let snapshot = pollster::block_on(trainer.snapshot()).unwrap();
        train_until(&mut trainer, 12);
        let first = trainer.run.to_json();

        trainer.restore(&snapshot).unwrap();
        assert_eq!(trainer.step, 4);
        assert_eq!(trainer.run.evals.len(), 2, "evaluations at steps 0 and 4 remain");
        train_until(&mut trainer, 12);
        assert_eq!(trainer.run.to_json(), first, "{optimizer:?}: the replayed run differs");
    }
}

#[test]
fn gpu_snapshot_continues_on_cpu() {
    let (data, dataset) = data();
    let config = model_config(Placement::Peri, dataset.vocab.len());
    let train = train_config(OptimizerKind::Adamw);
    let start = RunStart::new(config.clone(), train.clone(), data.clone(), dataset.clone(), None).unwrap();
    let backend = pollster::block_on(GpuBackend::new(&start.model, &train)).unwrap();
    assert_eq!(backend.ctx.adapter.backend, "Vulkan", "adapter: {}", backend.ctx.adapter);
    assert!(backend.ctx.adapter.name.contains("llvmpipe"), "adapter: {}", backend.ctx.adapter);
    let mut gpu = start.with_backend(backend);
    train_until(&mut gpu, 4);
    let snapshot = pollster::block_on(gpu.snapshot()).unwrap();
    train_until(&mut gpu, 12);

    // A new CPU run of the same settings, moved to the GPU run's snapshot.
    let mut cpu = Trainer::new(config, train, data, dataset, None).unwrap();
    cpu.run = gpu.run.clone();
    cpu.restore(&snapshot).unwrap();
    assert_eq!(cpu.step, 4);
    train_until(&mut cpu, 12);

    let gpu_losses = &gpu.run.step_losses;
    let cpu_losses = &cpu.run.step_losses;
    assert_eq!(cpu_losses.len(), 12);
    assert_eq!(cpu_losses[..4], gpu_losses[..4], "the steps before the snapshot were kept");
    for (step, (c, g)) in cpu_losses.iter().zip(gpu_losses).enumerate().skip(4) {
        assert!((c - g).abs() <= 1e-4 * g.abs(), "step {step}: CPU loss {c} after the GPU snapshot, GPU {g}");
    }
}

#[test]
fn diverged_run_rewinds_to_finite_state() {
    // Without LayerNorm, learning rate 1 on Moby-Dick turns the gradients
    // non-finite within a few steps.
    let data = DataConfig::MobyDick;
    let dataset = Dataset::load(&data, 1).unwrap();
    let config = ModelConfig { layers: 4, context: 16, ..model_config(Placement::None, dataset.vocab.len()) };
    let train = TrainConfig { lr: 1.0, warmup: 0, steps: 40, eval_every: 2, ..train_config(OptimizerKind::Adamw) };
    let mut trainer = Trainer::new(config, train, data, dataset, None).unwrap();
    // The run's start is its first finite state.
    let start = pollster::block_on(trainer.snapshot()).unwrap();
    let mut snapshot = start.clone();
    let diverged = loop {
        match trainer.step().unwrap() {
            StepOutcome::Trained { evaluated: true, .. } => snapshot = pollster::block_on(trainer.snapshot()).unwrap(),
            StepOutcome::Trained { .. } => {}
            StepOutcome::Diverged(non_finite) => break non_finite,
            StepOutcome::Finished => panic!("the run did not diverge"),
        }
    };
    assert!(snapshot.step <= diverged.step, "snapshot at {} after divergence at {}", snapshot.step, diverged.step);

    trainer.restore(&snapshot).unwrap();
    assert!(trainer.run.non_finite.is_none());
    assert_eq!(trainer.step, snapshot.step);
    assert!(trainer.model().params.iter().all(|p| p.is_finite()));
    // The last finite state may sit at the edge of divergence, so continue
    // from the start: with a far smaller rate the run passes the old divergence.
    trainer.restore(&start).unwrap();
    trainer.train_config.lr = 1e-3;
    while trainer.step <= diverged.step + 2 {
        let outcome = trainer.step().unwrap();
        assert!(matches!(outcome, StepOutcome::Trained { .. }), "{outcome:?}");
    }
}

#[test]
fn thinning_keeps_ends_and_order() {
    let train = TrainConfig { steps: 40, eval_every: 1, ..train_config(OptimizerKind::Sgd) };
    let mut trainer = cpu_trainer(Placement::Peri, train);
    train_until(&mut trainer, 40);
    assert_eq!(trainer.run.evals.len(), 41);
    trainer.run.thin_evals(10);
    let steps: Vec<usize> = trainer.run.evals.iter().map(|e| e.step).collect();
    assert!(steps.len() <= 10, "{steps:?}");
    assert!(steps.len() >= 5, "thinning removed more than half at once: {steps:?}");
    assert_eq!(steps.first(), Some(&0));
    assert_eq!(steps.last(), Some(&40));
    assert!(steps.windows(2).all(|pair| pair[0] < pair[1]), "{steps:?}");
}
