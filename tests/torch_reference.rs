//! Agreement with an independent PyTorch implementation of the model.
//!
//! `tests/fixtures/reference/` contains one small perturbed checkpoint per
//! LayerNorm placement, a batch, and for each checkpoint the loss, residual
//! states, state gradients and parameter gradients that
//! `scripts/torch_reference.py` computed in float64. CI does not run that
//! script, so the fixtures are committed. To regenerate them:
//!
//! ```text
//! cargo run --release --example reference_inputs
//! .venv-torch/bin/python scripts/torch_reference.py
//! ```

use lnlab::io::checkpoint;
use lnlab::model::Model;
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Maximum error relative to the largest magnitude in the expected tensor.
/// Both sides compute in f64 from the same f32 parameters, so they differ
/// only by f64 rounding in a different order of operations: below 2e-15 on
/// these fixtures. A wrong sign, scale or index in any term is far larger,
/// and even GELU's erf form in place of the tanh form moves some tensor by
/// more than 2e-4.
const RELATIVE_TOLERANCE: f64 = 1e-5;

/// Lower bound on the scale of a tensor, so that a tensor whose expected
/// values are all near zero is compared absolutely.
const SCALE_FLOOR: f64 = 1e-8;

/// The checkpoints `examples/reference_inputs.rs` writes, one per placement.
const MODELS: [&str; 4] = ["post", "pre", "peri", "none"];

const REGENERATE: &str =
    "regenerate with `cargo run --release --example reference_inputs && .venv-torch/bin/python scripts/torch_reference.py`";

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference")
}

fn read_fixture(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {} cannot be read ({e}); {REGENERATE}", path.display()))
}

/// The batch every reference model runs on.
struct Batch {
    tokens: Vec<u32>,
    targets: Vec<u32>,
    batch: usize,
    context: usize,
}

fn load_batch() -> Batch {
    let json: serde_json::Value = serde_json::from_slice(&read_fixture("batch.json")).expect("batch.json is valid JSON");
    let ids = |key: &str| -> Vec<u32> {
        json[key]
            .as_array()
            .unwrap_or_else(|| panic!("batch.json is missing the array {key}; {REGENERATE}"))
            .iter()
            .map(|v| v.as_u64().expect("token ids are non-negative integers") as u32)
            .collect()
    };
    let count = |key: &str| json[key].as_u64().unwrap_or_else(|| panic!("batch.json is missing the integer {key}; {REGENERATE}")) as usize;
    Batch { tokens: ids("tokens"), targets: ids("targets"), batch: count("batch"), context: count("context") }
}

/// Reads a float64 tensor of the expected-values file, with its shape.
fn expected_tensor(file: &SafeTensors<'_>, model: &str, name: &str) -> (Vec<usize>, Vec<f64>) {
    let view = file.tensor(name).unwrap_or_else(|e| panic!("{model}: expected values are missing {name} ({e}); {REGENERATE}"));
    assert_eq!(view.dtype(), Dtype::F64, "{model}: {name} is {:?}, expected F64", view.dtype());
    let values = view.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("eight bytes"))).collect();
    (view.shape().to_vec(), values)
}

/// Computes the error of `actual` relative to the scale of `expected`,
/// max|a − b| / max(max|b|, SCALE_FLOOR).
fn relative_error(model: &str, name: &str, actual: &[f64], expected: &[f64]) -> f64 {
    assert_eq!(actual.len(), expected.len(), "{model}: {name} has {} values, expected {}", actual.len(), expected.len());
    let scale = expected.iter().fold(0.0f64, |m, b| m.max(b.abs())).max(SCALE_FLOOR);
    let max_diff = actual.iter().zip(expected).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(max_diff.is_finite(), "{model}: {name} has a non-finite value");
    max_diff / scale
}

/// Runs one reference model and returns the largest relative error over
/// all compared tensors. Panics on the first tensor beyond the tolerance.
fn check_model(name: &str, batch: &Batch) -> f64 {
    let bytes = read_fixture(&format!("{name}.safetensors"));
    let model: Model<f64> = checkpoint::load(&bytes, None).expect("reference checkpoint loads").model.cast::<f64>();
    let expected_bytes = read_fixture(&format!("{name}.expected.safetensors"));
    let expected = SafeTensors::deserialize(&expected_bytes).expect("expected values are valid safetensors");

    let pass = model.forward(&batch.tokens, &batch.targets, batch.batch, None).expect("batch fits the model");
    let grads = model.backward(&pass, None);

    let mut worst = 0.0f64;
    let mut compare = |label: &str, actual: &[f64], expected: &[f64]| {
        let error = relative_error(name, label, actual, expected);
        assert!(error <= RELATIVE_TOLERANCE, "{name}: {label} differs from PyTorch by {error:.3e} relative");
        worst = worst.max(error);
    };

    let (loss_shape, loss) = expected_tensor(&expected, name, "loss");
    assert_eq!(loss_shape, [1], "{name}: loss has shape {loss_shape:?}");
    compare("loss", &[pass.loss], &loss);

    let layers = model.config.layers;
    assert_eq!(pass.states.len(), 2 * layers + 1, "{name}: forward pass kept {} states", pass.states.len());
    assert_eq!(grads.states.len(), pass.states.len(), "{name}: backward pass returned {} state gradients", grads.states.len());
    let state_shape = [batch.batch, batch.context, model.config.width];
    for i in 0..=2 * layers {
        let (shape, state) = expected_tensor(&expected, name, &format!("state.{i}"));
        assert_eq!(shape, state_shape, "{name}: state.{i} has shape {shape:?}");
        compare(&format!("state.{i}"), &pass.states[i], &state);

        let (shape, state_grad) = expected_tensor(&expected, name, &format!("state_grad.{i}"));
        assert_eq!(shape, state_shape, "{name}: state_grad.{i} has shape {shape:?}");
        compare(&format!("state_grad.{i}"), &grads.states[i], &state_grad);
    }

    for spec in &model.layout.tensors {
        let key = format!("grad.{}", spec.name);
        let (shape, grad) = expected_tensor(&expected, name, &key);
        assert_eq!(shape, spec.shape, "{name}: {key} has shape {shape:?}, expected {:?}", spec.shape);
        compare(&key, &grads.params[spec.range()], &grad);
    }

    // The fixture must not describe parameters this model lacks, such as
    // lm_head.weight for a tied head.
    let model_names: BTreeSet<String> = model.layout.tensors.iter().map(|t| format!("grad.{}", t.name)).collect();
    let extra: Vec<&str> = expected.names().into_iter().filter(|n| n.starts_with("grad.") && !model_names.contains(*n)).collect();
    assert!(extra.is_empty(), "{name}: expected values have gradients for tensors the model lacks: {extra:?}");

    worst
}

#[test]
fn reference_fixtures_cover_placements() {
    let mut placements = BTreeSet::new();
    let mut dts = BTreeSet::new();
    let (mut tied, mut untied, mut embedding_ln) = (false, false, false);
    for name in MODELS {
        let config = checkpoint::load(&read_fixture(&format!("{name}.safetensors")), None).expect("reference checkpoint loads").model.config;
        placements.insert(config.placement.name());
        dts.insert(config.dt.to_bits());
        tied |= config.tied_head;
        untied |= !config.tied_head;
        embedding_ln |= config.embedding_ln;
    }
    assert_eq!(placements.len(), 4, "fixtures cover placements {placements:?}, expected all four");
    assert!(dts.len() >= 2, "fixtures use a single Δt");
    assert!(tied, "no fixture has a tied head");
    assert!(untied, "no fixture has an untied head");
    assert!(embedding_ln, "no fixture has an embedding LayerNorm");
}

#[test]
fn forward_and_gradients_match_pytorch() {
    let batch = load_batch();
    for name in MODELS {
        let worst = check_model(name, &batch);
        println!("{name}: max relative error {worst:.3e} (tolerance {RELATIVE_TOLERANCE:e})");
    }
}
