// Causal multi-head self-attention on a packed [q k v] tensor, forward and
// backward. Shapes: qkv, dqkv [B, T, 3d] (q, k, v at column offsets 0, d,
// 2d; head h in columns h·d_h..(h+1)·d_h of each); out, dout [B, T, d];
// probs, dscores [B, H, T, T] with zeros above the diagonal.
//
// One workgroup per query row, on a 2-D grid of workgroups: row =
// group.y·groups.x + group.x. Its invocations share the row's positions and
// then its d_h outputs, so no invocation loops over T·d_h terms. That keeps
// each invocation far below llvmpipe's limit (Mesa's software Vulkan driver
// stops an invocation's loops after 65535 iterations in total).

struct Params {
    batch: u32, context: u32, width: u32, heads: u32,
    head_dim: u32, scale: f32, _pad0: u32, _pad1: u32,
}

// The lowest finite f32 (it rounds to -3.40282347e38). Chromium's WGSL
// compiler rejects the usual -3.4028235e38 as outside the f32 range.
const LOWEST: f32 = -3.4028234e38;

const GROUP: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> probs: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 64>;

fn qkv_index(b: u32, t: u32, part: u32, h: u32) -> u32 {
    return (b * p.context + t) * 3u * p.width + part * p.width + h * p.head_dim;
}

fn prob_index(b: u32, h: u32, t: u32, s: u32) -> u32 {
    return ((b * p.heads + h) * p.context + t) * p.context + s;
}

fn workgroup_sum(local: u32, value: f32) -> f32 {
    partial[local] = value;
    workgroupBarrier();
    for (var width = GROUP / 2u; width > 0u; width /= 2u) {
        if (local < width) { partial[local] += partial[local + width]; }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

fn workgroup_max(local: u32, value: f32) -> f32 {
    partial[local] = value;
    workgroupBarrier();
    for (var width = GROUP / 2u; width > 0u; width /= 2u) {
        if (local < width) { partial[local] = max(partial[local], partial[local + width]); }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// The softmax subtracts the row's maximum score before exp, so large
// logits cannot overflow.
@compute @workgroup_size(64)
fn attention_forward(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let local = lid.x;
    let row = group.y * groups.x + group.x;
    // The same for the whole workgroup, so the barriers below stay uniform.
    if (row >= p.batch * p.heads * p.context) { return; }
    let t = row % p.context;
    let h = (row / p.context) % p.heads;
    let b = row / (p.context * p.heads);
    let q = qkv_index(b, t, 0u, h);

    // Each invocation scores positions local, local + 64, ... and later
    // rescales the same positions, so it only reads back its own writes.
    var local_max = LOWEST;
    for (var s = local; s <= t; s += GROUP) {
        let k = qkv_index(b, s, 1u, h);
        var dot = 0.0;
        for (var i = 0u; i < p.head_dim; i++) { dot += qkv[q + i] * qkv[k + i]; }
        let score = dot * p.scale;
        probs[prob_index(b, h, t, s)] = score;
        local_max = max(local_max, score);
    }
    let max_score = workgroup_max(local, local_max);
    var local_sum = 0.0;
    for (var s = local; s <= t; s += GROUP) {
        let index = prob_index(b, h, t, s);
        let e = exp(probs[index] - max_score);
        probs[index] = e;
        local_sum += e;
    }
    let inv_sum = 1.0 / workgroup_sum(local, local_sum);
    for (var s = local; s < p.context; s += GROUP) {
        let index = prob_index(b, h, t, s);
        if (s <= t) {
            probs[index] *= inv_sum;
        } else {
            probs[index] = 0.0;
        }
    }
    // Every invocation reads the whole row of probabilities below.
    storageBarrier();

    let o = (b * p.context + t) * p.width + h * p.head_dim;
    for (var i = local; i < p.head_dim; i += GROUP) {
        var acc = 0.0;
        for (var s = 0u; s <= t; s++) {
            acc += probs[prob_index(b, h, t, s)] * qkv[qkv_index(b, s, 2u, h) + i];
        }
        out[o + i] = acc;
    }
}
