// Token plus position embedding, x[b,t] = wte[token[b,t]] + wpe[t], and its
// gradient. WGSL has no float atomics, so the backward gives each output
// element to one workgroup (tokens) or invocation (positions), which scans
// the batch for its rows.
//
// Shapes: tokens [B·T]; wte [V, d] and wpe [T_max, d] in the parameter (or
// gradient) buffer; out, dout [B·T, d].

struct Params {
    rows: u32, context: u32, d: u32, vocab: u32,
    wte_offset: u32, wpe_offset: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> values: array<f32>;
@group(0) @binding(3) var<storage, read_write> target_buffer: array<f32>;

const GROUP: u32 = 64u;

var<workgroup> partial: array<f32, 64>;

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

// values = parameters, target_buffer = x.
@compute @workgroup_size(256)
fn embedding_forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let total = p.rows * p.d;
    for (var i = id.x; i < total; i += groups.x * 256u) {
        let row = i / p.d;
        let k = i % p.d;
        let t = row % p.context;
        target_buffer[i] = values[p.wte_offset + tokens[row] * p.d + k] + values[p.wpe_offset + t * p.d + k];
    }
}

// values = dout, target_buffer = gradients: dwte[v, k] += Σ_{rows with token v} dout[row, k].
// One workgroup per element i = v·d + k, on a 2-D grid of workgroups
// (i = group.y·groups.x + group.x). Its invocations scan every 64th row, so
// none walks the whole batch: llvmpipe (Mesa's software Vulkan driver)
// stops an invocation's loops after 65535 iterations in total.
@compute @workgroup_size(64)
fn embedding_backward_tokens(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                             @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = group.y * groups.x + group.x;
    // The same for the whole workgroup, so the barriers below stay uniform.
    if (i >= p.vocab * p.d) { return; }
    let v = i / p.d;
    let k = i % p.d;
    var sum = 0.0;
    for (var row = lid.x; row < p.rows; row += GROUP) {
        if (tokens[row] == v) { sum += values[row * p.d + k]; }
    }
    let total = workgroup_sum(lid.x, sum);
    if (lid.x == 0u) { target_buffer[p.wte_offset + i] += total; }
}

// values = dout, target_buffer = gradients: dwpe[t, k] += Σ_b dout[b·T + t, k].
@compute @workgroup_size(256)
fn embedding_backward_positions(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let total = p.context * p.d;
    for (var i = id.x; i < total; i += groups.x * 256u) {
        let t = i / p.d;
        let k = i % p.d;
        var sum = 0.0;
        for (var row = t; row < p.rows; row += p.context) { sum += values[row * p.d + k]; }
        target_buffer[p.wpe_offset + i] += sum;
    }
}
