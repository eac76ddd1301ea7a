//! The one place that owns the WebGPU device: adapter selection, the limits
//! requested from it, buffer creation and read-back.
//!
//! WebGPU rules that shape this file:
//! - A device gets exactly the limits it requests, not the adapter's best,
//!   so the request is sized from the model after reading the adapter.
//! - The GPU cannot hand a storage buffer to the CPU directly. Results are
//!   copied into a MAP_READ staging buffer, which is then mapped.
//! - Mapping completes through a callback. Natively `device.poll` drives it;
//!   on the web the browser's event loop does, so the code awaits a channel
//!   instead of blocking (blocking would hang the page).

use std::fmt;
use wgpu::util::DeviceExt;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no WebGPU adapter is available: {0}")]
    NoAdapter(String),
    #[error("the WebGPU adapter refused a device: {0}")]
    NoDevice(String),
    #[error(
        "the model needs a {needed}-byte buffer but this adapter's {limit} is {available} bytes; \
         the largest configuration that fits is {largest}"
    )]
    TooLarge { limit: &'static str, needed: u64, available: u64, largest: String },
    #[error("reading a GPU buffer back failed: {0}")]
    ReadBack(String),
    #[error("the GPU self-test failed: {0}; the driver computes wrong results, so training stays on the CPU")]
    SelfTest(String),
    #[error("GPU error: {0}")]
    Device(String),
}

/// Identity of the adapter in use, as shown to users and asserted by tests.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterSummary {
    pub name: String,
    /// `Vulkan`, `BrowserWebGpu`, ...
    pub backend: String,
    /// `Cpu` for software adapters such as lavapipe and SwiftShader.
    pub device_type: String,
    pub driver: String,
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Browsers may hide the adapter's name for privacy.
        let name = if self.name.is_empty() { "unnamed adapter" } else { &self.name };
        let kind = if self.device_type == "Cpu" { "software" } else { &self.device_type };
        write!(f, "{name} ({}, {kind})", self.backend)
    }
}

/// Buffer sizes a model needs, for the device request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferNeeds {
    /// Largest single buffer, in bytes.
    pub largest_buffer: u64,
}

/// Devices opened by [`GpuContext::new`] and not yet dropped, so tests and
/// the page can check that finished runs give their GPU memory back.
static LIVE_DEVICES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Returns the number of GPU devices this process has open.
pub fn live_devices() -> usize {
    LIVE_DEVICES.load(std::sync::atomic::Ordering::Relaxed)
}

pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    /// The limits the device was created with.
    pub limits: wgpu::Limits,
    /// The adapter's own limits, for sizing messages.
    pub adapter_limits: wgpu::Limits,
    /// Reason the device was lost, once it has been.
    lost: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Drop for GpuContext {
    /// Destroys the device, which frees its buffers at once instead of
    /// whenever the browser collects them.
    fn drop(&mut self) {
        self.device.destroy();
        LIVE_DEVICES.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl GpuContext {
    /// Open the default adapter (natively it honours `WGPU_BACKEND`) and a
    /// device with WebGPU's default limits, raised only as far as `needs`
    /// requires. `largest_fitting` names the largest configuration that
    /// would fit, for the message when the adapter is too small.
    pub async fn new(needs: BufferNeeds, largest_fitting: impl Fn(u64) -> String) -> Result<GpuContext, GpuError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        };

        let adapter_limits = adapter.limits();
        let mut limits = wgpu::Limits::default();
        // Raise only what the model needs, and refuse before allocating
        // anything when the adapter cannot give it.
        let available_binding = adapter_limits.max_storage_buffer_binding_size.min(adapter_limits.max_buffer_size);
        if needs.largest_buffer > available_binding {
            let limit = if adapter_limits.max_buffer_size < adapter_limits.max_storage_buffer_binding_size {
                "maxBufferSize"
            } else {
                "maxStorageBufferBindingSize"
            };
            return Err(GpuError::TooLarge { limit, needed: needs.largest_buffer, available: available_binding, largest: largest_fitting(available_binding) });
        }
        limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.max(needs.largest_buffer);
        limits.max_buffer_size = limits.max_buffer_size.max(needs.largest_buffer);
        // Every kernel stays within WebGPU's default of 8 storage buffers per
        // stage and 256 invocations per workgroup, so nothing else is raised.
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("lnlab"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| GpuError::NoDevice(e.to_string()))?;
        let lost = std::sync::Arc::new(std::sync::Mutex::new(None));
        let record = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = record.lock() {
                slot.get_or_insert_with(|| format!("{reason:?}: {message}"));
            }
        });
        LIVE_DEVICES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(GpuContext { device, queue, adapter: summary, limits, adapter_limits, lost })
    }

    /// Returns why the device was lost, or `None` while it works.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|slot| slot.clone())
    }

    /// Create a storage buffer containing `data`, usable as a copy source and target.
    pub fn upload(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        // WebGPU rejects zero-sized bindings, so empty tensors get one element.
        let contents: &[u8] = if data.is_empty() { bytemuck::cast_slice(&[0.0f32]) } else { bytemuck::cast_slice(data) };
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        })
    }

    pub fn upload_u32(&self, label: &str, data: &[u32]) -> wgpu::Buffer {
        let contents: &[u8] = if data.is_empty() { bytemuck::cast_slice(&[0u32]) } else { bytemuck::cast_slice(data) };
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// Create a zero-filled storage buffer of `len` 4-byte elements.
    pub fn zeros(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Create a uniform buffer containing one parameter struct.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// Copy the first `len` elements of `buffer` back to the CPU.
    pub async fn read_f32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, GpuError> {
        let bytes = self.read_bytes(buffer, (len * 4) as u64).await?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }

    pub async fn read_u32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<u32>, GpuError> {
        let bytes = self.read_bytes(buffer, (len * 4) as u64).await?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }

    async fn read_bytes(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, GpuError> {
        if size == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read back") });
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        map_and_read(&self.device, &staging).await
    }
}

/// Map a MAP_READ buffer and copy its contents out.
pub async fn map_and_read(device: &wgpu::Device, staging: &wgpu::Buffer) -> Result<Vec<u8>, GpuError> {
    let (sender, receiver) = futures_channel::oneshot::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |result| {
        // The receiver is dropped only when the caller stopped waiting, so
        // the result is not needed then.
        let _ = sender.send(result);
    });
    // Natively this runs the callback; on the web it returns at once and the
    // browser runs the callback later.
    device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::ReadBack(e.to_string()))?;
    receiver
        .await
        .map_err(|_| GpuError::ReadBack("the mapping callback never ran".into()))?
        .map_err(|e| GpuError::ReadBack(e.to_string()))?;
    let bytes = staging.get_mapped_range(..).map_err(|e| GpuError::ReadBack(e.to_string()))?.to_vec();
    staging.unmap();
    Ok(bytes)
}
