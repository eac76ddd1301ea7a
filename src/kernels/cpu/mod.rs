//! CPU reference kernels. Each layer's forward sits next to its backward,
//! with the shapes of its arguments in the doc comment (N = B·T rows).
//!
//! Backward functions accumulate (`+=`) into parameter gradients and write
//! (`=`) input gradients unless their doc comment says otherwise.

pub mod attention;
pub mod cross_entropy;
pub mod embedding;
pub mod gelu;
pub mod layernorm;
pub mod matmul;
pub mod scalar;
pub mod sgemm;
#[cfg(not(target_arch = "wasm32"))]
mod spin_pool;
pub mod threads;

pub use scalar::{dot, max_of, sum_by, sum_of, Scalar};
