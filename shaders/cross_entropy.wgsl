// Softmax cross-entropy, fused with its gradient: one invocation per row
// writes the row's loss and dlogits = (softmax − onehot(target)) / rows.
// Shapes: logits, dlogits [rows, V]; targets [rows]; losses [rows].

struct Params {
    rows: u32, vocab: u32, _pad0: u32, _pad1: u32,
}

// The lowest finite f32 (it rounds to -3.40282347e38). Chromium's WGSL
// compiler rejects the usual -3.4028235e38 as outside the f32 range.
const LOWEST: f32 = -3.4028234e38;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;

@compute @workgroup_size(64)
fn cross_entropy(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var row = id.x; row < p.rows; row += groups.x * 64u) {
        let base = row * p.vocab;
        var max_logit = LOWEST;
        for (var v = 0u; v < p.vocab; v++) { max_logit = max(max_logit, logits[base + v]); }
        var sum = 0.0;
        for (var v = 0u; v < p.vocab; v++) { sum += exp(logits[base + v] - max_logit); }
        let target_id = targets[row];
        // −log softmax from the logits, so a tiny probability never becomes log(0).
        losses[row] = log(sum) + max_logit - logits[base + target_id];
        let scale = 1.0 / f32(p.rows);
        for (var v = 0u; v < p.vocab; v++) {
            dlogits[base + v] = exp(logits[base + v] - max_logit) / sum * scale;
        }
        dlogits[base + target_id] -= scale;
    }
}
