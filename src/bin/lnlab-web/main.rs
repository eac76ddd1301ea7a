//! The lab page, built for the browser by Trunk (`trunk build`). On other
//! targets this binary only explains how to open the lab.
//!
//! The same module also runs in the page's training workers
//! (static/train-worker.js), where there is no document to mount on and
//! only `train_shard` is called.

#[cfg(target_arch = "wasm32")]
fn main() {
    if web_sys::window().is_none() {
        return;
    }
    // Before mounting, so a panic while the page builds also shows the
    // crash panel (and is still logged to the console).
    lnlab::web::crash::install();
    leptos::mount::mount_to_body(lnlab::web::App);
}

/// Loss and gradient of one shard of a training batch, for a worker.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub struct ShardResult {
    loss: f32,
    grads: Vec<f32>,
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
impl ShardResult {
    #[wasm_bindgen::prelude::wasm_bindgen(getter)]
    pub fn loss(&self) -> f32 {
        self.loss
    }

    /// Copies the gradient into `target`, which must have one float per
    /// parameter: the worker replies in the array the parameters came in.
    pub fn write_grads(&self, target: &js_sys::Float32Array) -> Result<(), String> {
        if target.length() as usize != self.grads.len() {
            return Err(format!("an array of {} floats cannot hold {} gradients", target.length(), self.grads.len()));
        }
        target.copy_from(&self.grads);
        Ok(())
    }
}

/// Compute the loss and parameter gradient of `batch` sequences (`tokens`
/// and `targets`, row-major) for the model `config` (JSON) with `params`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn train_shard(config: &str, params: &js_sys::Float32Array, tokens: &[u32], targets: &[u32], batch: usize) -> Result<ShardResult, String> {
    // A panic then reaches the worker's console with its message, not only
    // as "unreachable".
    console_error_panic_hook::set_once();
    let part = lnlab::web::workers::train_shard(config, params, tokens, targets, batch)?;
    Ok(ShardResult { loss: part.loss, grads: part.grads })
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("lnlab-web is the browser page; build and serve it with scripts/lab.sh");
    std::process::exit(2);
}
