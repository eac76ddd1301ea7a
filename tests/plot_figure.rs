//! Figures, single charts and HTML reports drawn from real training runs,
//! alone and overlaid, written as SVG and PNG files.

use lnlab::config::{DataConfig, ModelConfig, Placement, TrainConfig};
use lnlab::data::synthetic::Task;
use lnlab::data::Dataset;
use lnlab::io::run_file::RunFile;
use lnlab::plot::{
    chart_svg, draw_figure, html_report, write_figure, AxisScale, ChartKind, ChartRun, Metric, PlotError, PlotOptions, Theme,
    MAX_OVERLAID_RUNS,
};
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
    trained(placement, 2, 20)
}

/// Trains a `layers`-block, width-8 model for `steps` steps on the copy
/// task, with an evaluation every 5 steps, and returns its run.
fn trained(placement: Placement, layers: usize, steps: usize) -> RunFile {
    let data = DataConfig::Synthetic { task: Task::Copy };
    let dataset = Dataset::load(&data, 3).unwrap();
    let model = ModelConfig { placement, layers, width: 8, heads: 2, context: 16, ..ModelConfig::standard(dataset.vocab.len()) };
    let train = TrainConfig { steps, eval_every: 5, eval_batches: 1, batch: 4, warmup: 2, seed: 3, ..TrainConfig::default() };
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

/// Pairs each run with its label from the settings in which they differ.
fn labelled<'a>(runs: &[&'a RunFile]) -> Vec<ChartRun<'a>> {
    ChartRun::labelled(runs)
}

/// Draws the figure of one run on an in-memory SVG backend, which finds the font itself.
fn svg_of(run: &RunFile, options: &PlotOptions) -> Result<String, PlotError> {
    overlay_svg(&labelled(&[run]), options)
}

/// Draws the figure of `runs` on an in-memory SVG backend.
fn overlay_svg(runs: &[ChartRun], options: &PlotOptions) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (options.width, options.height)).into_drawing_area();
        draw_figure(&root, runs, options)?;
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
    write_figure(&labelled(&[&run]), &path, &PlotOptions::default()).unwrap();

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
    write_figure(&labelled(&[&run]), &path, &options).unwrap();

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
    write_figure(&labelled(&[&run]), &path, &PlotOptions::default()).unwrap();
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
        let error = write_figure(&labelled(&[&run]), &path, &PlotOptions::default()).unwrap_err();
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
    write_figure(&labelled(&[&run]), &path, &PlotOptions::default()).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains("certified bound"));
}

#[test]
fn eval_index_out_of_range_rejected() {
    let run = trained_run(Placement::Pre);
    let count = run.evals.len();
    let options = PlotOptions { eval_index: Some(count), ..PlotOptions::default() };
    let label = "Pre-LN, 2 layers, Δt 1".to_string();
    let expected = PlotError::EvalIndexOutOfRange { run: label, index: count, count };

    assert_eq!(svg_of(&run, &options).unwrap_err(), expected);
    let scratch = ScratchDir::new("index");
    let path = scratch.path("figure.svg");
    assert_eq!(write_figure(&labelled(&[&run]), &path, &options).unwrap_err(), expected);
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
    let expected = PlotError::NoEvaluations { run: "Pre-LN, 2 layers, Δt 1".to_string() };
    assert_eq!(svg_of(&run, &PlotOptions::default()).unwrap_err(), expected);
    assert!(expected.to_string().contains("\"Pre-LN, 2 layers, Δt 1\" has no evaluations"), "{expected}");
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
    let error = write_figure(&labelled(&[&run]), &path, &options).unwrap_err();
    assert!(matches!(error, PlotError::InvalidSize { width: 0, height: 900, .. }), "{error}");
    assert!(!path.exists());
}

#[test]
fn missing_folder_is_a_write_error() {
    let run = trained_run(Placement::Pre);
    let scratch = ScratchDir::new("folder");
    let path: &Path = &scratch.path("no-such-folder/figure.svg");
    let error = write_figure(&labelled(&[&run]), path, &PlotOptions::default()).unwrap_err();
    assert!(matches!(error, PlotError::Write { .. }), "{error}");
}

#[test]
fn smallest_figure_draws() {
    let run = trained_run(Placement::Pre);
    let scratch = ScratchDir::new("smallest");
    let path = scratch.path("figure.png");
    let (width, height) = (lnlab::plot::MIN_FIGURE_WIDTH, lnlab::plot::MIN_FIGURE_HEIGHT);
    let options = PlotOptions { width, height, ..PlotOptions::default() };
    write_figure(&labelled(&[&run]), &path, &options).unwrap();
    assert_eq!(png_size(&std::fs::read(&path).unwrap()), (width, height));
}

/// Draws the layer × step map of one run as a 900 × 500 SVG.
fn layer_step_svg(run: &RunFile, metric: Metric, scale: AxisScale) -> Result<String, PlotError> {
    let options = PlotOptions { metric, layer_scale: scale, width: 900, height: 500, ..PlotOptions::default() };
    chart_svg(ChartKind::LayerStep, &labelled(&[run]), &options)
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

/// Trains a Pre-LN and a Peri-LN run of the same settings, whose labels are "Pre-LN" and "Peri-LN".
fn pre_and_peri() -> (RunFile, RunFile) {
    (trained_run(Placement::Pre), trained_run(Placement::Peri))
}

#[test]
fn overlay_legend_names_each_run() {
    let (pre, peri) = pre_and_peri();
    let runs = labelled(&[&pre, &peri]);
    assert_eq!(runs[0].label, "Pre-LN");
    assert_eq!(runs[1].label, "Peri-LN");
    let svg = overlay_svg(&runs, &PlotOptions::default()).unwrap();
    for text in ["\nPre-LN, fit κ = ", "\nPeri-LN\n", "\nmeasured\n", "\ncertified bound\n", "exponential fit, a fit, not a bound", "certified bound at x_L"] {
        assert!(svg.contains(text), "legend lacks {text:?}");
    }
    assert!(svg.contains("2 runs, all with L = 2"), "heading does not name the shared settings");
    for colour in ["#0072B2", "#D55E00"] {
        assert!(svg.contains(&format!("stroke=\"{colour}\"")), "no line in {colour}");
    }
}

#[test]
fn overlay_axes_cover_every_run() {
    let shallow = trained_run(Placement::Pre);
    let deep = trained(Placement::Pre, 4, 30);
    let runs = labelled(&[&shallow, &deep]);
    assert_eq!(runs[0].label, "2 layers, 20 steps");
    let svg = overlay_svg(&runs, &PlotOptions::default()).unwrap();
    assert!(svg.contains(">\n4\n</text>"), "no tick at layer 4");
    assert!(svg.contains(">\n30\n</text>"), "no tick at step 30");
    assert!(svg.contains("by layer, end of each run"), "title does not say which evaluations");
}

#[test]
fn overlay_run_count_is_checked() {
    let run = trained_run(Placement::Pre);
    assert_eq!(overlay_svg(&[], &PlotOptions::default()).unwrap_err(), PlotError::NoRuns);
    let five = labelled(&[&run, &run, &run, &run, &run]);
    let error = overlay_svg(&five, &PlotOptions::default()).unwrap_err();
    assert_eq!(error, PlotError::TooManyRuns { count: 5, max: MAX_OVERLAID_RUNS });
    let four = labelled(&[&run, &run, &run, &run]);
    overlay_svg(&four, &PlotOptions::default()).unwrap();
}

#[test]
fn overlay_eval_index_names_the_short_run() {
    let short = trained_run(Placement::Pre);
    let long = trained(Placement::Pre, 2, 30);
    let runs = labelled(&[&long, &short]);
    let options = PlotOptions { eval_index: Some(5), ..PlotOptions::default() };
    let error = overlay_svg(&runs, &options).unwrap_err();
    assert_eq!(error, PlotError::EvalIndexOutOfRange { run: "20 steps".to_string(), index: 5, count: 5 });
    let options = PlotOptions { eval_index: Some(4), ..PlotOptions::default() };
    let svg = overlay_svg(&runs, &options).unwrap();
    assert!(svg.contains("by layer, step 20"), "evaluation 4 of both runs is at step 20");
    let svg = overlay_svg(&labelled(&[&long, &short]), &PlotOptions::default()).unwrap();
    assert!(svg.contains("by layer, end of each run"), "last evaluations are at different steps");
    let options = PlotOptions { eval_index: Some(0), ..PlotOptions::default() };
    let labelled_runs = labelled(&[&long, &short]);
    let earlier = overlay_svg(&labelled_runs, &options).unwrap();
    assert!(earlier.contains("by layer, step 0"), "evaluation 0 of both runs is at step 0");
}

#[test]
fn overlay_notes_name_the_run() {
    let (pre, mut peri) = pre_and_peri();
    let last = peri.evals.last_mut().unwrap();
    last.layers[1].grad_rms = f64::NAN;
    last.layers[2].max_token_norm = 10.0 * last.layers[2].bound_max_token_norm;
    let svg = overlay_svg(&labelled(&[&pre, &peri]), &PlotOptions::default()).unwrap();
    assert!(svg.contains("1 non-finite value (NaN or ∞) not drawn, from Peri-LN"), "NaN note does not name the run");
    assert!(svg.contains("Peri-LN: above the certified bound at layer 2"), "bound note does not name the run");
}

#[test]
fn overlay_log_axis_note_names_the_run() {
    let (mut pre, peri) = pre_and_peri();
    pre.evals.last_mut().unwrap().layers[0].max_token_norm = 0.0;
    let svg = overlay_svg(&labelled(&[&pre, &peri]), &PlotOptions::default()).unwrap();
    assert!(svg.contains("1 value ≤ 0 not drawn on the log axis, from Pre-LN"), "log-axis note does not name the run");
    let options = PlotOptions { x_scale: AxisScale::Log, ..PlotOptions::default() };
    let svg = overlay_svg(&labelled(&[&pre, &peri]), &options).unwrap();
    assert!(svg.contains("≤ 0 not drawn on the log axis, from every run"), "x-axis note does not cover both runs");
}

#[test]
fn dark_theme_draws_light_on_dark() {
    let (pre, peri) = pre_and_peri();
    let options = PlotOptions { theme: Theme::Dark, ..PlotOptions::default() };
    for runs in [labelled(&[&pre]), labelled(&[&pre, &peri])] {
        let svg = overlay_svg(&runs, &options).unwrap();
        assert!(svg.contains("fill=\"#1E1E1E\""), "no dark background");
        assert!(svg.contains("fill=\"#E6E6E6\""), "no light text");
        assert!(!svg.contains("fill=\"#FFFFFF\""), "white area on the dark theme");
        assert!(!svg.contains("fill=\"#000000\""), "black text on the dark theme");
    }
    let map = chart_svg(ChartKind::LayerStep, &labelled(&[&pre]), &PlotOptions { width: 900, height: 500, ..options }).unwrap();
    assert!(map.contains("fill=\"#1E1E1E\""), "heat map has no dark background");
}

#[test]
fn chart_svg_draws_every_kind() {
    let (pre, peri) = pre_and_peri();
    let options = PlotOptions { width: 640, height: 400, ..PlotOptions::default() };
    for kind in [ChartKind::Metric, ChartKind::Gradient, ChartKind::Loss, ChartKind::LayerStep] {
        for runs in [labelled(&[&pre]), labelled(&[&pre, &peri])] {
            let svg = chart_svg(kind, &runs, &options).unwrap();
            assert!(svg.starts_with("<svg width=\"640\" height=\"400\""), "{kind:?}: {}", &svg[..60]);
        }
    }
    let map = chart_svg(ChartKind::LayerStep, &labelled(&[&pre, &peri]), &options).unwrap();
    assert!(map.contains("Pre-LN only (first of 2 runs)"), "heat map title does not say which run it shows");
}

#[test]
fn chart_svg_rejects_tiny_size() {
    let run = trained_run(Placement::Pre);
    let options = PlotOptions { width: 50, height: 400, ..PlotOptions::default() };
    let error = chart_svg(ChartKind::Loss, &labelled(&[&run]), &options).unwrap_err();
    assert!(matches!(error, PlotError::InvalidSize { width: 50, min_width: 200, .. }), "{error}");
}

#[test]
fn report_has_settings_charts_and_tables() {
    let (pre, peri) = pre_and_peri();
    let options = PlotOptions { width: 800, height: 500, ..PlotOptions::default() };
    let html = html_report(&labelled(&[&pre, &peri]), &options, "Placement study").unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<title>Placement study</title>"));
    assert_eq!(html.matches("<svg width=\"800\" height=\"500\"").count(), 3, "metric, gradient and loss charts");
    assert!(html.contains("<tr class=\"differs\"><th>placement</th><td>Pre-LN</td><td>Peri-LN</td></tr>"), "placement row not highlighted");
    assert!(html.contains("<tr><th>layers L</th><td>2</td><td>2</td></tr>"), "shared setting highlighted or missing");
    assert_eq!(html.matches("<h4>Layers at step 20</h4>").count(), 2);
    assert_eq!(html.matches("<h4>Loss</h4>").count(), 2);
    assert!(html.contains("<th>max_token_norm</th>"));
    assert!(html.contains("<small>bound "), "no bound under the measured values");
    for external in ["<script", "src=", "href=", "url(", "@import", "<link"] {
        assert!(!html.contains(external), "report contains {external:?}");
    }
}

#[test]
fn report_escapes_run_text() {
    let mut run = trained_run(Placement::Pre);
    run.backend = "GPU <b>\"fast\"</b> & co".to_string();
    let runs = vec![ChartRun { run: &run, label: "<script>alert('label')</script>".to_string() }];
    let options = PlotOptions { width: 800, height: 500, ..PlotOptions::default() };
    let html = html_report(&runs, &options, "<script>alert('title')</script>").unwrap();
    assert!(!html.contains("<script"), "unescaped script tag");
    assert!(!html.contains("<b>"), "unescaped backend name");
    assert!(html.contains("<title>&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;</title>"));
    assert!(html.contains("<th>&lt;script&gt;alert(&#39;label&#39;)&lt;/script&gt;</th>"));
    assert!(html.contains("<h3>&lt;script&gt;alert(&#39;label&#39;)&lt;/script&gt;</h3>"));
    assert!(html.contains("GPU &lt;b&gt;&quot;fast&quot;&lt;/b&gt; &amp; co"));
}

#[test]
fn report_rejects_run_without_evaluations() {
    let mut run = trained_run(Placement::Pre);
    run.evals.clear();
    let error = html_report(&labelled(&[&run]), &PlotOptions::default(), "report").unwrap_err();
    assert!(matches!(error, PlotError::NoEvaluations { .. }), "{error}");
}
