//! Command-line options. Model options are optional so that `--load` can
//! supply them from a checkpoint and an explicit, conflicting value is an
//! error instead of being silently ignored.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "lnlab", version, about = "Train small transformers and watch how LayerNorm placement shapes each layer")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model and write a run file with per-layer metrics and bounds
    Train(TrainArgs),
    /// Draw the charts of one to four run files, overlaid, to an SVG or PNG file
    Plot(PlotArgs),
    /// Write one to four run files' settings, charts and tables to a self-contained HTML file
    Report(ReportArgs),
    /// Write a run file's per-layer measurements as CSV, one row per evaluation and layer
    Csv(CsvArgs),
    /// Measure a saved checkpoint on the evaluation batch
    Eval(EvalArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlacementArg {
    Post,
    Pre,
    Peri,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The CPU reference (f32)
    Cpu,
    /// WGSL compute shaders on the default WebGPU adapter (Vulkan natively)
    Gpu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    Adamw,
    Sgd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    Constant,
    Cosine,
}

/// Model settings; each defaults to the standard preset unless a checkpoint is loaded.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// LayerNorm placement in each block [default: pre]
    #[arg(long, value_enum)]
    pub placement: Option<PlacementArg>,
    /// Number of blocks L, an integer in [1, 64] [default: 8]
    #[arg(long)]
    pub layers: Option<usize>,
    /// Model width d (features per token), an integer in [1, 1024] [default: 64]
    #[arg(long)]
    pub width: Option<usize>,
    /// Attention heads H, a divisor of the width, at most 64 [default: 4]
    #[arg(long)]
    pub heads: Option<usize>,
    /// Context length T in tokens (characters), an integer in [1, 1024] [default: 64]
    #[arg(long)]
    pub context: Option<usize>,
    /// Residual step Δt, a number in (0, 10] [default: 1]
    #[arg(long, allow_negative_numbers = true)]
    pub dt: Option<f64>,
    /// Tie the output head to the token embedding, as GPT-2 does
    #[arg(long)]
    pub tied_head: bool,
    /// Leave out the output bias b_U, as GPT-2 does
    #[arg(long)]
    pub no_head_bias: bool,
    /// Apply a LayerNorm to the token plus position embedding
    #[arg(long)]
    pub embedding_ln: bool,
    /// Initialise the residual output projections with std 0.02 instead of 0.02/sqrt(2L)
    #[arg(long)]
    pub no_scaled_residual_init: bool,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Sequences per batch B, an integer in [2, 512]
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Peak learning rate, a number in (0, 10]
    #[arg(long, allow_negative_numbers = true, default_value_t = 3e-3)]
    pub lr: f64,
    /// Warm-up length in optimiser steps (the rate rises linearly to --lr), 0 for none
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Decoupled weight decay per step, relative to the learning rate, a number in [0, 1]
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Also decay the LayerNorm gains γ
    #[arg(long)]
    pub decay_ln_gains: bool,
    /// Optimiser
    #[arg(long, value_enum, default_value = "adamw")]
    pub optimizer: OptimizerArg,
    /// Learning-rate schedule after warm-up
    #[arg(long, value_enum, default_value = "constant")]
    pub schedule: ScheduleArg,
    /// Final learning rate of the cosine schedule, as a fraction of --lr in [0, 1]
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub min_lr_ratio: f64,
    /// Clip the global gradient norm to this value (a positive number); 0 turns clipping off
    #[arg(long, allow_negative_numbers = true, default_value_t = 1.0)]
    pub grad_clip: f64,
    /// Number of optimiser steps, an integer in [1, 10000000]
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Measure every N steps (and at steps 0 and the last), N ≥ 1
    #[arg(long, default_value_t = 50)]
    pub eval_every: usize,
    /// Fixed batches averaged by the reported train and validation losses, in [1, 64]
    #[arg(long, default_value_t = 4)]
    pub eval_batches: usize,
    /// Seed of the generator behind initialisation and batch sampling (any unsigned 64-bit integer)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Training text: moby-dick, a synthetic task (copy, reverse, sort, add) or a UTF-8 file path
    #[arg(long, default_value = "moby-dick")]
    pub data: String,
    /// Compute backend that runs the training
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendArg,
    /// Threads of the CPU backend, an integer in [1, 256] [default: one per logical CPU]. Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run file to write (JSON)
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the trained model as a safetensors checkpoint
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Start from a safetensors checkpoint instead of a fresh initialisation
    #[arg(long)]
    pub load: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    MeanAbs,
    EntryVar,
    DataVar,
    Rms,
    MaxTokenNorm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScaleArg {
    Linear,
    Log,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ThemeArg {
    /// Dark text on white
    Light,
    /// Light text on a near-black background
    Dark,
}

/// Chart options shared by `plot` and `report`.
#[derive(Args, Debug)]
pub struct ChartArgs {
    /// Hidden-state metric drawn against layer, with its certified bound
    #[arg(long, value_enum, default_value = "max-token-norm")]
    pub metric: MetricArg,
    /// Y axis of the per-layer charts
    #[arg(long, value_enum, default_value = "log")]
    pub layer_scale: ScaleArg,
    /// Y axis of the loss chart
    #[arg(long, value_enum, default_value = "linear")]
    pub loss_scale: ScaleArg,
    /// X axis (layer or step) of the line charts; a log axis leaves out layer 0 and step 0 and the caption counts them
    #[arg(long, value_enum, default_value = "linear")]
    pub x_scale: ScaleArg,
    /// Index of the evaluation to draw in each run, counting from 0 [default: each run's last]
    #[arg(long)]
    pub eval_index: Option<usize>,
    /// Chart colours
    #[arg(long, value_enum, default_value = "light")]
    pub theme: ThemeArg,
    /// Legend label of a run; give it once per run file, in the same order [default: the settings in which the runs differ]
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// Run files written by `lnlab train` or exported from the page, 1 to 4, overlaid in one colour each
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// Figure to write; the extension (.svg or .png) picks the format
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub chart: ChartArgs,
    /// Figure width in pixels, in [640, 10000]
    #[arg(long, default_value_t = 1200)]
    pub width: u32,
    /// Figure height in pixels, in [480, 10000]
    #[arg(long, default_value_t = 900)]
    pub height: u32,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run files written by `lnlab train` or exported from the page, 1 to 4
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// HTML file to write
    #[arg(long)]
    pub out: PathBuf,
    /// Heading and page title of the report [default: the run labels]
    #[arg(long)]
    pub title: Option<String>,
    #[command(flatten)]
    pub chart: ChartArgs,
    /// Width of each chart in pixels, in [200, 10000]; the page scales it to fit
    #[arg(long, default_value_t = 960)]
    pub width: u32,
    /// Height of each chart in pixels, in [200, 10000]
    #[arg(long, default_value_t = 600)]
    pub height: u32,
}

#[derive(Args, Debug)]
pub struct CsvArgs {
    /// Run file written by `lnlab train` or exported from the page
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// CSV file to write
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Checkpoint to measure
    #[arg(long)]
    pub load: PathBuf,
    /// Text to measure on: moby-dick, a synthetic task or a UTF-8 file path; its characters must match the checkpoint's vocabulary
    #[arg(long, default_value = "moby-dick")]
    pub data: String,
    /// Sequences in the evaluation batch, an integer in [2, 512]
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Fixed validation batches averaged by the reported loss, in [1, 64]
    #[arg(long, default_value_t = 4)]
    pub eval_batches: usize,
    /// Seed that draws the evaluation batches; the training run's seed gives its evaluation batch
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of heads, needed only for GPT-2 checkpoints without lnlab metadata
    #[arg(long)]
    pub heads: Option<usize>,
    /// Evaluation file to write (JSON)
    #[arg(long)]
    pub out: PathBuf,
}
