//! Checkpoints in safetensors format.
//!
//! Tensor names and shapes are those of [`crate::model::params`]: the
//! Hugging Face GPT-2 layout, plus clearly named extras for what GPT-2 lacks.
//! A model of GPT-2's architecture (Pre-LN, tied head without bias, Δt = 1,
//! no embedding LN) therefore writes exactly GPT-2's tensors, and GPT-2
//! checkpoints load when the number of heads is given. The model
//! configuration and vocabulary travel in the safetensors metadata under
//! `lnlab_config` (JSON) and `lnlab_vocab`.
//!
//! Loading is all or nothing: every tensor is checked against the
//! configuration before any value is used.

use crate::config::{ModelConfig, Placement};
use crate::data::Vocab;
use crate::model::{Layout, Model};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorView};
use std::collections::HashMap;

pub const CONFIG_KEY: &str = "lnlab_config";
pub const VOCAB_KEY: &str = "lnlab_vocab";
/// Largest checkpoint accepted (the largest model the limits allow is far smaller).
pub const MAX_CHECKPOINT_BYTES: usize = 1 << 30;
/// Largest JSON header accepted; a model's header is a few kilobytes per block.
pub const MAX_HEADER_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint is {size} bytes, larger than the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("checkpoint is too short to hold a safetensors header ({size} bytes)")]
    Truncated { size: usize },
    #[error("checkpoint header declares {size} bytes, over the {max}-byte limit")]
    HeaderTooLarge { size: u64, max: usize },
    #[error("checkpoint is not valid safetensors: {0}")]
    Format(String),
    #[error("checkpoint metadata {CONFIG_KEY} is invalid: {0}")]
    BadConfig(String),
    #[error("checkpoint metadata {VOCAB_KEY} is invalid: {0}")]
    BadVocab(String),
    #[error("checkpoint has both tensor {name} and transformer.{name}; keep one of them")]
    DuplicateTensor { name: String },
    #[error("checkpoint has no {CONFIG_KEY} metadata and no GPT-2 tensors to infer it from; {0}")]
    MissingConfig(String),
    #[error("checkpoint lacks tensor {name}")]
    MissingTensor { name: String },
    #[error("checkpoint has tensor {name}, which a {placement} model with these settings does not use")]
    UnexpectedTensor { name: String, placement: Placement },
    #[error("tensor {name} has shape {found:?}, expected {expected:?}")]
    WrongShape { name: String, found: Vec<usize>, expected: Vec<usize> },
    #[error("tensor {name} has dtype {found}; F32 or F64 expected")]
    WrongDtype { name: String, found: String },
    #[error("tensor lm_head.weight differs from wte.weight in a model with a tied head")]
    UntiedHead,
}

/// A loaded checkpoint: the model and, when stored, its vocabulary.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub model: Model<f32>,
    pub vocab: Option<String>,
}

/// Serialise a model; `vocab` is the tokenizer's characters in id order.
pub fn save(model: &Model<f32>, vocab: Option<&str>) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = model
        .layout
        .tensors
        .iter()
        .enumerate()
        .map(|(id, spec)| {
            let bytes: &[u8] = bytemuck::cast_slice(model.tensor(id));
            let view = TensorView::new(Dtype::F32, spec.shape.clone(), bytes).expect("tensor bytes match its shape");
            (spec.name.clone(), view)
        })
        .collect();
    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    metadata.insert(CONFIG_KEY.to_string(), serde_json::to_string(&model.config).expect("configuration serialises"));
    if let Some(vocab) = vocab {
        metadata.insert(VOCAB_KEY.to_string(), vocab.to_string());
    }
    // NOTE: safetensors requires little-endian data, which bytemuck gives on
    // every target lnlab builds for (x86_64, aarch64, wasm32).
    safetensors::serialize(views, Some(metadata)).expect("layout names are unique")
}

/// Parse and check a checkpoint. `heads` is needed only for GPT-2 files
/// without lnlab metadata, since the head count is not visible in the shapes.
pub fn load(bytes: &[u8], heads: Option<usize>) -> Result<Checkpoint, CheckpointError> {
    if bytes.len() > MAX_CHECKPOINT_BYTES {
        return Err(CheckpointError::TooLarge { size: bytes.len(), max: MAX_CHECKPOINT_BYTES });
    }
    if bytes.len() < 8 {
        return Err(CheckpointError::Truncated { size: bytes.len() });
    }
    let header_size = u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes"));
    if header_size > MAX_HEADER_BYTES as u64 {
        return Err(CheckpointError::HeaderTooLarge { size: header_size, max: MAX_HEADER_BYTES });
    }
    let after_length_field = bytes.len() - 8;
    if header_size > after_length_field as u64 {
        return Err(CheckpointError::Format(format!(
            "the header length field declares {header_size} bytes, but only {after_length_field} bytes follow it, so the file is truncated"
        )));
    }
    let file = SafeTensors::deserialize(bytes).map_err(format_error)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(format_error)?;
    let metadata = header.metadata().clone().unwrap_or_default();

    // Hugging Face GPT2LMHeadModel files prefix names with "transformer.".
    let mut tensors: HashMap<String, TensorView<'_>> = HashMap::new();
    for (name, view) in file.tensors() {
        let name = name.strip_prefix("transformer.").map(str::to_string).unwrap_or(name);
        if tensors.contains_key(&name) {
            return Err(CheckpointError::DuplicateTensor { name });
        }
        tensors.insert(name, view);
    }

    let config = match metadata.get(CONFIG_KEY) {
        Some(text) => serde_json::from_str::<ModelConfig>(text).map_err(|e| CheckpointError::BadConfig(e.to_string()))?,
        None => infer_gpt2_config(&tensors, heads)?,
    };
    config.validate().map_err(|e| CheckpointError::BadConfig(e.to_string()))?;
    let vocab = metadata.get(VOCAB_KEY).cloned();
    if let Some(vocab) = &vocab {
        check_vocab(vocab, config.vocab)?;
    }

    // Check every shape before allocating. The configuration alone may ask
    // for gigabytes, but tensors whose shapes match it fit inside the file.
    let layout = Layout::new(&config);
    let mut views = Vec::with_capacity(layout.tensors.len());
    for spec in &layout.tensors {
        let view = tensors.get(&spec.name).ok_or_else(|| CheckpointError::MissingTensor { name: spec.name.clone() })?;
        if view.shape() != spec.shape.as_slice() {
            return Err(CheckpointError::WrongShape { name: spec.name.clone(), found: view.shape().to_vec(), expected: spec.shape.clone() });
        }
        views.push(view);
    }
    let mut params = vec![0.0f32; layout.total];
    for (spec, view) in layout.tensors.iter().zip(views) {
        read_f32(&spec.name, view, &mut params[spec.range()])?;
    }
    for (name, view) in &tensors {
        if layout.find(name).is_some() || is_ignorable(name, view) {
            continue;
        }
        if name == "lm_head.weight" && config.tied_head {
            // A tied head saved as its own tensor must equal the embedding.
            let mut head = vec![0.0f32; view.shape().iter().product()];
            read_f32(name, view, &mut head)?;
            if head.as_slice() != layout.get(&params, layout.wte) {
                return Err(CheckpointError::UntiedHead);
            }
            continue;
        }
        return Err(CheckpointError::UnexpectedTensor { name: name.clone(), placement: config.placement });
    }
    Ok(Checkpoint { model: Model::from_params(&config, params), vocab })
}

/// Rewords the safetensors errors whose own text does not say what to fix.
fn format_error(error: SafeTensorError) -> CheckpointError {
    let message = match error {
        SafeTensorError::MetadataIncompleteBuffer => {
            "the tensor data does not end where the header's last data offset says; the file is truncated or has extra bytes".to_string()
        }
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's data offsets span a different number of bytes than its shape and dtype need".to_string()
        }
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor {name} has invalid data offsets; each tensor must start where the previous one ends")
        }
        SafeTensorError::MisalignedSlice => "a tensor's shape and dtype do not fill a whole number of bytes".to_string(),
        other => other.to_string(),
    };
    CheckpointError::Format(message)
}

/// Checks the stored vocabulary: distinct characters in ascending order, as
/// many as the configuration's `vocab` setting.
fn check_vocab(vocab: &str, expected: usize) -> Result<(), CheckpointError> {
    let chars: Vec<char> = vocab.chars().collect();
    let count = chars.len();
    Vocab::from_chars(chars).map_err(|e| CheckpointError::BadVocab(e.to_string()))?;
    if count != expected {
        return Err(CheckpointError::BadVocab(format!("it has {count} characters, but the model configuration has vocab = {expected}")));
    }
    Ok(())
}

/// GPT-2 files carry the causal mask as `h.{l}.attn.bias` (4-D) and
/// `h.{l}.attn.masked_bias`; they are constants, not parameters.
fn is_ignorable(name: &str, view: &TensorView<'_>) -> bool {
    name.ends_with(".attn.masked_bias") || (name.ends_with(".attn.bias") && view.shape().len() == 4)
}

fn read_f32(name: &str, view: &TensorView<'_>, out: &mut [f32]) -> Result<(), CheckpointError> {
    let data = view.data();
    match view.dtype() {
        Dtype::F32 => {
            for (value, chunk) in out.iter_mut().zip(data.chunks_exact(4)) {
                *value = f32::from_le_bytes(chunk.try_into().expect("four bytes"));
            }
        }
        Dtype::F64 => {
            for (value, chunk) in out.iter_mut().zip(data.chunks_exact(8)) {
                *value = f64::from_le_bytes(chunk.try_into().expect("eight bytes")) as f32;
            }
        }
        other => return Err(CheckpointError::WrongDtype { name: name.to_string(), found: format!("{other:?}") }),
    }
    Ok(())
}

/// Settings of a plain GPT-2 checkpoint, read off its tensor shapes.
fn infer_gpt2_config(tensors: &HashMap<String, TensorView<'_>>, heads: Option<usize>) -> Result<ModelConfig, CheckpointError> {
    let shape_of = |name: &str| tensors.get(name).map(|v| v.shape().to_vec());
    let (Some(wte), Some(wpe)) = (shape_of("wte.weight"), shape_of("wpe.weight")) else {
        return Err(CheckpointError::MissingConfig("wte.weight or wpe.weight is missing".into()));
    };
    if wte.len() != 2 || wpe.len() != 2 {
        return Err(CheckpointError::MissingConfig(format!("wte has shape {wte:?} and wpe {wpe:?}; both must be 2-D")));
    }
    let heads = heads.ok_or_else(|| CheckpointError::MissingConfig("give the number of heads (--heads) for a GPT-2 checkpoint".into()))?;
    let layers = (0..).take_while(|l| tensors.contains_key(&format!("h.{l}.ln_1.weight"))).count();
    Ok(ModelConfig {
        placement: Placement::Pre,
        layers,
        width: wte[1],
        heads,
        context: wpe[0],
        vocab: wte[0],
        dt: 1.0,
        tied_head: true,
        head_bias: false,
        embedding_ln: false,
        scaled_residual_init: true,
    })
}
