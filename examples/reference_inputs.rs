//! Writes the inputs of the PyTorch agreement test: one small perturbed
//! checkpoint per LayerNorm placement and one batch, under
//! `tests/fixtures/reference/`.
//!
//! Regenerate the inputs and the expected values with
//!
//! ```text
//! cargo run --release --example reference_inputs
//! .venv-torch/bin/python scripts/torch_reference.py
//! ```
//!
//! The shapes are small and deliberately unequal (d = 6 split into 3 heads
//! of 2, MLP width 24, T = 5 of a context of 7, V = 11) so that a swapped
//! axis or a wrong head slice changes the values. Across the four models the
//! set covers Δt = 0.7 and 1, a tied head, a head without bias and the
//! embedding LayerNorm.

use lnlab::config::{ModelConfig, Placement};
use lnlab::io::checkpoint;
use lnlab::model::Model;
use lnlab::rng::seeded;
use rand::Rng;
use std::path::Path;

const LAYERS: usize = 2;
const WIDTH: usize = 6;
const HEADS: usize = 3;
const CONTEXT: usize = 7;
const VOCAB: usize = 11;
/// Sequences in the batch.
const BATCH: usize = 2;
/// Positions per sequence, fewer than `CONTEXT` so that the last rows of
/// `wpe` stay unused and must get a zero gradient.
const POSITIONS: usize = 5;
/// Half-width of the uniform noise added to every parameter after
/// initialisation, so that LayerNorm gains and biases differ from 1 and 0
/// and every path carries a gradient.
const NOISE: f32 = 0.3;

/// One fixture model: its file stem and its settings.
struct Case {
    name: &'static str,
    config: ModelConfig,
    seed: u64,
}

fn config(placement: Placement, dt: f64, tied_head: bool, head_bias: bool, embedding_ln: bool) -> ModelConfig {
    ModelConfig {
        placement,
        layers: LAYERS,
        width: WIDTH,
        heads: HEADS,
        context: CONTEXT,
        vocab: VOCAB,
        dt,
        tied_head,
        head_bias,
        embedding_ln,
        scaled_residual_init: true,
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case { name: "post", config: config(Placement::Post, 0.7, false, true, false), seed: 101 },
        // GPT-2's head: tied to `wte`, no bias.
        Case { name: "pre", config: config(Placement::Pre, 1.0, true, false, false), seed: 102 },
        Case { name: "peri", config: config(Placement::Peri, 0.7, false, true, true), seed: 103 },
        Case { name: "none", config: config(Placement::None, 1.0, false, true, true), seed: 104 },
    ]
}

/// Initialises with the GPT-2 recipe, then adds uniform noise in
/// [-NOISE, NOISE) to every parameter from the same generator.
fn perturbed_model(config: &ModelConfig, seed: u64) -> Model<f32> {
    let mut rng = seeded(seed);
    let mut model = Model::<f32>::init(config, &mut rng);
    for value in model.params.iter_mut() {
        *value += rng.random_range(-NOISE..NOISE);
    }
    model
}

fn batch_json(seed: u64) -> serde_json::Value {
    let mut rng = seeded(seed);
    let count = BATCH * POSITIONS;
    let tokens: Vec<u32> = (0..count).map(|_| rng.random_range(0..VOCAB as u32)).collect();
    let targets: Vec<u32> = (0..count).map(|_| rng.random_range(0..VOCAB as u32)).collect();
    serde_json::json!({
        "batch": BATCH,
        "context": POSITIONS,
        "tokens": tokens,
        "targets": targets,
    })
}

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference");
    std::fs::create_dir_all(&dir)?;

    for case in cases() {
        let model = perturbed_model(&case.config, case.seed);
        let path = dir.join(format!("{}.safetensors", case.name));
        std::fs::write(&path, checkpoint::save(&model, None))?;
        println!("wrote {}", path.display());
    }

    let path = dir.join("batch.json");
    let text = serde_json::to_string(&batch_json(7)).expect("batch serialises");
    std::fs::write(&path, text + "\n")?;
    println!("wrote {}", path.display());
    Ok(())
}
