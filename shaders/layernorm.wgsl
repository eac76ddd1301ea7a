// LayerNorm over rows of d features: γ ⊙ (z − μ)/sqrt(σ² + ε) + β, biased
// variance, ε = 1e-5. Forward and backward side by side.
//
// Shapes: inp, out, dout, dinp [rows, d]; gamma, beta [d] inside the
// parameter buffer; stats holds mean [rows] then rstd [rows].

struct Params {
    rows: u32, d: u32, in_offset: u32, out_offset: u32,
    gamma_offset: u32, beta_offset: u32, stats_offset: u32, has_residual: u32,
    // With has_residual ≠ 0, out = residual + residual_scale·LayerNorm(inp):
    // the residual update x + Δt·LN(f) of an output norm in one pass.
    residual_offset: u32, residual_scale: f32, _pad0: u32, _pad1: u32,
}

const EPS: f32 = 1e-5;
const GROUP: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<storage, read> residual: array<f32>;

var<workgroup> partial: array<f32, 64>;
var<workgroup> partial2: array<f32, 64>;

// Sum `value` over the workgroup; every invocation gets the total.
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

// One workgroup per row (looping when rows exceed the dispatch). The mean
// comes first and the variance from deviations about it (two passes), so
// rows such as [40000, 40001, 40002, 40003] keep their precision.
@compute @workgroup_size(64)
fn layernorm_forward(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let local = lid.x;
    let count = f32(p.d);
    for (var row = group.x; row < p.rows; row += groups.x) {
        let base = p.in_offset + row * p.d;
        var sum = 0.0;
        for (var k = local; k < p.d; k += GROUP) { sum += inp[base + k]; }
        let mean = workgroup_sum(local, sum) / count;
        var squares = 0.0;
        for (var k = local; k < p.d; k += GROUP) {
            let centred = inp[base + k] - mean;
            squares += centred * centred;
        }
        let variance = workgroup_sum(local, squares) / count;
        let rstd = 1.0 / sqrt(variance + EPS);
        for (var k = local; k < p.d; k += GROUP) {
            let normalised = (inp[base + k] - mean) * rstd;
            var value = weights[p.gamma_offset + k] * normalised + weights[p.beta_offset + k];
            if (p.has_residual != 0u) { value = residual[p.residual_offset + row * p.d + k] + p.residual_scale * value; }
            out[p.out_offset + row * p.d + k] = value;
        }
        if (local == 0u) {
            stats[p.stats_offset + row] = mean;
            stats[p.stats_offset + p.rows + row] = rstd;
        }
    }
}
