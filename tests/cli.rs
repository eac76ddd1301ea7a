//! The `lnlab` command line, run as a user would: train each placement on
//! the default corpus with the standard preset, then evaluate, plot and
//! reject bad input with clear messages.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const LAYER_KEYS: [&str; 10] = [
    "mean_abs", "entry_var", "data_var", "rms", "max_abs", "max_token_norm", "grad_rms",
    "bound_max_token_norm", "bound_mean_abs", "bound_entry_var",
];

fn lnlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lnlab")).args(args).output().expect("lnlab runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lnlab-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Train the standard preset (8 layers, width 64, 4 heads, context 64,
/// batch 16) for a short run and return the parsed run file.
fn train_standard(dir: &Path, placement: &str, extra: &[&str]) -> Value {
    let out = dir.join(format!("{placement}.json"));
    let mut args = vec![
        "train", "--placement", placement, "--layers", "8", "--width", "64", "--heads", "4", "--context", "64",
        "--batch", "16", "--seed", "3", "--data", "moby-dick",
        "--backend", "cpu", "--out", out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let output = lnlab(&args);
    assert!(output.status.success(), "{placement}: {}", stderr(&output));
    read_json(&out)
}

#[test]
fn standard_preset_learns_for_every_placement() {
    let dir = scratch_dir("train");
    for placement in ["post", "pre", "peri", "none"] {
        let run = train_standard(&dir, placement, &["--steps", "60", "--eval-every", "30"]);
        assert_eq!(run["schema"], "lnlab-run");
        assert_eq!(run["schema_version"], 1);
        let vocab = run["model"]["vocab"].as_u64().unwrap() as f64;
        let evals = run["evals"].as_array().unwrap();
        assert_eq!(evals.iter().map(|e| e["step"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 30, 60]);

        let last_val = evals.last().unwrap()["val_loss"].as_f64().unwrap();
        assert!(last_val < 0.75 * vocab.ln(), "{placement}: validation loss {last_val} vs ln V = {}", vocab.ln());

        for eval in evals {
            let layers = eval["layers"].as_array().unwrap();
            assert_eq!(layers.len(), 9, "{placement}: L + 1 layers");
            for layer in layers {
                for key in LAYER_KEYS {
                    let value = layer[key].as_f64();
                    assert!(value.is_some_and(f64::is_finite), "{placement} step {}: {key} = {:?}", eval["step"], layer[key]);
                }
            }
            let blocks = eval["blocks"].as_array().unwrap();
            assert_eq!(blocks.len(), 8);
            for key in ["attention", "mlp", "layernorm"] {
                assert!(blocks.iter().all(|b| b[key].as_f64().is_some()), "{placement}: block {key}");
            }
        }
        let tokens = run["eval_batch"]["tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), 16 * 64);
        assert!(run["non_finite"].is_null());
    }
}

#[test]
fn save_eval_and_plot() {
    let dir = scratch_dir("eval");
    let checkpoint = dir.join("peri.safetensors");
    let run_path = dir.join("peri.json");
    let output = lnlab(&[
        "train", "--placement", "peri", "--layers", "2", "--width", "16", "--heads", "2", "--context", "16", "--batch", "4",
        "--steps", "5", "--eval-every", "5", "--seed", "5", "--data", "sort", "--out", run_path.to_str().unwrap(),
        "--save", checkpoint.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));

    // Evaluating the saved model with the run's seed and batch size measures
    // the run's evaluation batch and reproduces its last record.
    let eval_path = dir.join("eval.json");
    let output = lnlab(&[
        "eval", "--load", checkpoint.to_str().unwrap(), "--data", "sort", "--batch", "4", "--seed", "5",
        "--out", eval_path.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let run = read_json(&run_path);
    let eval = read_json(&eval_path);
    assert_eq!(eval["eval_batch"], run["eval_batch"]);
    let last = run["evals"].as_array().unwrap().last().unwrap();
    assert_eq!(eval["record"]["layers"], last["layers"]);
    assert_eq!(eval["record"]["val_loss"], last["val_loss"]);

    for name in ["fig.svg", "fig.png"] {
        let figure = dir.join(name);
        let output = lnlab(&["plot", run_path.to_str().unwrap(), "--out", figure.to_str().unwrap()]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert!(std::fs::metadata(&figure).unwrap().len() > 1000, "{name} is too small");
    }
}

#[test]
fn resume_from_checkpoint_keeps_settings() {
    let dir = scratch_dir("resume");
    let checkpoint = dir.join("post.safetensors");
    let first = dir.join("first.json");
    let common = ["--steps", "3", "--eval-every", "3", "--batch", "2", "--data", "copy"];
    let mut args = vec!["train", "--placement", "post", "--layers", "1", "--width", "8", "--heads", "2", "--context", "8", "--dt", "0.5"];
    args.extend_from_slice(&common);
    args.extend_from_slice(&["--out", first.to_str().unwrap(), "--save", checkpoint.to_str().unwrap()]);
    let output = lnlab(&args);
    assert!(output.status.success(), "{}", stderr(&output));

    let second = dir.join("second.json");
    let mut args = vec!["train", "--load", checkpoint.to_str().unwrap(), "--out", second.to_str().unwrap()];
    args.extend_from_slice(&common);
    let output = lnlab(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let run = read_json(&second);
    assert_eq!(run["model"]["placement"], "post");
    assert_eq!(run["model"]["dt"], 0.5);
    // The loaded weights are the first run's final weights, so the second
    // run starts where the first ended.
    let end_of_first = read_json(&first)["evals"].as_array().unwrap().last().unwrap()["val_loss"].clone();
    assert_eq!(run["evals"][0]["val_loss"], end_of_first);

    let output = lnlab(&["train", "--load", checkpoint.to_str().unwrap(), "--placement", "pre", "--out", second.to_str().unwrap(), "--data", "copy"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("invalid placement = pre"), "{}", stderr(&output));
}

#[test]
fn thread_count_leaves_results_unchanged() {
    let dir = scratch_dir("threads");
    let short = ["--steps", "6", "--eval-every", "3", "--eval-batches", "1"];
    let mut runs = Vec::new();
    for threads in ["1", "3"] {
        let mut extra = short.to_vec();
        extra.extend_from_slice(&["--threads", threads]);
        let run_dir = dir.join(threads);
        std::fs::create_dir_all(&run_dir).unwrap();
        let run = train_standard(&run_dir, "peri", &extra);
        runs.push(run["evals"].clone());
    }
    assert!(runs[0].as_array().is_some_and(|evals| evals.len() == 3), "{}", runs[0]);
    assert_eq!(runs[0], runs[1], "1 and 3 threads trained different numbers");
}

#[test]
fn invalid_settings_are_named() {
    let dir = scratch_dir("invalid");
    let out = dir.join("never.json");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&["--width", "30", "--heads", "4"], "invalid heads = 4: expected a divisor of width 30"),
        (&["--layers", "0"], "invalid layers = 0"),
        (&["--dt", "0"], "invalid dt = 0"),
        (&["--batch", "1"], "invalid batch = 1"),
        (&["--lr", "-1"], "invalid lr = -1"),
        (&["--data", "/nonexistent/corpus.txt"], "/nonexistent/corpus.txt"),
        (&["--threads", "0"], "invalid --threads 0: expected an integer in [1, 256]"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["train", "--steps", "1", "--out", out];
        args.extend_from_slice(flags);
        let output = lnlab(&args);
        assert!(!output.status.success(), "{flags:?} was accepted");
        assert!(stderr(&output).contains(message), "{flags:?}: {}", stderr(&output));
        assert!(!Path::new(out).exists(), "{flags:?} wrote a run file");
    }
}

#[test]
fn help_states_units_and_ranges() {
    let output = lnlab(&["train", "--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    for text in ["--placement", "Residual step Δt, a number in (0, 10]", "Model width d", "a divisor of the width", "--eval-every", "moby-dick"] {
        assert!(help.contains(text), "help lacks {text:?}:\n{help}");
    }
}

#[test]
fn tiny_text_file_is_rejected() {
    let dir = scratch_dir("tiny");
    let text = dir.join("tiny.txt");
    std::fs::write(&text, "too short").unwrap();
    let output = lnlab(&["train", "--data", text.to_str().unwrap(), "--out", dir.join("x.json").to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("tiny.txt"), "{}", stderr(&output));
}

/// Every key path in a JSON value, with array elements merged.
fn key_paths(value: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = format!("{prefix}.{key}");
                out.insert(path.clone());
                key_paths(child, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                key_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn gpu_backend_follows_cpu() {
    let dir = scratch_dir("gpu");
    let short = ["--steps", "3", "--eval-every", "3", "--eval-batches", "1"];
    let cpu = train_standard(&dir, "pre", &short);
    let gpu_out = dir.join("pre-gpu.json");
    let mut args = vec![
        "train", "--placement", "pre", "--layers", "8", "--width", "64", "--heads", "4", "--context", "64", "--batch", "16",
        "--seed", "3", "--data", "moby-dick", "--backend", "gpu", "--out", gpu_out.to_str().unwrap(),
    ];
    args.extend_from_slice(&short);
    let output = lnlab(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("software adapter"), "{}", stderr(&output));
    let gpu = read_json(&gpu_out);

    let backend = gpu["backend"].as_str().unwrap();
    assert!(backend.contains("llvmpipe") && backend.contains("Vulkan"), "backend {backend}");
    let (mut cpu_keys, mut gpu_keys) = (Default::default(), Default::default());
    key_paths(&cpu, "", &mut cpu_keys);
    key_paths(&gpu, "", &mut gpu_keys);
    assert_eq!(cpu_keys, gpu_keys);

    let losses = |run: &Value| -> Vec<f64> { run["step_losses"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };
    for (c, g) in losses(&cpu).iter().zip(losses(&gpu)) {
        assert!((c - g).abs() < 1e-3 * c.abs(), "step loss {g} on the GPU vs {c} on the CPU");
    }
    let val = |run: &Value| run["evals"][1]["val_loss"].as_f64().unwrap();
    assert!((val(&cpu) - val(&gpu)).abs() < 1e-3 * val(&cpu), "validation loss {} vs {}", val(&gpu), val(&cpu));
}

/// Trains one tiny run (2 layers, width 16, 5 steps on the sort task) the
/// first time it is called in this process and returns its run file, so the
/// plot and report tests share one training run.
fn tiny_run() -> &'static Path {
    static RUN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let path = scratch_dir("tiny-run").join("peri.json");
        let output = lnlab(&[
            "train", "--placement", "peri", "--layers", "2", "--width", "16", "--heads", "2", "--context", "16", "--batch", "4",
            "--steps", "5", "--eval-every", "5", "--seed", "5", "--data", "sort", "--out", path.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        path
    })
}

#[test]
fn plot_overlays_two_run_files() {
    let dir = scratch_dir("overlay");
    let run = tiny_run().to_str().unwrap();
    let figure = dir.join("overlay.svg");
    let output = lnlab(&["plot", run, run, "--label", "first", "--label", "second", "--theme", "dark", "--out", figure.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let svg = std::fs::read_to_string(&figure).unwrap();
    assert!(svg.contains("\nfirst\n"), "legend lacks the first label");
    assert!(svg.contains("\nsecond\n"), "legend lacks the second label");
    assert!(svg.contains("fill=\"#1E1E1E\""), "no dark background");

    let output = lnlab(&["plot", run, run, "--label", "only one", "--out", figure.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--label given once for 2 run files"), "{}", stderr(&output));
    let output = lnlab(&["plot", run, run, run, run, run, "--out", figure.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("at most 4"), "{}", stderr(&output));
}

#[test]
fn report_and_csv_are_written() {
    let dir = scratch_dir("report");
    let run = tiny_run().to_str().unwrap();
    let report = dir.join("report.html");
    let output = lnlab(&["report", run, "--title", "Peri-LN on sort", "--out", report.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<h1>Peri-LN on sort</h1>"));
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(html.contains("<h4>Layers at step 5</h4>"));

    let csv = dir.join("run.csv");
    let output = lnlab(&["csv", run, "--out", csv.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("step,lr,train_loss,val_loss,layer,mean_abs,"), "{}", &text[..80]);
    // Evaluations at steps 0 and 5, each with layers 0..=2.
    assert_eq!(text.lines().count(), 1 + 2 * 3);
}
