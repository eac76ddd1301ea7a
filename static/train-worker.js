// A training worker of the lab page. The page posts it the address of its
// wasm-bindgen loader and its compiled WebAssembly module; the worker loads
// them and replies { ready: true }. After that each message is one shard
// of a training batch, and the reply is that shard's loss and gradient,
// computed by the page's own Rust code (`train_shard`). A failure is
// replied as { failed: reason }, so the page can train without workers.

let lab = null;

function fail(error) {
  const reason = String(error && error.message ? error.message : error);
  console.error(`lnlab training worker: ${reason}`);
  self.postMessage({ failed: reason });
}

self.onmessage = async ({ data }) => {
  if (data.glue) {
    try {
      const loaded = await import(data.glue);
      await loaded.default({ module_or_path: data.module });
      lab = loaded;
      self.postMessage({ ready: true });
    } catch (error) {
      fail(error);
    }
    return;
  }
  if (lab === null) {
    fail('the worker has not loaded the lab');
    return;
  }
  try {
    const result = lab.train_shard(data.config, data.params, data.tokens, data.targets, data.batch);
    const loss = result.loss;
    // The reply reuses the parameters' array, which the page sends again.
    try {
      result.write_grads(data.params);
    } finally {
      result.free();
    }
    self.postMessage({ loss, grads: data.params }, [data.params.buffer]);
  } catch (error) {
    fail(error);
  }
};
