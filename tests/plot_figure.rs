//! Figures drawn from real training runs, written as SVG and PNG files.

use lnlab::config::{DataConfig, ModelConfig, Placement, TrainConfig};
use lnlab::data::synthetic::Task;
use lnlab::data::Dataset;
use lnlab::io::run_file::RunFile;
use lnlab::plot::{draw_figure, write_figure, AxisScale, Metric, PlotError, PlotOptions};
use lnlab::train::trainer::StepOutcome;
use lnlab::train::Trainer;
use plotters::prelude::{IntoDrawingArea, SVGBackend};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch folder under the system temp dir, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> ScratchDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let unique = format!("lnlab-plot-{name}-{}-{}", std::process::id(), COUNT.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Trains a 2-block, width-8 model for 20 steps on the copy task, with an
/// evaluation every 5 steps (5 evaluations in all), and returns its run.
fn trained_run(placement: Placement) -> RunFile {
    let data = DataConfig::Synthetic { task: Task::Copy };
    let dataset = Dataset::load(&data, 3).unwrap();
    let model = ModelConfig { placement, layers: 2, width: 8, heads: 2, context: 16, ..ModelConfig::standard(dataset.vocab.len()) };
    let train = TrainConfig { steps: 20, eval_every: 5, eval_batches: 1, batch: 4, warmup: 2, seed: 3, ..TrainConfig::default() };
    let mut trainer = Trainer::new(model, train, data, dataset, None).unwrap();
    loop {
        match trainer.step().unwrap() {
            StepOutcome::Trained { .. } => {}
            StepOutcome::Finished => break,
            StepOutcome::Diverged(non_finite) => panic!("the tiny run diverged: {non_finite}"),
        }
    }
    trainer.run
}

/// Draws the figure on an in-memory SVG backend, which finds the font itself.
fn svg_of(run: &RunFile, options: &PlotOptions) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (options.width, options.height)).into_drawing_area();
        draw_figure(&root, run, options)?;
    }
    Ok(svg)
}

/// Reads width and height from the IHDR chunk, which follows the 8-byte signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (width, height)
}

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

#[test]
fn svg_has_legend_and_title() {
    let run = trained_run(Placement::Pre);
    let scratch = ScratchDir::new("svg");
    let path = scratch.path("figure.svg");
    write_figure(&run, &path, &PlotOptions::default()).unwrap();

    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    assert!(svg.contains("certified bound"));
    assert!(svg.contains("Pre-LN: max token norm"));
    assert!(svg.contains("step 20"));
    assert!(svg.contains("exponential fit (κ = "));
    assert!(svg.contains("a fit, not a bound"));
    assert!(svg.contains("ln V (uniform guess)"));
    assert!(svg.contains("loss (nats)"));
    assert!(svg.contains("layer l"));
}

#[test]
fn pre_ln_gradient_bound_is_marked() {
    let run = trained_run(Placement::Pre);
    assert!(run.evals.last().unwrap().layers.last().unwrap().bound_grad_rms.is_some());
    let svg = svg_of(&run, &PlotOptions::default()).unwrap();
    assert!(svg.contains("certified bound at x_L"));
}

#[test]
fn post_ln_has_no_fit_or_gradient_bound() {
    let run = trained_run(Placement::Post);
    let svg = svg_of(&run, &PlotOptions::default()).unwrap();
    assert!(svg.contains("Post-LN"));
    assert!(svg.contains("certified bound"));
    assert!(!svg.contains("exponential fit"));
    assert!(!svg.contains("certified bound at x_L"));
}

#[test]
fn png_has_signature_and_requested_size() {
    let run = trained_run(Placement::Pre);
    let scratch = ScratchDir::new("png");
    let path = scratch.path("figure.png");
    let options = PlotOptions { width: 900, height: 700, ..PlotOptions::default() };
    write_figure(&run, &path, &options).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes[..8], PNG_SIGNATURE);
    assert_eq!(png_size(&bytes), (900, 700));
}

#[test]
fn nan_layer_still_draws() {
    let mut run = trained_run(Placement::Pre);
    let layer = &mut run.evals.last_mut().unwrap().layers[1];
    layer.max_token_norm = f64::NAN;
    layer.grad_rms = f64::NAN;
    layer.bound_max_token_norm = f64::NAN;
    // Through JSON, as a diverged run is saved: NaN is written as null and read back as NaN.
    let run = RunFile::from_json(run.to_json().as_bytes()).unwrap();
    assert!(run.evals.last().unwrap().layers[1].max_token_norm.is_nan());

    let svg = svg_of(&run, &PlotOptions::default()).unwrap();
    assert!(svg.contains("non-finite value"));
    let scratch = ScratchDir::new("nan");
    let path = scratch.path("figure.png");
    write_figure(&run, &path, &PlotOptions::default()).unwrap();
    assert_eq!(std::fs::read(&path).unwrap()[..8], PNG_SIGNATURE);
}

#[test]
fn all_nan_series_still_draws() {
    let mut run = trained_run(Placement::Pre);
    for eval in &mut run.evals {
        eval.train_loss = f64::NAN;
        for layer in &mut eval.layers {
            layer.max_token_norm = f64::NAN;
        }
    }
    let svg = svg_of(&run, &PlotOptions::default()).unwrap();
    assert!(svg.contains("(no values to draw)"));
}

#[test]
fn unknown_extension_rejected() {
    let run = trained_run(Placement::Pre);
    let scratch = ScratchDir::new("extension");
    for (file, extension) in [("figure.jpg", "jpg"), ("figure", "(none)")] {
        let path = scratch.path(file);
        let error = write_figure(&run, &path, &PlotOptions::default()).unwrap_err();
        assert_eq!(error, PlotError::UnsupportedExtension { path: path.display().to_string(), extension: extension.to_string() });
        assert!(error.to_string().contains(".svg or .png"), "{error}");
        assert!(!path.exists());
    }
}

#[test]
fn uppercase_extension_accepted() {
    let run = trained_run(Placement::Pre);
    let scratch = ScratchDir::new("uppercase");
    let path = scratch.path("figure.SVG");
    write_figure(&run, &path, &PlotOptions::default()).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains("certified bound"));
}

#[test]
fn eval_index_out_of_range_rejected() {
    let run = trained_run(Placement::Pre);
    let count = run.evals.len();
    let options = PlotOptions { eval_index: Some(count), ..PlotOptions::default() };
    let expected = PlotError::EvalIndexOutOfRange { index: count, count };

    assert_eq!(svg_of(&run, &options).unwrap_err(), expected);
    let scratch = ScratchDir::new("index");
    let path = scratch.path("figure.svg");
    assert_eq!(write_figure(&run, &path, &options).unwrap_err(), expected);
    assert!(!path.exists());
    assert!(expected.to_string().contains(&format!("{count} evaluations")), "{expected}");
}

#[test]
fn earlier_evaluation_is_drawn() {
    let run = trained_run(Placement::Pre);
    let options = PlotOptions { eval_index: Some(0), ..PlotOptions::default() };
    let svg = svg_of(&run, &options).unwrap();
    assert!(svg.contains("by layer, step 0"));
}

#[test]
fn run_without_evaluations_rejected() {
    let mut run = trained_run(Placement::Pre);
    run.evals.clear();
    assert_eq!(svg_of(&run, &PlotOptions::default()).unwrap_err(), PlotError::NoEvaluations);
}

#[test]
fn log_scale_with_zero_value() {
    let mut run = trained_run(Placement::Pre);
    run.evals.last_mut().unwrap().layers[0].max_token_norm = 0.0;
    let svg = svg_of(&run, &PlotOptions::default()).unwrap();
    assert!(svg.contains("≤ 0 not drawn on the log axis"));
}

#[test]
fn log_scale_without_positive_values_falls_back() {
    let mut run = trained_run(Placement::Pre);
    for eval in &mut run.evals {
        eval.train_loss = 0.0;
        eval.val_loss = -1.0;
    }
    run.step_losses.iter_mut().for_each(|loss| *loss = 0.0);
    run.model.vocab = 1;
    let options = PlotOptions { loss_scale: AxisScale::Log, ..PlotOptions::default() };
    let svg = svg_of(&run, &options).unwrap();
    assert!(svg.contains("no positive values for a log axis"));
}

#[test]
fn constant_values_draw() {
    let mut run = trained_run(Placement::Post);
    for layer in &mut run.evals.last_mut().unwrap().layers {
        layer.rms = 1.0;
        layer.bound_mean_abs = 1.0;
    }
    for scale in [AxisScale::Linear, AxisScale::Log] {
        let options = PlotOptions { metric: Metric::Rms, layer_scale: scale, ..PlotOptions::default() };
        svg_of(&run, &options).unwrap();
    }
}

#[test]
fn every_metric_and_scale_draws() {
    let run = trained_run(Placement::Peri);
    for metric in Metric::ALL {
        for layer_scale in [AxisScale::Linear, AxisScale::Log] {
            for loss_scale in [AxisScale::Linear, AxisScale::Log] {
                let options = PlotOptions { metric, layer_scale, loss_scale, ..PlotOptions::default() };
                let svg = svg_of(&run, &options).unwrap();
                assert!(svg.contains(metric.label()), "{metric:?}");
            }
        }
    }
}

#[test]
fn invalid_size_rejected() {
    let run = trained_run(Placement::Pre);
    let scratch = ScratchDir::new("size");
    let path = scratch.path("figure.png");
    let options = PlotOptions { width: 0, ..PlotOptions::default() };
    let error = write_figure(&run, &path, &options).unwrap_err();
    assert!(matches!(error, PlotError::InvalidSize { width: 0, height: 900, .. }), "{error}");
    assert!(!path.exists());
}

#[test]
fn missing_folder_is_a_write_error() {
    let run = trained_run(Placement::Pre);
    let scratch = ScratchDir::new("folder");
    let path: &Path = &scratch.path("no-such-folder/figure.svg");
    let error = write_figure(&run, path, &PlotOptions::default()).unwrap_err();
    assert!(matches!(error, PlotError::Write { .. }), "{error}");
}

#[test]
fn smallest_figure_draws() {
    let run = trained_run(Placement::Pre);
    let scratch = ScratchDir::new("smallest");
    let path = scratch.path("figure.png");
    let (width, height) = (lnlab::plot::MIN_FIGURE_WIDTH, lnlab::plot::MIN_FIGURE_HEIGHT);
    let options = PlotOptions { width, height, ..PlotOptions::default() };
    write_figure(&run, &path, &options).unwrap();
    assert_eq!(png_size(&std::fs::read(&path).unwrap()), (width, height));
}

/// Draws the layer × step map on an in-memory SVG backend.
fn layer_step_svg(run: &RunFile, metric: Metric, scale: AxisScale) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 500)).into_drawing_area();
        lnlab::plot::draw_layer_step_map(&root, run, metric, scale)?;
    }
    Ok(svg)
}

#[test]
fn layer_step_map_has_a_cell_per_layer_and_step() {
    let run = trained_run(Placement::Pre);
    let svg = layer_step_svg(&run, Metric::MaxTokenNorm, AxisScale::Log).unwrap();
    let cells = svg.matches("<rect").count();
    // 5 evaluations × 3 layers, plus the background.
    assert!(cells >= 15, "{cells} rectangles");
    assert!(svg.contains("max_token_norm: log10"), "title missing");
}

#[test]
fn layer_step_map_with_nan_draws_grey() {
    let mut run = trained_run(Placement::Peri);
    run.evals[2].layers[1].max_token_norm = f64::NAN;
    let svg = layer_step_svg(&run, Metric::MaxTokenNorm, AxisScale::Linear).unwrap();
    assert!(svg.contains("#BEBEBE"), "the non-finite cell is not grey");
}

#[test]
fn log_x_axis_leaves_out_layer_zero() {
    let run = trained_run(Placement::Pre);
    let options = PlotOptions { x_scale: AxisScale::Log, ..PlotOptions::default() };
    let svg = svg_of(&run, &options).unwrap();
    assert!(svg.contains("x axis: 1 value ≤ 0 not drawn on the log axis"), "no note about layer 0 or step 0");
}
