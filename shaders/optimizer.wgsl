// The optimiser step: the global gradient norm (two reduction kernels),
// then AdamW or SGD with decoupled weight decay and the clipping scale.
// A non-finite norm skips this and every later update, so the parameters
// keep their last finite values, and records the step in `state`.
//
// state: [0] global norm, [1] clip scale, [2] 1 when the norm is not finite,
// [3] first step with a non-finite norm (as f32 bits of a u32, 0xFFFFFFFF for none).

struct Step {
    n: u32, step: u32, is_sgd: u32, partials: u32,
    lr: f32, beta1: f32, beta2: f32, eps: f32,
    weight_decay: f32, correction1: f32, correction2: f32, clip: f32,
}

const GROUP: u32 = 256u;
const NONE: u32 = 0xFFFFFFFFu;

@group(0) @binding(0) var<uniform> s: Step;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> first_moment: array<f32>;
@group(0) @binding(4) var<storage, read_write> second_moment: array<f32>;
@group(0) @binding(5) var<storage, read> decay_mask: array<f32>;
@group(0) @binding(6) var<storage, read_write> state: array<f32>;
@group(0) @binding(7) var<storage, read_write> partial_sums: array<f32>;

var<workgroup> partial: array<f32, 256>;

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

// True for ±inf and NaN, decided from the bit pattern because WGSL does not
// promise IEEE comparisons with NaN.
fn is_non_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

// Σ g² per workgroup into partial_sums[group].
// NOTE: g² overflows f32 for |g| above about 1.8e19, so such a gradient
// counts as non-finite here, while the CPU path sums in f64 and clips it.
@compute @workgroup_size(256)
fn norm_partial(@builtin(global_invocation_id) id: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    var sum = 0.0;
    for (var i = id.x; i < s.n; i += groups.x * GROUP) {
        let g = grads[i];
        sum += g * g;
    }
    let total = workgroup_sum(lid.x, sum);
    if (lid.x == 0u) { partial_sums[group.x] = total; }
}

// One workgroup: norm, clip scale and the non-finite record.
@compute @workgroup_size(256)
fn norm_finish(@builtin(local_invocation_id) lid: vec3<u32>) {
    var sum = 0.0;
    for (var i = lid.x; i < s.partials; i += GROUP) { sum += partial_sums[i]; }
    let total = workgroup_sum(lid.x, sum);
    if (lid.x != 0u) { return; }
    let norm = sqrt(total);
    state[0] = norm;
    var scale = 1.0;
    if (s.clip > 0.0 && norm > s.clip) { scale = s.clip / norm; }
    state[1] = scale;
    // The flag stays set, so every later update is skipped and the
    // parameters keep their last finite values until the host resets it.
    if (is_non_finite(total)) {
        state[2] = 1.0;
        if (bitcast<u32>(state[3]) == NONE) { state[3] = bitcast<f32>(s.step); }
    }
}

// θ ← θ − lr·(m̂/(sqrt(v̂) + ε)) − lr·λ·mask·θ (AdamW), or θ ← θ − lr·g − lr·λ·mask·θ (SGD).
@compute @workgroup_size(256)
fn update(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    if (state[2] != 0.0) { return; }
    let scale = state[1];
    let decay = s.lr * s.weight_decay;
    for (var i = id.x; i < s.n; i += groups.x * GROUP) {
        let g = grads[i] * scale;
        let p = params[i];
        var step = g;
        if (s.is_sgd == 0u) {
            let m = s.beta1 * first_moment[i] + (1.0 - s.beta1) * g;
            let v = s.beta2 * second_moment[i] + (1.0 - s.beta2) * g * g;
            first_moment[i] = m;
            second_moment[i] = v;
            step = (m / s.correction1) / (sqrt(v / s.correction2) + s.eps);
        }
        params[i] = p - s.lr * step - decay * decay_mask[i] * p;
    }
}
