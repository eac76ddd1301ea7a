//! Files the lab reads and writes: run files (JSON), checkpoints
//! (safetensors) and a run's evaluations as CSV.

pub mod checkpoint;
pub mod csv;
pub mod json_float;
pub mod run_file;
