// Attention backward in two kernels, because WGSL has no float atomics:
// one workgroup per query row writes dq (and the score gradients), then one
// workgroup per key row sums dk and dv over the queries that saw it.
// Shapes and the 2-D grid of workgroups as in attention.wgsl.

struct Params {
    batch: u32, context: u32, width: u32, heads: u32,
    head_dim: u32, scale: f32, _pad0: u32, _pad1: u32,
}

const GROUP: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> probs: array<f32>;
@group(0) @binding(4) var<storage, read_write> dscores: array<f32>;
@group(0) @binding(5) var<storage, read_write> dqkv: array<f32>;

var<workgroup> partial: array<f32, 64>;

fn qkv_index(b: u32, t: u32, part: u32, h: u32) -> u32 {
    return (b * p.context + t) * 3u * p.width + part * p.width + h * p.head_dim;
}

fn prob_index(b: u32, h: u32, t: u32, s: u32) -> u32 {
    return ((b * p.heads + h) * p.context + t) * p.context + s;
}

fn out_index(b: u32, t: u32, h: u32) -> u32 {
    return (b * p.context + t) * p.width + h * p.head_dim;
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

// For query row t: dp_ts = dout_t·v_s, dscore_ts = p_ts·(dp_ts − Σ_s' p_ts'·dp_ts')·scale,
// dq_t = Σ_s dscore_ts·k_s.
@compute @workgroup_size(64)
fn attention_backward_query(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                            @builtin(local_invocation_id) lid: vec3<u32>) {
    let local = lid.x;
    let row = group.y * groups.x + group.x;
    // The same for the whole workgroup, so the barriers below stay uniform.
    if (row >= p.batch * p.heads * p.context) { return; }
    let t = row % p.context;
    let h = (row / p.context) % p.heads;
    let b = row / (p.context * p.heads);
    let o = out_index(b, t, h);

    // As in the forward, each invocation rewrites only the positions it
    // wrote itself until the barrier.
    var local_weighted = 0.0;
    for (var s = local; s <= t; s += GROUP) {
        let v = qkv_index(b, s, 2u, h);
        var dp = 0.0;
        for (var i = 0u; i < p.head_dim; i++) { dp += dout[o + i] * qkv[v + i]; }
        dscores[prob_index(b, h, t, s)] = dp;
        local_weighted += probs[prob_index(b, h, t, s)] * dp;
    }
    let weighted = workgroup_sum(local, local_weighted);
    for (var s = local; s < p.context; s += GROUP) {
        let index = prob_index(b, h, t, s);
        if (s <= t) {
            dscores[index] = probs[index] * (dscores[index] - weighted) * p.scale;
        } else {
            dscores[index] = 0.0;
        }
    }
    // Every invocation reads the whole row of score gradients below.
    storageBarrier();

    let q = qkv_index(b, t, 0u, h);
    for (var i = local; i < p.head_dim; i += GROUP) {
        var acc = 0.0;
        for (var s = 0u; s <= t; s++) {
            acc += dscores[prob_index(b, h, t, s)] * qkv[qkv_index(b, s, 1u, h) + i];
        }
        dqkv[q + i] = acc;
    }
}

// For key row s: dk_s = Σ_{t ≥ s} dscore_ts·q_t and dv_s = Σ_{t ≥ s} p_ts·dout_t,
// one feature i per invocation.
@compute @workgroup_size(64)
fn attention_backward_key_value(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                                @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = group.y * groups.x + group.x;
    if (row >= p.batch * p.heads * p.context) { return; }
    let s = row % p.context;
    let h = (row / p.context) % p.heads;
    let b = row / (p.context * p.heads);
    let k = qkv_index(b, s, 1u, h);
    let v = qkv_index(b, s, 2u, h);
    for (var i = lid.x; i < p.head_dim; i += GROUP) {
        var dk = 0.0;
        var dv = 0.0;
        for (var t = s; t < p.context; t++) {
            dk += dscores[prob_index(b, h, t, s)] * qkv[qkv_index(b, t, 0u, h) + i];
            dv += probs[prob_index(b, h, t, s)] * dout[out_index(b, t, h) + i];
        }
        dqkv[k + i] = dk;
        dqkv[v + i] = dv;
    }
}
