//! Layer kernels. `cpu` is the reference: plain loops and a matrix-multiply
//! crate, generic over f32 (training) and f64 (gradient checks).

pub mod cpu;
