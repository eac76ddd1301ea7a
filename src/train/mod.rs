//! Training: the optimiser, the learning-rate schedule, and the loop that
//! steps, evaluates and records a run.

pub mod optimizer;
pub mod schedule;
pub mod trainer;

pub use trainer::{TrainError, Trainer};
