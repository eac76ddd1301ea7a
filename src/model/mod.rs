//! The lab's transformer: parameters, GPT-2 initialisation, and the
//! forward and backward passes of the four LayerNorm placements.

pub mod backward;
pub mod forward;
pub mod params;
pub mod scratch;

pub use backward::Gradients;
pub use forward::ForwardPass;
pub use params::{Group, Layout, TensorKind, TensorSpec};

use crate::config::ModelConfig;
use crate::kernels::cpu::Scalar;
use crate::rng::LabRng;
use rand_distr::{Distribution, Normal};

/// Standard deviation of every weight matrix and embedding at initialisation.
pub const INIT_STD: f64 = 0.02;

/// A batch that does not fit the model.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BatchError {
    #[error("batch has {tokens} tokens, expected {batch} sequences × {context} positions")]
    Shape { tokens: usize, batch: usize, context: usize },
    #[error("token id {id} at position {position} is outside the vocabulary of {vocab}")]
    TokenOutOfRange { id: u32, position: usize, vocab: usize },
    #[error("sequence length {context} exceeds the model's context of {max}")]
    ContextTooLong { context: usize, max: usize },
}

/// A model's configuration together with its parameters in one flat buffer.
#[derive(Clone, Debug)]
pub struct Model<F> {
    pub config: ModelConfig,
    pub layout: Layout,
    pub params: Vec<F>,
}

impl<F: Scalar> Model<F> {
    /// Initialise with the GPT-2 recipe: matrices and embeddings from
    /// N(0, 0.02²), the residual output projections (`attn.c_proj`,
    /// `mlp.c_proj`) from N(0, (0.02/sqrt(2L))²) when scaled residual init is
    /// on, biases 0, LayerNorm γ = 1 and β = 0.
    ///
    /// Draws happen in layout order in f64, so f32 and f64 models from the
    /// same generator state are equal up to rounding.
    pub fn init(config: &ModelConfig, rng: &mut LabRng) -> Model<F> {
        let layout = Layout::new(config);
        let mut params = vec![F::zero(); layout.total];
        let residual_std = if config.scaled_residual_init {
            INIT_STD / (2.0 * config.layers as f64).sqrt()
        } else {
            INIT_STD
        };
        for spec in &layout.tensors {
            let values = &mut params[spec.range()];
            match spec.kind {
                TensorKind::Matrix | TensorKind::Embedding => {
                    let is_residual_output = spec.name.ends_with(".c_proj.weight");
                    let std = if is_residual_output { residual_std } else { INIT_STD };
                    let normal = Normal::new(0.0, std).expect("standard deviation is positive and finite");
                    for v in values.iter_mut() {
                        *v = F::of(normal.sample(rng));
                    }
                }
                TensorKind::LnGain => values.fill(F::one()),
                TensorKind::Bias | TensorKind::LnBias => values.fill(F::zero()),
            }
        }
        Model { config: config.clone(), layout, params }
    }

    /// Build from parameters already in layout order.
    pub fn from_params(config: &ModelConfig, params: Vec<F>) -> Model<F> {
        let layout = Layout::new(config);
        assert_eq!(params.len(), layout.total, "parameter count does not match the layout");
        Model { config: config.clone(), layout, params }
    }

    /// The same model in another float type.
    pub fn cast<G: Scalar>(&self) -> Model<G> {
        let params = self.params.iter().map(|v| G::of(v.as_f64())).collect();
        Model { config: self.config.clone(), layout: self.layout.clone(), params }
    }

    pub fn tensor(&self, id: usize) -> &[F] {
        self.layout.get(&self.params, id)
    }

    pub fn tensor_mut(&mut self, id: usize) -> &mut [F] {
        self.layout.get_mut(&mut self.params, id)
    }

    /// Check that `batch` sequences of `tokens` fit this model.
    pub fn check_batch(&self, tokens: &[u32], batch: usize) -> Result<usize, BatchError> {
        let context = if batch == 0 { 0 } else { tokens.len() / batch };
        if batch == 0 || context == 0 || context * batch != tokens.len() {
            return Err(BatchError::Shape { tokens: tokens.len(), batch, context: self.config.context });
        }
        if context > self.config.context {
            return Err(BatchError::ContextTooLong { context, max: self.config.context });
        }
        if let Some((position, &id)) = tokens.iter().enumerate().find(|(_, &id)| id as usize >= self.config.vocab) {
            return Err(BatchError::TokenOutOfRange { id, position, vocab: self.config.vocab });
        }
        Ok(context)
    }
}
