//! The subcommands. Each validates its inputs, reports progress on stderr,
//! and writes its output file atomically (temporary file, then rename), so
//! an interrupted run never leaves a half-written file. `plot` is the
//! exception: the plot module checks everything before it creates the file.

use crate::args::{
    BackendArg, ChartArgs, CsvArgs, EvalArgs, MetricArg, ModelArgs, OptimizerArg, PlacementArg, PlotArgs, ReportArgs, ScaleArg,
    ScheduleArg, ThemeArg, TrainArgs,
};
use indicatif::{ProgressBar, ProgressStyle};
use lnlab::config::{ConfigError, DataConfig, ModelConfig, OptimizerKind, Placement, Schedule, TrainConfig};
use lnlab::data::Dataset;
use lnlab::io::checkpoint;
use lnlab::io::run_file::{EvalBatch, EvalRecord, RunFile};
use lnlab::metrics::NonFinite;
use lnlab::model::Model;
use lnlab::plot::{difference_labels, html_report, write_figure, AxisScale, ChartRun, Metric, PlotOptions, Theme};
use lnlab::train::trainer::StepOutcome;
use lnlab::gpu::GpuBackend;
use lnlab::train::{Backend, CpuBackend, RunStart, Trainer};
use serde::Serialize;
use std::error::Error;
use std::path::Path;

type CommandResult = Result<(), Box<dyn Error>>;

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Box<dyn Error>> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".partial");
    std::fs::write(&temporary, bytes).map_err(|e| format!("cannot write {}: {e}", Path::new(&temporary).display()))?;
    std::fs::rename(&temporary, path).map_err(|e| format!("cannot move the output into {}: {e}", path.display()))?;
    Ok(())
}

fn read_checkpoint(path: &Path, heads: Option<usize>) -> Result<checkpoint::Checkpoint, Box<dyn Error>> {
    let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read checkpoint {}: {e}", path.display()))?;
    if metadata.len() > checkpoint::MAX_CHECKPOINT_BYTES as u64 {
        return Err(format!("checkpoint {} is {} bytes, over the {}-byte limit", path.display(), metadata.len(), checkpoint::MAX_CHECKPOINT_BYTES).into());
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read checkpoint {}: {e}", path.display()))?;
    checkpoint::load(&bytes, heads).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn placement_of(arg: PlacementArg) -> Placement {
    match arg {
        PlacementArg::Post => Placement::Post,
        PlacementArg::Pre => Placement::Pre,
        PlacementArg::Peri => Placement::Peri,
        PlacementArg::None => Placement::None,
    }
}

/// The model settings: the flags over the standard preset, or the
/// checkpoint's settings, which explicit flags must agree with.
fn model_config(args: &ModelArgs, vocab: usize, loaded: Option<&ModelConfig>) -> Result<ModelConfig, ConfigError> {
    let Some(loaded) = loaded else {
        let standard = ModelConfig::standard(vocab);
        let config = ModelConfig {
            placement: args.placement.map(placement_of).unwrap_or(standard.placement),
            layers: args.layers.unwrap_or(standard.layers),
            width: args.width.unwrap_or(standard.width),
            heads: args.heads.unwrap_or(standard.heads),
            context: args.context.unwrap_or(standard.context),
            vocab,
            dt: args.dt.unwrap_or(standard.dt),
            tied_head: args.tied_head,
            head_bias: !args.no_head_bias,
            embedding_ln: args.embedding_ln,
            scaled_residual_init: !args.no_scaled_residual_init,
        };
        config.validate()?;
        return Ok(config);
    };
    let conflict = |field: &'static str, given: String, stored: String| {
        ConfigError::new(field, given, format!("{stored}, the value stored in the checkpoint (leave the option out when loading)"))
    };
    if let Some(p) = args.placement.map(placement_of).filter(|p| *p != loaded.placement) {
        return Err(conflict("placement", p.to_string(), loaded.placement.to_string()));
    }
    let sizes = [("layers", args.layers, loaded.layers), ("width", args.width, loaded.width), ("heads", args.heads, loaded.heads), ("context", args.context, loaded.context)];
    for (field, given, stored) in sizes {
        if let Some(given) = given.filter(|g| *g != stored) {
            return Err(conflict(field, given.to_string(), stored.to_string()));
        }
    }
    if let Some(dt) = args.dt.filter(|dt| *dt != loaded.dt) {
        return Err(conflict("dt", dt.to_string(), loaded.dt.to_string()));
    }
    let flags = [("tied-head", args.tied_head, loaded.tied_head), ("embedding-ln", args.embedding_ln, loaded.embedding_ln), ("no-head-bias", args.no_head_bias, !loaded.head_bias)];
    for (field, given, stored) in flags {
        if given && !stored {
            return Err(conflict(field, "set".into(), "unset".into()));
        }
    }
    if loaded.vocab != vocab {
        return Err(ConfigError::new("data", format!("{vocab} distinct characters"), format!("the checkpoint's vocabulary of {}", loaded.vocab)));
    }
    Ok(loaded.clone())
}

fn train_config(args: &TrainArgs) -> Result<TrainConfig, ConfigError> {
    let config = TrainConfig {
        optimizer: match args.optimizer {
            OptimizerArg::Adamw => OptimizerKind::Adamw,
            OptimizerArg::Sgd => OptimizerKind::Sgd,
        },
        lr: args.lr,
        schedule: match args.schedule {
            ScheduleArg::Constant => Schedule::Constant,
            ScheduleArg::Cosine => Schedule::Cosine,
        },
        min_lr_ratio: args.min_lr_ratio,
        warmup: args.warmup,
        weight_decay: args.weight_decay,
        decay_ln_gains: args.decay_ln_gains,
        grad_clip: (args.grad_clip != 0.0).then_some(args.grad_clip),
        batch: args.batch,
        steps: args.steps,
        eval_every: args.eval_every,
        eval_batches: args.eval_batches,
        seed: args.seed,
    };
    config.validate()?;
    Ok(config)
}

/// Check a checkpoint's stored vocabulary against the data's.
fn check_vocab(stored: Option<&str>, dataset: &Dataset) -> Result<(), Box<dyn Error>> {
    let data_vocab: String = dataset.vocab.chars().iter().collect();
    match stored {
        Some(stored) if stored != data_vocab => Err(format!(
            "the checkpoint was trained on a different character set ({} characters) than --data {} ({} characters)",
            stored.chars().count(), dataset.name, dataset.vocab.len(),
        )
        .into()),
        _ => Ok(()),
    }
}

pub fn train(args: TrainArgs) -> CommandResult {
    if let Some(threads) = args.threads {
        if !(1..=256).contains(&threads) {
            return Err(format!("invalid --threads {threads}: expected an integer in [1, 256]").into());
        }
        lnlab::kernels::cpu::threads::set_threads(threads)?;
    }
    let train_config = train_config(&args)?;
    let data_config = DataConfig::parse(&args.data)?;
    let dataset = Dataset::load(&data_config, train_config.seed)?;
    let loaded = args.load.as_deref().map(|p| read_checkpoint(p, None)).transpose()?;
    if let Some(loaded) = &loaded {
        check_vocab(loaded.vocab.as_deref(), &dataset)?;
    }
    let model_config = model_config(&args.model, dataset.vocab.len(), loaded.as_ref().map(|c| &c.model.config))?;
    let start = loaded.map(|c| c.model);

    eprintln!(
        "training {} L={} d={} H={} T={} Δt={} on {} ({} characters, vocabulary {}), {} steps, seed {}",
        model_config.placement.label(), model_config.layers, model_config.width, model_config.heads, model_config.context,
        model_config.dt, dataset.name, dataset.train.len() + dataset.val.len(), dataset.vocab.len(), train_config.steps, train_config.seed,
    );
    let run_start = RunStart::new(model_config, train_config, data_config, dataset, start)?;
    match args.backend {
        BackendArg::Cpu => {
            let backend = CpuBackend::new(run_start.model.clone(), &run_start.train_config);
            run_training(run_start.with_backend(backend), &args)
        }
        BackendArg::Gpu => {
            let backend = pollster::block_on(GpuBackend::new(&run_start.model, &run_start.train_config))?;
            eprintln!("GPU adapter: {}", backend.ctx.adapter);
            if backend.ctx.adapter.device_type == "Cpu" {
                eprintln!("note: this is a software adapter; it checks correctness, not speed");
            }
            run_training(run_start.with_backend(backend), &args)
        }
    }
}

/// Train to the end (or to the first non-finite value), showing progress,
/// then write the run file and the optional checkpoint.
fn run_training<B: Backend>(mut trainer: Trainer<B>, args: &TrainArgs) -> CommandResult {
    let progress = ProgressBar::new(trainer.train_config.steps as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {per_sec}  eta {eta}  {msg}")
            .expect("the template is valid"),
    );
    let show_eval = |progress: &ProgressBar, record: &EvalRecord| {
        let line = format!("step {:>6}  train loss {:.4}  val loss {:.4}", record.step, record.train_loss, record.val_loss);
        // On a terminal the bar carries the latest losses; elsewhere (CI
        // logs, pipes) each evaluation gets its own line.
        if progress.is_hidden() {
            eprintln!("{line}");
        } else {
            progress.set_message(line);
        }
    };

    let mut diverged: Option<NonFinite> = None;
    loop {
        match pollster::block_on(trainer.step_async())? {
            StepOutcome::Trained { evaluated, .. } => {
                progress.inc(1);
                if evaluated || trainer.step == 1 {
                    if let Some(record) = trainer.run.evals.last() {
                        show_eval(&progress, record);
                    }
                }
            }
            StepOutcome::Diverged(non_finite) => {
                diverged = Some(non_finite);
                break;
            }
            StepOutcome::Finished => break,
        }
    }
    progress.finish();

    write_atomically(&args.out, trainer.run.to_json().as_bytes())?;
    eprintln!("wrote run file {}", args.out.display());
    if let Some(path) = &args.save {
        let vocab: String = trainer.dataset().vocab.chars().iter().collect();
        let model = pollster::block_on(trainer.model_async())?;
        write_atomically(path, &checkpoint::save(&model, Some(&vocab)))?;
        eprintln!("wrote checkpoint {}", path.display());
    }
    if let Some(non_finite) = diverged {
        eprintln!("warning: training stopped because {non_finite}; the run file records it under non_finite");
    }
    Ok(())
}

fn read_run(path: &Path) -> Result<RunFile, Box<dyn Error>> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read run file {}: {e}", path.display()))?;
    RunFile::from_json(&bytes).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn read_runs(paths: &[std::path::PathBuf]) -> Result<Vec<RunFile>, Box<dyn Error>> {
    paths.iter().map(|path| read_run(path)).collect()
}

/// Pairs each run with its `--label`, or with the settings in which the
/// runs differ when no label is given.
fn chart_runs<'a>(runs: &'a [RunFile], labels: &[String]) -> Result<Vec<ChartRun<'a>>, Box<dyn Error>> {
    let labels = match labels.len() {
        0 => difference_labels(&runs.iter().collect::<Vec<_>>()),
        count if count == runs.len() => labels.to_vec(),
        count => {
            let times = if count == 1 { "once".to_string() } else { format!("{count} times") };
            return Err(format!("--label given {times} for {} run files; give it once per run file, or not at all", runs.len()).into());
        }
    };
    Ok(runs.iter().zip(labels).map(|(run, label)| ChartRun { run, label }).collect())
}

fn plot_options(args: &ChartArgs, width: u32, height: u32) -> PlotOptions {
    let scale = |s: ScaleArg| match s {
        ScaleArg::Linear => AxisScale::Linear,
        ScaleArg::Log => AxisScale::Log,
    };
    let metric = match args.metric {
        MetricArg::MeanAbs => Metric::MeanAbs,
        MetricArg::EntryVar => Metric::EntryVar,
        MetricArg::DataVar => Metric::DataVar,
        MetricArg::Rms => Metric::Rms,
        MetricArg::MaxTokenNorm => Metric::MaxTokenNorm,
    };
    let theme = match args.theme {
        ThemeArg::Light => Theme::Light,
        ThemeArg::Dark => Theme::Dark,
    };
    PlotOptions {
        metric,
        layer_scale: scale(args.layer_scale),
        loss_scale: scale(args.loss_scale),
        x_scale: scale(args.x_scale),
        eval_index: args.eval_index,
        width,
        height,
        theme,
    }
}

pub fn plot(args: PlotArgs) -> CommandResult {
    let runs = read_runs(&args.runs)?;
    let chart_runs = chart_runs(&runs, &args.chart.labels)?;
    let options = plot_options(&args.chart, args.width, args.height);
    write_figure(&chart_runs, &args.out, &options)?;
    eprintln!("wrote figure {}", args.out.display());
    Ok(())
}

pub fn report(args: ReportArgs) -> CommandResult {
    let runs = read_runs(&args.runs)?;
    let chart_runs = chart_runs(&runs, &args.chart.labels)?;
    let options = plot_options(&args.chart, args.width, args.height);
    let title = match &args.title {
        Some(title) => title.clone(),
        None => chart_runs.iter().map(|r| r.label.as_str()).collect::<Vec<_>>().join(" vs "),
    };
    let html = html_report(&chart_runs, &options, &title)?;
    write_atomically(&args.out, html.as_bytes())?;
    eprintln!("wrote report {}", args.out.display());
    Ok(())
}

pub fn csv(args: CsvArgs) -> CommandResult {
    let run = read_run(&args.run)?;
    write_atomically(&args.out, lnlab::io::csv::run_csv(&run).as_bytes())?;
    eprintln!("wrote {} ({} evaluations × {} layers)", args.out.display(), run.evals.len(), run.model.layers + 1);
    Ok(())
}

/// Contents of the file `lnlab eval` writes.
#[derive(Serialize)]
struct EvalFile {
    schema: &'static str,
    schema_version: u32,
    lnlab_version: &'static str,
    checkpoint: String,
    model: ModelConfig,
    data: DataConfig,
    seed: u64,
    eval_batch: EvalBatch,
    /// Measurements on the evaluation batch; `step` is 0.
    record: EvalRecord,
    non_finite: Option<NonFinite>,
}

pub fn eval(args: EvalArgs) -> CommandResult {
    let loaded = read_checkpoint(&args.load, args.heads)?;
    let data_config = DataConfig::parse(&args.data)?;
    let train_config = TrainConfig { batch: args.batch, eval_batches: args.eval_batches, seed: args.seed, ..TrainConfig::default() };
    train_config.validate()?;
    let dataset = Dataset::load(&data_config, args.seed)?;
    check_vocab(loaded.vocab.as_deref(), &dataset)?;
    let model: Model<f32> = loaded.model;
    if model.config.vocab != dataset.vocab.len() {
        return Err(format!(
            "the checkpoint's vocabulary has {} entries but --data {} has {} distinct characters",
            model.config.vocab, dataset.name, dataset.vocab.len(),
        )
        .into());
    }

    // The trainer draws the evaluation batches exactly as a training run
    // with this seed does, so the numbers match that run's measurements.
    let config = model.config.clone();
    let mut trainer = Trainer::new(config.clone(), train_config, data_config.clone(), dataset, Some(model))?;
    let non_finite = trainer.evaluate()?;
    let record = trainer.run.evals.pop().expect("evaluate appends a record");
    eprintln!("loss on the validation batches {:.4}", record.val_loss);
    let file = EvalFile {
        schema: "lnlab-eval",
        schema_version: 1,
        lnlab_version: env!("CARGO_PKG_VERSION"),
        checkpoint: args.load.display().to_string(),
        model: config,
        data: data_config,
        seed: args.seed,
        eval_batch: trainer.run.eval_batch.clone(),
        record,
        non_finite,
    };
    write_atomically(&args.out, serde_json::to_string_pretty(&file)?.as_bytes())?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
