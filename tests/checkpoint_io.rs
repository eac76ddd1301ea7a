//! Checkpoint round trips, the GPT-2 tensor layout, and rejection of
//! damaged or inconsistent files before any value is used.

use lnlab::config::{ModelConfig, Placement};
use lnlab::io::checkpoint::{self, CheckpointError};
use lnlab::model::Model;
use lnlab::rng::seeded;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::{BTreeSet, HashMap};

fn small_config(placement: Placement) -> ModelConfig {
    ModelConfig { placement, layers: 2, width: 8, heads: 2, context: 4, vocab: 5, ..ModelConfig::standard(5) }
}

fn gpt2_config() -> ModelConfig {
    ModelConfig { tied_head: true, head_bias: false, ..small_config(Placement::Pre) }
}

#[test]
fn round_trip_every_placement() {
    for placement in Placement::ALL {
        for embedding_ln in [false, true] {
            let config = ModelConfig { embedding_ln, ..small_config(placement) };
            let model = Model::<f32>::init(&config, &mut seeded(3));
            let bytes = checkpoint::save(&model, Some("abcde"));
            let loaded = checkpoint::load(&bytes, None).unwrap();
            assert_eq!(loaded.model.config, config);
            assert_eq!(loaded.model.params, model.params);
            assert_eq!(loaded.vocab.as_deref(), Some("abcde"));
        }
    }
}

#[test]
fn gpt2_architecture_uses_gpt2_names_only() {
    let model = Model::<f32>::init(&gpt2_config(), &mut seeded(1));
    let names: BTreeSet<String> = model.layout.tensors.iter().map(|t| t.name.clone()).collect();
    let mut expected = BTreeSet::new();
    for name in ["wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"] {
        expected.insert(name.to_string());
    }
    for l in 0..2 {
        for suffix in [
            "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
            "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
        ] {
            expected.insert(format!("h.{l}.{suffix}"));
        }
    }
    assert_eq!(names, expected);
    let shape = |name: &str| model.layout.tensors[model.layout.find(name).unwrap()].shape.clone();
    assert_eq!(shape("h.0.attn.c_attn.weight"), [8, 24]);
    assert_eq!(shape("h.1.mlp.c_fc.weight"), [8, 32]);
    assert_eq!(shape("h.1.mlp.c_proj.weight"), [32, 8]);
    assert_eq!(shape("wte.weight"), [5, 8]);
    assert_eq!(shape("wpe.weight"), [4, 8]);
}

#[test]
fn peri_adds_named_output_norms() {
    let model = Model::<f32>::init(&small_config(Placement::Peri), &mut seeded(1));
    for name in ["h.1.ln_attn_out.weight", "h.1.ln_mlp_out.bias", "lm_head.weight", "lm_head.bias"] {
        assert!(model.layout.find(name).is_some(), "{name} missing");
    }
}

/// Write a GPT-2 file as Hugging Face does: "transformer." prefixes, the
/// causal-mask buffers, no lnlab metadata, and the tied head stored again.
fn hugging_face_style(model: &Model<f32>) -> Vec<u8> {
    let mask = vec![1.0f32; 16];
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = model
        .layout
        .tensors
        .iter()
        .enumerate()
        .map(|(id, spec)| (format!("transformer.{}", spec.name), spec.shape.clone(), bytemuck::cast_slice(model.tensor(id)).to_vec()))
        .collect();
    for l in 0..model.config.layers {
        tensors.push((format!("transformer.h.{l}.attn.bias"), vec![1, 1, 4, 4], bytemuck::cast_slice(&mask).to_vec()));
    }
    let wte = model.tensor(model.layout.wte);
    tensors.push(("lm_head.weight".into(), vec![5, 8], bytemuck::cast_slice(wte).to_vec()));
    let views: Vec<(String, TensorView<'_>)> =
        tensors.iter().map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata)).unwrap()
}

#[test]
fn hugging_face_gpt2_file_loads() {
    let model = Model::<f32>::init(&gpt2_config(), &mut seeded(9));
    let bytes = hugging_face_style(&model);
    let loaded = checkpoint::load(&bytes, Some(2)).unwrap();
    assert_eq!(loaded.model.config, gpt2_config());
    assert_eq!(loaded.model.params, model.params);
    assert!(loaded.vocab.is_none());

    let error = checkpoint::load(&bytes, None).unwrap_err();
    assert!(matches!(error, CheckpointError::MissingConfig(_)), "{error}");
    assert!(error.to_string().contains("--heads"));
}

#[test]
fn truncated_body_rejected() {
    let model = Model::<f32>::init(&small_config(Placement::Pre), &mut seeded(1));
    let bytes = checkpoint::save(&model, None);
    for cut in [0, 5, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        let error = checkpoint::load(&bytes[..cut], None).unwrap_err();
        assert!(
            matches!(error, CheckpointError::Truncated { .. } | CheckpointError::Format(_)),
            "cut at {cut}: {error}"
        );
    }
}

#[test]
fn oversized_header_rejected() {
    let mut bytes = (u64::MAX / 2).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let error = checkpoint::load(&bytes, None).unwrap_err();
    assert!(matches!(error, CheckpointError::HeaderTooLarge { .. }), "{error}");
}

fn rewrite(model: &Model<f32>, config_json: &str, edit: impl Fn(&str, &mut Vec<usize>, &mut Vec<u8>) -> bool) -> Vec<u8> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (id, spec) in model.layout.tensors.iter().enumerate() {
        let (mut shape, mut data) = (spec.shape.clone(), bytemuck::cast_slice(model.tensor(id)).to_vec());
        if edit(&spec.name, &mut shape, &mut data) {
            tensors.push((spec.name.clone(), shape, data));
        }
    }
    let views: Vec<(String, TensorView<'_>)> =
        tensors.iter().map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
    let metadata = HashMap::from([(checkpoint::CONFIG_KEY.to_string(), config_json.to_string())]);
    safetensors::serialize(views, Some(metadata)).unwrap()
}

#[test]
fn wrong_shape_rejected() {
    let model = Model::<f32>::init(&small_config(Placement::Pre), &mut seeded(1));
    let config = serde_json::to_string(&model.config).unwrap();
    let bytes = rewrite(&model, &config, |name, shape, data| {
        if name == "h.0.mlp.c_fc.weight" {
            *shape = vec![32, 8];
        }
        let _ = data;
        true
    });
    let error = checkpoint::load(&bytes, None).unwrap_err();
    assert!(matches!(&error, CheckpointError::WrongShape { name, .. } if name == "h.0.mlp.c_fc.weight"), "{error}");
}

#[test]
fn config_disagreeing_with_tensors_rejected() {
    let model = Model::<f32>::init(&small_config(Placement::Pre), &mut seeded(1));
    // The metadata claims Peri-LN, whose output norms the file lacks.
    let peri = serde_json::to_string(&small_config(Placement::Peri)).unwrap();
    let error = checkpoint::load(&rewrite(&model, &peri, |_, _, _| true), None).unwrap_err();
    assert!(matches!(&error, CheckpointError::MissingTensor { name } if name.contains("ln_attn_out")), "{error}");

    // The metadata claims No LN, so the LayerNorm tensors are unexpected.
    let none = serde_json::to_string(&small_config(Placement::None)).unwrap();
    let error = checkpoint::load(&rewrite(&model, &none, |_, _, _| true), None).unwrap_err();
    assert!(matches!(error, CheckpointError::UnexpectedTensor { .. }), "{error}");

    // Invalid settings in the metadata.
    let bad = serde_json::to_string(&ModelConfig { heads: 3, ..small_config(Placement::Pre) }).unwrap();
    let error = checkpoint::load(&rewrite(&model, &bad, |_, _, _| true), None).unwrap_err();
    assert!(matches!(error, CheckpointError::BadConfig(_)), "{error}");

    let error = checkpoint::load(&rewrite(&model, "{not json", |_, _, _| true), None).unwrap_err();
    assert!(matches!(error, CheckpointError::BadConfig(_)), "{error}");
}

#[test]
fn missing_tensor_rejected() {
    let model = Model::<f32>::init(&small_config(Placement::Post), &mut seeded(1));
    let config = serde_json::to_string(&model.config).unwrap();
    let bytes = rewrite(&model, &config, |name, _, _| name != "h.1.ln_2.bias");
    let error = checkpoint::load(&bytes, None).unwrap_err();
    assert!(matches!(&error, CheckpointError::MissingTensor { name } if name == "h.1.ln_2.bias"), "{error}");
}
