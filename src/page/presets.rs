//! The page's presets: small sets of runs that share a seed and data and
//! differ in one or two settings, each with a short text saying what the
//! charts show.
//!
//! The numbers quoted in the texts come from native runs of `lnlab train`
//! with the same settings (seed 1). `docs/presets.md` lists them layer by
//! layer, with the commands that reproduce them.

use crate::config::Placement;
use crate::data::synthetic::Task;
use crate::page::settings::{DataChoice, Settings};
use crate::plot::Metric;

/// One run of a preset: a legend label and the page settings it trains with.
#[derive(Clone, Debug, PartialEq)]
pub struct PresetRun {
    pub label: &'static str,
    pub settings: Settings,
}

/// A named set of runs that the page trains one after another and draws together.
#[derive(Clone, Debug, PartialEq)]
pub struct Preset {
    /// Identifier, one of [`IDS`].
    pub id: &'static str,
    pub title: &'static str,
    /// Two to four sentences: what to look for, the numbers seen, and what
    /// does not show at this scale.
    pub story: &'static str,
    /// Hidden-state metric that the charts open on.
    pub metric: Metric,
    pub runs: Vec<PresetRun>,
}

/// Identifiers of every preset, in the order [`all`] returns them.
pub const IDS: [&str; 7] = ["pre-vs-peri", "residual-step", "depth", "weight-decay", "post-ln-warmup", "no-ln", "too-fast"];

/// Maximum number of runs in one preset. At the presets' run lengths, four
/// runs take an estimated 30 to 40 s on the page's single-threaded CPU path.
pub const MAX_RUNS: usize = 4;

/// Returns every preset, in the order of [`IDS`].
pub fn all() -> Vec<Preset> {
    vec![pre_vs_peri(), residual_step(), depth(), weight_decay(), post_ln_warmup(), no_ln(), too_fast()]
}

/// Returns the preset with this identifier, or `None` if there is none.
pub fn find(id: &str) -> Option<Preset> {
    all().into_iter().find(|preset| preset.id == id)
}

/// Settings shared by the presets that watch hidden-state growth: the copy
/// task at learning rate 0.01. There Pre-LN's states keep growing from layer
/// to layer within 300 steps, while on Moby-Dick they jump at layer 1 and
/// then stay nearly flat.
fn copy_task_base() -> Settings {
    Settings { lr: "0.01".into(), data: DataChoice::Task(Task::Copy), ..Settings::default() }
}

fn run(label: &'static str, settings: Settings) -> PresetRun {
    PresetRun { label, settings }
}

fn pre_vs_peri() -> Preset {
    let base = copy_task_base();
    Preset {
        id: "pre-vs-peri",
        title: "Pre-LN against Peri-LN",
        story: "Pre-LN's max token norm jumps at layer 1 and keeps rising layer after layer, to about 960 at layer 8: \
                about eight times Peri-LN's 120. Peri-LN grows by a similar step per layer and stays under its linear \
                bound (about 155 at layer 8). Switch the metric to mean |x| or the variance across features to see the \
                same gap in the other moments. Neither model learns to copy in 300 steps (both losses stay near \
                ln 12 ≈ 2.48, the guessing level), so the growth comes from training itself, not from solving the task. \
                Numbers are from the page's CPU path; WebGPU and the command line round differently and land elsewhere \
                with the same shape.",


        metric: Metric::MaxTokenNorm,
        runs: vec![
            run("Pre-LN", Settings { placement: Placement::Pre, ..base.clone() }),
            run("Peri-LN", Settings { placement: Placement::Peri, ..base }),
        ],
    }
}

fn residual_step() -> Preset {
    let base = Settings { steps: "200".into(), ..copy_task_base() };
    let with = |placement: Placement, dt: &str| Settings { placement, dt: dt.into(), ..base.clone() };
    Preset {
        id: "residual-step",
        title: "Residual step Δt = 1 against Δt = 0.1",
        story: "Scaling every residual update by Δt = 0.1 makes the hidden states several times smaller: at layer 8 \
                the max token norm falls from about 500 to 40 for Pre-LN and from about 100 to 10 for Peri-LN. The \
                gradient reaching the layers grows instead, about 20 times at the last layer for Pre-LN and 13 times \
                for Peri-LN. The validation losses stay within 0.02 of each other, but none of the four models learns the copy task in \
                200 steps, so whether Δt < 1 costs accuracy is not tested here.",


        metric: Metric::MaxTokenNorm,
        runs: vec![
            run("Pre-LN, Δt = 1", with(Placement::Pre, "1")),
            run("Pre-LN, Δt = 0.1", with(Placement::Pre, "0.1")),
            run("Peri-LN, Δt = 1", with(Placement::Peri, "1")),
            run("Peri-LN, Δt = 0.1", with(Placement::Peri, "0.1")),
        ],
    }
}

/// Depth uses Peri-LN because its growth with the layer index is similar
/// at every depth. Pre-LN at the same settings ended with similar norms at
/// 4, 8 and 16 layers (about 630, 810 and 960), which shows no depth law.
fn depth() -> Preset {
    let base = Settings { placement: Placement::Peri, steps: "200".into(), ..copy_task_base() };
    let with = |layers: &str| Settings { layers: layers.into(), ..base.clone() };
    Preset {
        id: "depth",
        title: "Depth: 4, 8 and 16 layers with Peri-LN",
        story: "Peri-LN adds one LayerNorm output per half-step, so its hidden states grow by a similar amount at \
                each layer whatever the depth. The last layer's max token norm is about 60, 105 and 215 for 4, 8 and \
                16 layers, each under its linear bound (about 75, 145 and 290). Switch to the variance across features \
                to see it grow faster, under its quadratic bound. Pre-LN shows no clear depth law at this scale, which \
                is why this preset uses Peri-LN.",


        metric: Metric::MaxTokenNorm,
        runs: vec![run("4 layers", with("4")), run("8 layers", with("8")), run("16 layers", with("16"))],
    }
}

fn weight_decay() -> Preset {
    let base = Settings { placement: Placement::Pre, ..copy_task_base() };
    let with = |decay: &str| Settings { weight_decay: decay.into(), ..base.clone() };
    Preset {
        id: "weight-decay",
        title: "Weight decay against Pre-LN growth",
        story: "Strong weight decay holds Pre-LN's hidden states down: with decay 1 the max token norm at layer 8 is \
                about 100, a ninth of the 960 without decay, and the bound falls with it (about 770 against \
                5500) because it is computed from the weights. Decay 0.1 ends in between, near 370, but at this \
                length its effect is small enough that WebGPU or the command line, which round differently, can \
                land elsewhere. Decay is decoupled and scaled by the learning \
                rate, so decay 1 at rate 0.01 shrinks every matrix by 1% per step. The three losses stay near the \
                guessing level, because the copy task is not learned in 300 steps.",


        metric: Metric::MaxTokenNorm,
        runs: vec![run("no decay", with("0")), run("decay 0.1", with("0.1")), run("decay 1", with("1"))],
    }
}

fn post_ln_warmup() -> Preset {
    let base =
        Settings { placement: Placement::Post, layers: "16".into(), lr: "0.01".into(), steps: "200".into(), ..Settings::default() };
    let with = |warmup: &str| Settings { warmup: warmup.into(), ..base.clone() };
    Preset {
        id: "post-ln-warmup",
        title: "Post-LN at depth: without and with warm-up",
        story: "Watch the gradient chart, on its log scale. Without warm-up the 16-layer Post-LN model's loss spikes \
                early, the gradient at the first layers blows up and then vanishes: at step 200 it is about 2e-13 at \
                layer 1, against about 2e-3 at the top, and the loss is stuck near 3.15. With the rate warmed up over \
                150 steps, the gradient rms stays near 2e-3 from the first layer to the last and the loss reaches \
                2.62.",


        metric: Metric::MaxTokenNorm,
        runs: vec![run("no warm-up", with("0")), run("150-step warm-up", with("150"))],
    }
}

fn no_ln() -> Preset {
    let base = copy_task_base();
    Preset {
        id: "no-ln",
        title: "No LayerNorm: the exponential bound",
        story: "Without LayerNorm each branch's bound takes the previous layer's bound as its input, so the bound \
                multiplies at every layer: it reaches about 1e19 at layer 8, against about 5500 for Pre-LN. The \
                measured states stay small (max token norm about 12 at layer 8, against about 960 for Pre-LN), so this \
                bound is far from tight: it shows the exponential shape the analysis allows, not what this model does. \
                At this scale the model without LayerNorm trains without trouble and ends slightly lower (loss 2.30 \
                against 2.44).",


        metric: Metric::MaxTokenNorm,
        runs: vec![
            run("no LayerNorm", Settings { placement: Placement::None, ..base.clone() }),
            run("Pre-LN", Settings { placement: Placement::Pre, ..base }),
        ],
    }
}

fn too_fast() -> Preset {
    let base = Settings { lr: "1".into(), warmup: "0".into(), steps: "60".into(), eval_every: "3".into(), ..Settings::default() };
    Preset {
        id: "too-fast",
        title: "A learning rate far too large",
        story: "At learning rate 1 on Moby-Dick, LayerNorm decides whether the run survives. Pre-LN and Peri-LN keep \
                every state finite, but the loss climbs far above the guessing level ln 65 ≈ 4.2 instead of falling \
                (about 100 and 34 after 60 steps on the page's CPU path). The placements still differ: Pre-LN's max \
                token norm reaches about 2.4e7 at layer 8, while Peri-LN's stays near 2300, under its linear bound. \
                Without LayerNorm the states become NaN within the first steps: the page pauses, names the step and \
                the layer where the first non-finite value appeared, and offers to rewind to the last finite state \
                with a tenth of the learning rate. The diverging run trains last, so the other two are on the charts \
                when it stops.",


        metric: Metric::MaxTokenNorm,
        runs: vec![
            run("Pre-LN", Settings { placement: Placement::Pre, ..base.clone() }),
            run("Peri-LN", Settings { placement: Placement::Peri, ..base.clone() }),
            run("no LayerNorm", Settings { placement: Placement::None, ..base }),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Vocabulary size used to validate model settings, as in the settings tests.
    const VOCAB: usize = 65;

    #[test]
    fn ids_unique_and_match_all() {
        let ids: Vec<&str> = all().iter().map(|preset| preset.id).collect();
        assert_eq!(ids, IDS);
        let unique: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "duplicate id in {ids:?}");
    }

    #[test]
    fn every_run_validates() {
        for preset in all() {
            for run in &preset.runs {
                let context = format!("{} / {}", preset.id, run.label);
                assert!(run.settings.train_config().is_ok(), "{context}: {:?}", run.settings.train_config());
                assert!(run.settings.model_config(VOCAB).is_ok(), "{context}: {:?}", run.settings.model_config(VOCAB));
            }
        }
    }

    #[test]
    fn run_counts_within_limit() {
        for preset in all() {
            assert!(!preset.runs.is_empty(), "{} has no runs", preset.id);
            assert!(preset.runs.len() <= MAX_RUNS, "{} has {} runs", preset.id, preset.runs.len());
        }
    }

    #[test]
    fn runs_share_seed_and_data() {
        for preset in all() {
            let first = &preset.runs[0].settings;
            for run in &preset.runs[1..] {
                assert_eq!(run.settings.seed, first.seed, "{} / {}: seed", preset.id, run.label);
                assert_eq!(run.settings.data, first.data, "{} / {}: data", preset.id, run.label);
            }
        }
    }

    #[test]
    fn labels_unique_within_preset() {
        for preset in all() {
            let labels: HashSet<&str> = preset.runs.iter().map(|run| run.label).collect();
            assert_eq!(labels.len(), preset.runs.len(), "{}: duplicate label", preset.id);
        }
    }

    #[test]
    fn runs_differ_within_preset() {
        for preset in all() {
            let settings: Vec<&Settings> = preset.runs.iter().map(|run| &run.settings).collect();
            for (i, first) in settings.iter().enumerate() {
                for second in &settings[i + 1..] {
                    assert_ne!(first, second, "{}: two runs with the same settings", preset.id);
                }
            }
        }
    }

    /// Each run should give the charts about 15 to 30 measurements.
    #[test]
    fn evaluation_counts_in_range() {
        for preset in all() {
            for run in &preset.runs {
                let config = run.settings.train_config().unwrap();
                let evaluations = config.steps / config.eval_every + 1;
                assert!((15..=31).contains(&evaluations), "{} / {}: {evaluations} evaluations", preset.id, run.label);
            }
        }
    }

    #[test]
    fn find_known_and_unknown() {
        for id in IDS {
            let preset = find(id).unwrap_or_else(|| panic!("{id} not found"));
            assert_eq!(preset.id, id);
        }
        assert!(find("post-ln").is_none());
        assert!(find("").is_none());
    }
}
