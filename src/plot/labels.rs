//! Legend labels that tell overlaid runs apart by the settings in which
//! they differ.

use crate::config::OptimizerKind;
use crate::io::run_file::RunFile;

/// Maximum length, in characters, of a backend or data-file name in a
/// label. Longer names are cut and end in "…".
const MAX_NAME_CHARS: usize = 24;

/// One setting that a label can name: the full value, which decides whether
/// two runs differ, and the short text that the label shows.
struct LabelPart {
    value: String,
    text: String,
}

fn part(value: impl ToString, text: String) -> LabelPart {
    LabelPart { value: value.to_string(), text }
}

/// Cuts `text` to [`MAX_NAME_CHARS`] characters.
fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_NAME_CHARS {
        return text.to_string();
    }
    let kept: String = text.chars().take(MAX_NAME_CHARS - 1).collect();
    format!("{kept}…")
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// Returns the settings a label compares, in the order a label names them.
/// Numbers use Rust's shortest round-trip formatting, so two different
/// values never print alike.
fn label_parts(run: &RunFile) -> Vec<LabelPart> {
    let (model, train) = (&run.model, &run.train);
    let data = run.data.name();
    // A data file is named by its file name alone, but compared by its whole path.
    let data_text = std::path::Path::new(&data).file_name().map_or(data.clone(), |name| name.to_string_lossy().into_owned());
    let optimiser = match train.optimizer {
        OptimizerKind::Adamw => "AdamW",
        OptimizerKind::Sgd => "SGD",
    };
    vec![
        part(model.placement, model.placement.label().to_string()),
        part(model.layers, plural(model.layers, "layer")),
        part(model.width, format!("width {}", model.width)),
        part(model.heads, plural(model.heads, "head")),
        part(model.context, format!("context {}", model.context)),
        part(model.dt, format!("Δt {}", model.dt)),
        part(train.lr, format!("lr {}", train.lr)),
        part(train.warmup, format!("warm-up {}", train.warmup)),
        part(train.weight_decay, format!("weight decay {}", train.weight_decay)),
        part(optimiser, optimiser.to_string()),
        part(train.batch, format!("batch {}", train.batch)),
        part(train.steps, plural(train.steps, "step")),
        part(train.seed, format!("seed {}", train.seed)),
        part(&data, format!("data {}", shorten(&data_text))),
        part(&run.backend, shorten(&run.backend)),
    ]
}

/// Indices into [`label_parts`] of the fallback label: placement, layers and Δt.
const FALLBACK_PARTS: [usize; 3] = [0, 1, 5];

/// Returns a short legend label per run that names only the settings in
/// which the runs differ, such as "Pre-LN" and "Peri-LN", or "Δt 1" and
/// "Δt 0.1". The settings compared are placement, layers, width, heads,
/// context, Δt, learning rate, warm-up, weight decay, optimiser, batch,
/// steps, seed, data and backend.
///
/// A single run, or runs alike in all of these, get "Pre-LN, 8 layers, Δt 1"
/// instead. Runs whose labels would coincide get ", run N" appended, N
/// counting from 1 in the order given, so the labels are always distinct.
pub fn difference_labels(runs: &[&RunFile]) -> Vec<String> {
    let parts: Vec<Vec<LabelPart>> = runs.iter().map(|run| label_parts(run)).collect();
    let Some(first) = parts.first() else {
        return Vec::new();
    };
    let differing: Vec<usize> =
        (0..first.len()).filter(|&i| parts.iter().any(|run_parts| run_parts[i].value != first[i].value)).collect();
    let shown: &[usize] = if differing.is_empty() { &FALLBACK_PARTS } else { &differing };

    let mut labels: Vec<String> = parts
        .iter()
        .map(|run_parts| shown.iter().map(|&i| run_parts[i].text.as_str()).collect::<Vec<_>>().join(", "))
        .collect();
    let duplicated: Vec<bool> = labels.iter().map(|label| labels.iter().filter(|other| *other == label).count() > 1).collect();
    for (index, label) in labels.iter_mut().enumerate() {
        if duplicated[index] {
            label.push_str(&format!(", run {}", index + 1));
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DataConfig, ModelConfig, Placement, TrainConfig};
    use crate::io::run_file::{EvalBatch, SCHEMA_NAME, SCHEMA_VERSION};

    fn run() -> RunFile {
        RunFile {
            schema: SCHEMA_NAME.to_string(),
            schema_version: SCHEMA_VERSION,
            lnlab_version: "0.1.0".to_string(),
            backend: "cpu".to_string(),
            model: ModelConfig::standard(40),
            train: TrainConfig::default(),
            data: DataConfig::MobyDick,
            vocab: String::new(),
            parameters: 0,
            eval_batch: EvalBatch { batch: 0, context: 0, tokens: Vec::new(), targets: Vec::new() },
            step_losses: Vec::new(),
            evals: Vec::new(),
            non_finite: None,
        }
    }

    fn labels_of(runs: &[RunFile]) -> Vec<String> {
        difference_labels(&runs.iter().collect::<Vec<_>>())
    }

    #[test]
    fn placement_alone_differs() {
        let mut peri = run();
        peri.model.placement = Placement::Peri;
        assert_eq!(labels_of(&[run(), peri]), ["Pre-LN", "Peri-LN"]);
    }

    #[test]
    fn dt_alone_differs() {
        let mut small = run();
        small.model.dt = 0.1;
        assert_eq!(labels_of(&[run(), small]), ["Δt 1", "Δt 0.1"]);
    }

    #[test]
    fn two_settings_differ() {
        let mut deep = run();
        deep.model.layers = 16;
        deep.model.placement = Placement::Post;
        assert_eq!(labels_of(&[run(), deep]), ["Pre-LN, 8 layers", "Post-LN, 16 layers"]);
    }

    #[test]
    fn single_run_gets_fallback() {
        assert_eq!(labels_of(&[run()]), ["Pre-LN, 8 layers, Δt 1"]);
    }

    #[test]
    fn identical_runs_are_numbered() {
        assert_eq!(labels_of(&[run(), run()]), ["Pre-LN, 8 layers, Δt 1, run 1", "Pre-LN, 8 layers, Δt 1, run 2"]);
    }

    #[test]
    fn uncompared_difference_is_numbered() {
        let mut tied = run();
        tied.model.tied_head = true;
        assert_eq!(labels_of(&[run(), tied]), ["Pre-LN, 8 layers, Δt 1, run 1", "Pre-LN, 8 layers, Δt 1, run 2"]);
    }

    #[test]
    fn repeated_run_among_others_is_numbered() {
        let mut peri = run();
        peri.model.placement = Placement::Peri;
        assert_eq!(labels_of(&[run(), peri, run()]), ["Pre-LN, run 1", "Peri-LN", "Pre-LN, run 3"]);
    }

    /// A change to one setting and the label it should give.
    type Change = (fn(&mut RunFile), &'static str);

    #[test]
    fn every_compared_setting_is_named() {
        let base = run();
        let changes: [Change; 15] = [
            (|r| r.model.placement = Placement::None, "No LN"),
            (|r| r.model.layers = 1, "1 layer"),
            (|r| r.model.width = 32, "width 32"),
            (|r| r.model.heads = 1, "1 head"),
            (|r| r.model.context = 16, "context 16"),
            (|r| r.model.dt = 0.5, "Δt 0.5"),
            (|r| r.train.lr = 1e-4, "lr 0.0001"),
            (|r| r.train.warmup = 0, "warm-up 0"),
            (|r| r.train.weight_decay = 0.1, "weight decay 0.1"),
            (|r| r.train.optimizer = OptimizerKind::Sgd, "SGD"),
            (|r| r.train.batch = 4, "batch 4"),
            (|r| r.train.steps = 1, "1 step"),
            (|r| r.train.seed = 9, "seed 9"),
            (|r| r.data = DataConfig::File { path: "/home/student/texts/poems.txt".into() }, "data poems.txt"),
            (|r| r.backend = "NVIDIA GeForce RTX 4090 (Vulkan)".into(), "NVIDIA GeForce RTX 4090…"),
        ];
        for (change, expected) in changes {
            let mut changed = run();
            change(&mut changed);
            let labels = labels_of(&[base.clone(), changed]);
            assert_eq!(labels[1], expected);
        }
    }

    #[test]
    fn labels_are_unique() {
        let mut runs = vec![run(), run(), run(), run()];
        runs[1].model.placement = Placement::Peri;
        runs[3].model.placement = Placement::Peri;
        let labels = labels_of(&runs);
        for (i, label) in labels.iter().enumerate() {
            assert_eq!(labels.iter().filter(|other| *other == label).count(), 1, "label {i} {label:?} in {labels:?}");
        }
    }

    #[test]
    fn no_runs_give_no_labels() {
        assert!(difference_labels(&[]).is_empty());
    }
}
