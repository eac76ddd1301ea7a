//! lnlab: a teaching lab for transformer training stability under
//! LayerNorm placement.
//!
//! The modules follow the path from the specification to the page:
//! [`config`] (the settings of the model specification) → [`data`] →
//! [`model`] (parameters, forward, backward) → [`kernels`] (the layer
//! kernels the model calls) → [`metrics`] (per-layer statistics and their
//! certified bounds) → [`train`] (optimiser, schedule, loop) → [`io`] (run
//! files and checkpoints) → [`plot`] (charts). None of it touches the DOM.

pub mod config;
pub mod data;
pub mod kernels;
pub mod model;
pub mod rng;
pub mod metrics;
pub mod train;
pub mod io;
pub mod plot;
pub mod gpu;
pub mod page;
#[cfg(target_arch = "wasm32")]
pub mod web;
