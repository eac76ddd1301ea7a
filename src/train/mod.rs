//! Training: the optimiser, the learning-rate schedule, and the loop that
//! steps, evaluates and records a run.

pub mod backend;
pub mod optimizer;
pub mod schedule;
pub mod sharded;
pub mod trainer;

pub use backend::{Backend, CpuBackend};
pub use backend::TrainState;
pub use trainer::{RunStart, Snapshot, TrainError, Trainer};
