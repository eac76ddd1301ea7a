//! Web workers that compute the shards of each CPU training step in
//! parallel. Each worker runs `static/train-worker.js`, which loads this
//! page's own WebAssembly module (the compiled module is posted to it, so
//! nothing is fetched or compiled twice) and computes one shard per message
//! with `train_shard` (src/bin/lnlab-web). The page combines the replies in
//! shard order, so a run's numbers do not depend on the number of workers,
//! or on whether workers run at all.

use crate::data::Batch;
use crate::model::Model;
use crate::train::sharded::{shard_gradient, ShardGradient, ShardRunner};
use crate::train::TrainError;
use futures_channel::oneshot;
use js_sys::{Array, Float32Array, Object, Reflect, Uint32Array};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// Shards per CPU step on the page. Fixed, so that a run's numbers are the
/// same on every machine; machines with fewer cores run several shards in
/// one worker.
pub const PAGE_SHARDS: usize = 2;

/// Milliseconds the workers may take to load the page's module.
const START_TIMEOUT_MS: i32 = 10_000;

/// The worker script, beside the page (copied there by index.html).
const WORKER_SCRIPT: &str = "train-worker.js";

type Reply = Result<JsValue, String>;
/// Senders for the replies a worker has yet to send, oldest first.
type Waiting = Rc<RefCell<VecDeque<oneshot::Sender<Reply>>>>;

struct TrainWorker {
    worker: web_sys::Worker,
    waiting: Waiting,
    // Kept so that the handlers live as long as the worker.
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

impl TrainWorker {
    fn spawn(script: &str) -> Result<TrainWorker, String> {
        let options = web_sys::WorkerOptions::new();
        options.set_type(web_sys::WorkerType::Module);
        options.set_name("lnlab training worker");
        let worker = web_sys::Worker::new_with_options(script, &options).map_err(|e| format!("cannot start a worker: {}", describe_js(&e)))?;

        let waiting: Waiting = Rc::default();
        let queue = waiting.clone();
        let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            let data = event.data();
            let reply = match Reflect::get(&data, &"failed".into()).ok().and_then(|f| f.as_string()) {
                Some(reason) => Err(reason),
                None => Ok(data),
            };
            if let Some(sender) = queue.borrow_mut().pop_front() {
                let _ = sender.send(reply);
            }
        });
        // A script that fails to load raises a plain Event, and an exception
        // in the worker an ErrorEvent. Either, like a reply that cannot be
        // read (messageerror), fails every reply still owed.
        let queue = waiting.clone();
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            // Handled here, so not reported again to the page's crash panel.
            event.prevent_default();
            let message = event.dyn_ref::<web_sys::ErrorEvent>().map(|e| e.message()).filter(|m| !m.is_empty());
            let reason = match (event.type_().as_str(), message) {
                (_, Some(message)) => message,
                ("messageerror", None) => "a worker's reply could not be read".to_string(),
                _ => "the worker script failed to load".to_string(),
            };
            for sender in queue.borrow_mut().drain(..) {
                let _ = sender.send(Err(reason.clone()));
            }
        });

        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        worker.set_onmessageerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(TrainWorker { worker, waiting, _on_message: on_message, _on_error: on_error })
    }

    /// Post `message`, moving the buffers in `transfer`, and return the
    /// receiver of the worker's reply.
    fn post(&self, message: &JsValue, transfer: &Array) -> Result<oneshot::Receiver<Reply>, String> {
        let (sender, receiver) = oneshot::channel();
        self.waiting.borrow_mut().push_back(sender);
        if let Err(error) = self.worker.post_message_with_transfer(message, transfer) {
            self.waiting.borrow_mut().pop_back();
            return Err(format!("cannot message a worker: {}", describe_js(&error)));
        }
        Ok(receiver)
    }
}

impl Drop for TrainWorker {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

async fn reply(receiver: oneshot::Receiver<Reply>) -> Reply {
    receiver.await.unwrap_or_else(|_| Err("a worker stopped before replying".into()))
}

fn describe_js(value: &JsValue) -> String {
    value.as_string().or_else(|| value.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message()))).unwrap_or_else(|| format!("{value:?}"))
}

fn set(object: &Object, key: &str, value: &JsValue) {
    Reflect::set(object, &key.into(), value).expect("setting a field of a new object");
}

/// Workers that compute shard gradients for the page.
pub struct WorkerPool {
    workers: Vec<TrainWorker>,
    /// Arrays the workers' gradients came back in, reused for the next
    /// parameters sent: a fresh megabyte-sized array per message costs
    /// more than the copy into it.
    spare: RefCell<Vec<Float32Array>>,
}

impl WorkerPool {
    /// Start `count` workers and wait until each has loaded the page's
    /// module. Fails when the browser rejects module workers or the script
    /// or module cannot be loaded.
    pub async fn start(count: usize) -> Result<WorkerPool, String> {
        let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
        let base = document.base_uri().ok().flatten().ok_or("the page has no base address")?;
        // Trunk preloads the wasm-bindgen module that loaded this page.
        let glue = document
            .query_selector("link[rel=modulepreload][href$='.js']")
            .ok()
            .flatten()
            .and_then(|link| link.get_attribute("href"))
            .ok_or("the page does not name its WebAssembly loader")?;
        let resolve = |path: &str| web_sys::Url::new_with_base(path, &base).map(|u| u.href()).map_err(|e| describe_js(&e));
        let (glue, script) = (resolve(&glue)?, resolve(WORKER_SCRIPT)?);
        let workers = (0..count.max(1)).map(|_| TrainWorker::spawn(&script)).collect::<Result<Vec<_>, _>>()?;

        let mut pending = Vec::new();
        for worker in &workers {
            let message = Object::new();
            set(&message, "glue", &glue.clone().into());
            set(&message, "module", &wasm_bindgen::module());
            pending.push(worker.post(&message, &Array::new())?);
        }

        // A worker that neither replies nor fails is given up on.
        let queues: Vec<Waiting> = workers.iter().map(|w| w.waiting.clone()).collect();
        let on_timeout = Closure::once(move || {
            for queue in &queues {
                for sender in queue.borrow_mut().drain(..) {
                    let _ = sender.send(Err(format!("the training workers did not start within {} s", START_TIMEOUT_MS / 1000)));
                }
            }
        });
        let window = web_sys::window().ok_or("no window")?;
        let timer = window
            .set_timeout_with_callback_and_timeout_and_arguments_0(on_timeout.as_ref().unchecked_ref(), START_TIMEOUT_MS)
            .map_err(|e| describe_js(&e))?;
        let mut started = Ok(());
        for receiver in pending {
            if let Err(reason) = reply(receiver).await {
                started = Err(reason);
                break;
            }
        }
        window.clear_timeout_with_handle(timer);
        started.map(|()| WorkerPool { workers, spare: RefCell::default() })
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    async fn run(&self, model: &Model<f32>, shards: &[Batch]) -> Result<Vec<ShardGradient>, String> {
        let config = serde_json::to_string(&model.config).map_err(|e| e.to_string())?;
        let mut pending = Vec::with_capacity(shards.len());
        for (s, shard) in shards.iter().enumerate() {
            let params = self.params_array(&model.params);
            let message = Object::new();
            set(&message, "config", &config.clone().into());
            set(&message, "params", &params);
            set(&message, "tokens", &Uint32Array::from(&shard.inputs[..]));
            set(&message, "targets", &Uint32Array::from(&shard.targets[..]));
            set(&message, "batch", &(shard.batch as f64).into());
            pending.push(self.workers[s % self.workers.len()].post(&message, &Array::of1(&params.buffer()))?);
        }
        let mut parts = Vec::with_capacity(shards.len());
        for receiver in pending {
            let data = reply(receiver).await?;
            let loss = Reflect::get(&data, &"loss".into()).ok().and_then(|l| l.as_f64()).ok_or("a worker's reply is missing the loss")?;
            let grads: Float32Array = Reflect::get(&data, &"grads".into()).ok().and_then(|g| g.dyn_into().ok()).ok_or("a worker's reply is missing the gradients")?;
            if grads.length() as usize != model.params.len() {
                return Err(format!("a worker replied with {} gradients for {} parameters", grads.length(), model.params.len()));
            }
            // Into a pooled buffer, because `combine` and the update hand
            // these back to the pool: fresh vectors would make it grow.
            let mut buffer = crate::model::scratch::buffer(model.params.len());
            grads.copy_to(&mut buffer);
            parts.push(ShardGradient { loss: loss as f32, grads: buffer });
            self.spare.borrow_mut().push(grads);
        }
        Ok(parts)
    }

    /// Returns `params` in a JavaScript array to send, reusing a spare one
    /// of the same length.
    fn params_array(&self, params: &[f32]) -> Float32Array {
        let mut spare = self.spare.borrow_mut();
        spare.retain(|array| array.length() as usize == params.len());
        match spare.pop() {
            Some(array) => {
                array.copy_from(params);
                array
            }
            None => Float32Array::from(params),
        }
    }
}

/// Computes shards in the page's workers, or here when there are none or
/// they fail. Both give the same numbers.
pub struct PageShards {
    pool: Option<Rc<WorkerPool>>,
}

impl PageShards {
    pub fn new(pool: Option<Rc<WorkerPool>>) -> PageShards {
        PageShards { pool }
    }

    pub fn workers(&self) -> usize {
        self.pool.as_ref().map_or(0, |p| p.len())
    }
}

impl ShardRunner for PageShards {
    async fn gradients(&mut self, model: &Model<f32>, shards: &[Batch]) -> Result<Vec<ShardGradient>, TrainError> {
        if let Some(pool) = &self.pool {
            match pool.run(model, shards).await {
                Ok(parts) => return Ok(parts),
                Err(reason) => {
                    web_sys::console::warn_1(&format!("lnlab: training workers failed ({reason}); training continues in the page").into());
                    self.pool = None;
                    disable_pool(reason);
                }
            }
        }
        shards.iter().map(|shard| Ok(shard_gradient(model, shard)?)).collect()
    }

    fn describe(&self) -> String {
        match self.workers() {
            0 => "in the page".to_string(),
            1 => "in 1 worker".to_string(),
            n => format!("in {n} workers"),
        }
    }
}

thread_local! {
    /// The workers, started by the first CPU run and kept for later runs.
    static POOL: RefCell<Option<Rc<WorkerPool>>> = const { RefCell::new(None) };
    /// Set when the workers could not start or failed, so no later run
    /// tries them again.
    static REFUSED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Returns the page's workers if they have started.
pub fn current_pool() -> Option<Rc<WorkerPool>> {
    POOL.with_borrow(|p| p.clone())
}

/// Drops the workers and keeps later runs from starting them again.
fn disable_pool(reason: String) {
    POOL.with_borrow_mut(|pool| *pool = None);
    REFUSED.with_borrow_mut(|refused| *refused = Some(reason));
}

/// Returns the page's workers, starting them on first use: one per shard,
/// or one per logical CPU when there are fewer. Returns the reason when
/// there are none.
pub async fn shared_pool() -> Result<Rc<WorkerPool>, String> {
    if let Some(pool) = POOL.with_borrow(|p| p.clone()) {
        return Ok(pool);
    }
    if let Some(reason) = REFUSED.with_borrow(|r| r.clone()) {
        return Err(reason);
    }
    let cores = web_sys::window().map(|w| w.navigator().hardware_concurrency() as usize).unwrap_or(1);
    match WorkerPool::start(PAGE_SHARDS.min(cores.max(1))).await {
        Ok(pool) => {
            let pool = Rc::new(pool);
            POOL.with_borrow_mut(|p| *p = Some(pool.clone()));
            Ok(pool)
        }
        Err(reason) => {
            web_sys::console::warn_1(&format!("lnlab: training workers are unavailable ({reason}); training runs in the page").into());
            REFUSED.with_borrow_mut(|r| *r = Some(reason.clone()));
            Err(reason)
        }
    }
}

/// Computes the loss and gradient of one shard, on the worker side. The worker script
/// calls it through the exported `train_shard`. The model is kept between
/// calls and rebuilt when the configuration changes.
pub fn train_shard(config: &str, params: &Float32Array, tokens: &[u32], targets: &[u32], batch: usize) -> Result<ShardGradient, String> {
    thread_local! {
        static MODEL: RefCell<Option<Model<f32>>> = const { RefCell::new(None) };
    }
    let config: crate::config::ModelConfig = serde_json::from_str(config).map_err(|e| format!("bad model settings: {e}"))?;
    MODEL.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|m| m.config != config) {
            let total = crate::model::Layout::new(&config).total;
            *slot = Some(Model::from_params(&config, vec![0.0; total]));
        }
        let model = slot.as_mut().expect("set above");
        if model.params.len() != params.length() as usize {
            return Err(format!("{} parameters sent for a model of {}", params.length(), model.params.len()));
        }
        // Straight from the posted array into the model: one copy per step.
        params.copy_to(&mut model.params);
        let shard = Batch { batch, context: tokens.len() / batch.max(1), inputs: tokens.to_vec(), targets: targets.to_vec() };
        shard_gradient(model, &shard).map_err(|e| e.to_string())
    })
}
