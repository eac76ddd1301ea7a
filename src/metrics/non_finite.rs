//! The first non-finite value of a run, located by step, layer and quantity.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NonFinite {
    pub step: usize,
    /// Block boundary l, or `None` for a quantity outside the layers (the loss).
    pub layer: Option<usize>,
    /// The metric, loss or tensor name (`max_token_norm`, `train_loss`,
    /// `grad:h.3.mlp.c_fc.weight`, ...).
    pub quantity: String,
    /// The value as text: `NaN`, `inf` or `-inf`.
    pub value: String,
}

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} became {} at step {}", self.quantity, self.value, self.step)?;
        if let Some(layer) = self.layer {
            write!(f, " in layer {layer}")?;
        }
        Ok(())
    }
}

impl NonFinite {
    pub fn new(step: usize, layer: Option<usize>, quantity: impl Into<String>, value: f64) -> NonFinite {
        NonFinite { step, layer, quantity: quantity.into(), value: format!("{value}") }
    }
}
