//! Files the lab reads and writes: run files (JSON) and checkpoints
//! (safetensors).

pub mod checkpoint;
pub mod json_float;
pub mod run_file;
