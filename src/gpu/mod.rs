//! The WebGPU compute path: the whole training step in WGSL compute
//! shaders (`shaders/`), driven by wgpu natively (Vulkan) and in the
//! browser (WebGPU).

pub mod context;
pub mod kernels;
pub mod model;
pub mod backend;
pub mod self_test;

pub use backend::GpuBackend;
pub use context::{live_devices, AdapterSummary, BufferNeeds, GpuContext, GpuError};
