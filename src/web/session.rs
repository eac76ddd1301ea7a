//! One training run in the page: backend detection, data loading, the run
//! on either backend, and the helpers the training loop uses to yield to
//! the browser.

use crate::config::TrainConfig;
use crate::data::{DataError, Dataset, MAX_FILE_BYTES};
use crate::gpu::GpuBackend;
use crate::io::run_file::RunFile;
use crate::model::Model;
use crate::page::link::BackendRequest;
use crate::train::trainer::StepOutcome;
use crate::train::sharded::{ShardRunner, ShardedBackend};
use crate::train::{RunStart, Snapshot, TrainError, Trainer};
use super::workers::{current_pool, shared_pool, PageShards, PAGE_SHARDS};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Compute path of the page, with the reason for it.
#[derive(Clone, Debug, PartialEq)]
pub enum BackendChoice {
    /// WebGPU works: the adapter's description.
    WebGpu(String),
    /// The CPU (WebAssembly) path, with the reason in plain words.
    Cpu(String),
}

impl BackendChoice {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendChoice::WebGpu(_) => "webgpu",
            BackendChoice::Cpu(_) => "cpu",
        }
    }

    pub fn label(&self) -> String {
        match self {
            BackendChoice::WebGpu(adapter) => format!("WebGPU: {adapter}"),
            BackendChoice::Cpu(_) => "CPU (WebAssembly)".to_string(),
        }
    }
}

/// Check that `navigator.gpu` exists. Reading a missing property gives
/// `undefined`, never an exception.
fn has_navigator_gpu() -> bool {
    let Some(window) = web_sys::window() else { return false };
    js_sys::Reflect::get(&window.navigator(), &"gpu".into()).map(|gpu| !gpu.is_undefined() && !gpu.is_null()).unwrap_or(false)
}

/// Finds out whether WebGPU can train here: the API exists, an adapter and
/// a device can be had, and the kernels pass their self-test. A software
/// adapter (SwiftShader, for example) trains far slower than the CPU path,
/// so it is used only when the link requests WebGPU.
pub async fn detect_backend(request: BackendRequest) -> BackendChoice {
    if request == BackendRequest::Cpu {
        return BackendChoice::Cpu("The link asks for the CPU path (backend=cpu), so training runs on the CPU in WebAssembly.".into());
    }
    if !has_navigator_gpu() {
        return BackendChoice::Cpu("This browser does not offer WebGPU (navigator.gpu is missing), so training runs on the CPU in WebAssembly.".into());
    }
    let probe = crate::gpu::GpuContext::new(crate::gpu::BufferNeeds::default(), |_| String::new()).await;
    let ctx = match probe {
        Ok(ctx) => ctx,
        Err(crate::gpu::GpuError::NoAdapter(_)) => {
            return BackendChoice::Cpu("This browser offers WebGPU but no GPU adapter, so training runs on the CPU in WebAssembly.".into())
        }
        Err(error) => return BackendChoice::Cpu(format!("WebGPU is present but could not be used ({error}), so training runs on the CPU in WebAssembly.")),
    };
    let mut adapter = ctx.adapter.clone();
    if adapter.name.is_empty() {
        if let Some(identity) = browser_adapter_identity().await {
            adapter.name = identity;
        }
    }
    if adapter.device_type == "Cpu" && request != BackendRequest::WebGpu {
        return BackendChoice::Cpu(format!(
            "WebGPU here runs on a software adapter ({adapter}), which trains far slower than the CPU path, so training runs on the CPU in WebAssembly. Add backend=webgpu to the link to train on it anyway."
        ));
    }
    let kernels = crate::gpu::kernels::Kernels::new(&ctx);
    match crate::gpu::self_test::self_test(&ctx, &kernels).await {
        Ok(()) => BackendChoice::WebGpu(adapter.to_string()),
        Err(error) => BackendChoice::Cpu(format!("WebGPU is present but {error}.")),
    }
}

/// Read the adapter's vendor and architecture from `GPUAdapter.info`,
/// since browsers leave its description (wgpu's adapter name) empty.
async fn browser_adapter_identity() -> Option<String> {
    use js_sys::Reflect;
    let navigator = web_sys::window()?.navigator();
    let gpu = Reflect::get(&navigator, &"gpu".into()).ok()?;
    let request: js_sys::Function = Reflect::get(&gpu, &"requestAdapter".into()).ok()?.dyn_into().ok()?;
    let promise: js_sys::Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = JsFuture::from(promise).await.ok()?;
    let info = Reflect::get(&adapter, &"info".into()).ok()?;
    let field = |name: &str| Reflect::get(&info, &name.into()).ok().and_then(|v| v.as_string()).filter(|s| !s.is_empty());
    match (field("vendor"), field("architecture")) {
        (Some(vendor), Some(architecture)) => Some(format!("{vendor} {architecture}")),
        (Some(one), None) | (None, Some(one)) => Some(one),
        (None, None) => None,
    }
}

/// The page's CPU path: each step split into shards, computed by workers.
pub type PageCpu = ShardedBackend<PageShards>;

/// A run on either backend.
pub enum Session {
    Cpu(Trainer<PageCpu>),
    Gpu(Trainer<GpuBackend>),
}

fn page_cpu(run_start: &RunStart, pool: Option<std::rc::Rc<super::workers::WorkerPool>>) -> PageCpu {
    ShardedBackend::new(run_start.model.clone(), &run_start.train_config, PAGE_SHARDS, PageShards::new(pool))
}

impl Session {
    /// Build a run on the chosen backend. A GPU that refuses this model
    /// (too large, self-test failure) gives the CPU path and a notice.
    pub async fn start(run_start: RunStart, choice: &BackendChoice) -> (Session, Option<String>) {
        if let BackendChoice::WebGpu(_) = choice {
            match GpuBackend::new(&run_start.model, &run_start.train_config).await {
                Ok(backend) => return (Session::Gpu(run_start.with_backend(backend)), None),
                Err(error) => {
                    let notice = format!("This run trains on the CPU because the GPU refused it: {error}");
                    let backend = page_cpu(&run_start, shared_pool().await.ok());
                    return (Session::Cpu(run_start.with_backend(backend)), Some(notice));
                }
            }
        }
        let backend = page_cpu(&run_start, shared_pool().await.ok());
        (Session::Cpu(run_start.with_backend(backend)), None)
    }

    /// Says where the CPU path computes its steps (`None` on the GPU).
    pub fn compute(&self) -> Option<String> {
        match self {
            Session::Cpu(trainer) => Some(trainer.backend.runner.describe()),
            Session::Gpu(_) => None,
        }
    }

    pub async fn step(&mut self) -> Result<StepOutcome, TrainError> {
        match self {
            Session::Cpu(trainer) => trainer.step_async().await,
            Session::Gpu(trainer) => trainer.step_async().await,
        }
    }

    pub fn run(&self) -> &RunFile {
        match self {
            Session::Cpu(trainer) => &trainer.run,
            Session::Gpu(trainer) => &trainer.run,
        }
    }

    pub fn steps_done(&self) -> usize {
        match self {
            Session::Cpu(trainer) => trainer.step,
            Session::Gpu(trainer) => trainer.step,
        }
    }

    /// Saves the point the run has reached (read back from the GPU).
    pub async fn snapshot(&mut self) -> Result<Snapshot, TrainError> {
        match self {
            Session::Cpu(trainer) => trainer.snapshot().await,
            Session::Gpu(trainer) => trainer.snapshot().await,
        }
    }

    /// Returns the run to `snapshot`.
    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<(), TrainError> {
        match self {
            Session::Cpu(trainer) => trainer.restore(snapshot),
            Session::Gpu(trainer) => trainer.restore(snapshot),
        }
    }

    /// Moves the run to the CPU at `snapshot`, after the GPU failed. The
    /// run record keeps what it held at the snapshot and names both paths.
    pub fn move_to_cpu(&self, snapshot: &Snapshot) -> Result<Session, TrainError> {
        let Session::Gpu(gpu) = self else { return Err(TrainError::Gpu(crate::gpu::GpuError::Device("the run is not on the GPU".into()))) };
        let start = RunStart::new(gpu.model_config.clone(), gpu.train_config.clone(), gpu.run.data.clone(), gpu.dataset().clone(), None)?;
        let backend = page_cpu(&start, current_pool());
        let mut cpu = start.with_backend(backend);
        cpu.run = gpu.run.clone();
        cpu.run.backend = format!("{}, then cpu", gpu.run.backend);
        cpu.restore(snapshot)?;
        Ok(Session::Cpu(cpu))
    }

    /// Thins the run's evaluations to at most `max`, to bound its memory.
    pub fn thin(&mut self, max: usize) {
        match self {
            Session::Cpu(trainer) => trainer.run.thin_evals(max),
            Session::Gpu(trainer) => trainer.run.thin_evals(max),
        }
    }

    /// Returns the learning rate the run trains with.
    pub fn learning_rate(&self) -> f64 {
        match self {
            Session::Cpu(trainer) => trainer.train_config.lr,
            Session::Gpu(trainer) => trainer.train_config.lr,
        }
    }

    /// Returns the model's current parameters (read back from the GPU).
    pub async fn model(&mut self) -> Result<Model<f32>, TrainError> {
        match self {
            Session::Cpu(trainer) => trainer.model_async().await,
            Session::Gpu(trainer) => trainer.model_async().await,
        }
    }

    /// Returns whether each step waits for the training workers, which
    /// lets the browser render while they compute.
    pub fn waits_for_workers(&self) -> bool {
        matches!(self, Session::Cpu(trainer) if trainer.backend.runner.workers() > 0)
    }

    pub fn uses_gpu(&self) -> bool {
        matches!(self, Session::Gpu(_))
    }

    /// Apply settings that leave the model as it is: rates, warm-up, decay,
    /// the number of steps and the evaluation interval.
    pub fn update_schedule(&mut self, train: &TrainConfig) {
        let apply = |current: &mut TrainConfig| {
            current.lr = train.lr;
            current.warmup = train.warmup;
            current.weight_decay = train.weight_decay;
            current.steps = train.steps;
            current.eval_every = train.eval_every;
        };
        match self {
            Session::Cpu(trainer) => {
                apply(&mut trainer.train_config);
                trainer.backend.cpu.set_weight_decay(train.weight_decay);
            }
            Session::Gpu(trainer) => {
                apply(&mut trainer.train_config);
                trainer.backend.set_schedule(&trainer.train_config);
            }
        }
        let run_train = match self {
            Session::Cpu(trainer) => &mut trainer.run.train,
            Session::Gpu(trainer) => &mut trainer.run.train,
        };
        apply(run_train);
    }
}

/// Wait for the browser to run its other work (input, rendering).
pub async fn yield_to_browser() {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Milliseconds from the page's clock.
pub fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or(0.0)
}

/// Fetch the Moby-Dick corpus that the page serves beside itself.
pub async fn fetch_corpus() -> Result<Dataset, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response = JsFuture::from(window.fetch_with_str(crate::data::corpus::MOBY_DICK_FILE)).await.map_err(|_| "the corpus request failed".to_string())?;
    let response: web_sys::Response = response.dyn_into().map_err(|_| "the corpus request returned no response".to_string())?;
    if !response.ok() {
        return Err(format!("the corpus {} is missing from the server (HTTP {}); rebuild the page after scripts/fetch-corpus.sh", crate::data::corpus::MOBY_DICK_FILE, response.status()));
    }
    let buffer = JsFuture::from(response.array_buffer().map_err(|_| "cannot read the corpus".to_string())?).await.map_err(|_| "cannot read the corpus".to_string())?;
    let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
    Dataset::from_bytes("moby-dick", &bytes).map_err(|e| e.to_string())
}

/// Read a picked or dropped file, rejecting oversized files before reading.
pub async fn read_file(file: web_sys::File) -> Result<(String, Vec<u8>), String> {
    let name = file.name();
    let size = file.size() as u64;
    if size > MAX_FILE_BYTES {
        return Err(DataError::FileTooLarge { name, bytes: size, max: MAX_FILE_BYTES }.to_string());
    }
    let buffer = JsFuture::from(file.array_buffer()).await.map_err(|_| format!("cannot read {name}"))?;
    Ok((name, js_sys::Uint8Array::new(&buffer).to_vec()))
}
