// Element-wise kernels over flat arrays at element offsets. Each uses a
// grid-stride loop, so any length works with a capped workgroup count.

struct Params {
    n: u32, x_offset: u32, y_offset: u32, out_offset: u32,
    alpha: f32, beta: f32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const CUBIC: f32 = 0.044715;

// out = alpha·x + beta·y. With beta = 0, y is not read.
// Uses: the residual update x + Δt·f, scaling by Δt, and adding gradients.
@compute @workgroup_size(256)
fn combine(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let stride = groups.x * 256u;
    for (var i = id.x; i < p.n; i += stride) {
        var value = p.alpha * x[p.x_offset + i];
        if (p.beta != 0.0) { value += p.beta * y[p.y_offset + i]; }
        out[p.out_offset + i] = value;
    }
}

// GELU, tanh form of GPT-2: out = 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))).
@compute @workgroup_size(256)
fn gelu_forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let stride = groups.x * 256u;
    for (var i = id.x; i < p.n; i += stride) {
        let z = x[p.x_offset + i];
        out[p.out_offset + i] = 0.5 * z * (1.0 + tanh_safe(SQRT_2_OVER_PI * (z + CUBIC * z * z * z)));
    }
}

// out = dout · GELU'(x), with the upstream gradient dout in y.
@compute @workgroup_size(256)
fn gelu_backward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let stride = groups.x * 256u;
    for (var i = id.x; i < p.n; i += stride) {
        let z = x[p.x_offset + i];
        let t = tanh_safe(SQRT_2_OVER_PI * (z + CUBIC * z * z * z));
        let du_dz = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * z * z);
        let local = 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du_dz;
        out[p.out_offset + i] = y[p.y_offset + i] * local;
    }
}

// WGSL's tanh may overflow through exp for large |u| on some drivers, so
// clamp where tanh is ±1 in f32 anyway.
fn tanh_safe(u: f32) -> f32 {
    return tanh(clamp(u, -15.0, 15.0));
}

var<workgroup> partial: array<f32, 256>;

// out[out_offset] = alpha·Σ x over n elements, in one workgroup. Used for
// the mean loss of a batch from its per-row losses.
@compute @workgroup_size(256)
fn sum_scaled(@builtin(local_invocation_id) lid: vec3<u32>) {
    var sum = 0.0;
    for (var i = lid.x; i < p.n; i += 256u) { sum += x[p.x_offset + i]; }
    partial[lid.x] = sum;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width /= 2u) {
        if (lid.x < width) { partial[lid.x] += partial[lid.x + width]; }
        workgroupBarrier();
    }
    if (lid.x == 0u) { out[p.out_offset] = p.alpha * partial[0]; }
}
