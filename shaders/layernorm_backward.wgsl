// LayerNorm backward, split in two kernels because WGSL has no float
// atomics: one workgroup per row writes dinp, and one workgroup per
// feature sums dγ and dβ over all rows.
//
// Shapes: dout, inp, dinp, residual [rows, d]; stats = mean [rows] then
// rstd [rows]; gamma [d] in the parameter buffer; dgamma, dbeta [d] in the
// gradient buffer.
//
// Both kernels take the output gradient as dout_scale·dout, so a factor
// such as the Δt of a residual update needs no pass of its own.

struct Params {
    rows: u32, d: u32, dout_offset: u32, in_offset: u32,
    gamma_offset: u32, dinp_offset: u32, stats_offset: u32, beta_offset: u32,
    // With has_residual ≠ 0, dinp = residual + the LayerNorm's input
    // gradient: the gradient of a state that also feeds the residual stream.
    residual_offset: u32, has_residual: u32, dout_scale: f32, _pad: u32,
}

const GROUP: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> weights: array<f32>;
@group(0) @binding(5) var<storage, read_write> target_buffer: array<f32>;
@group(0) @binding(6) var<storage, read> residual: array<f32>;

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

// dinp = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂)) with g = γ ⊙ dout_scale·dout,
// plus the residual when there is one; writes `target_buffer` at
// dinp_offset.
@compute @workgroup_size(64)
fn layernorm_backward_input(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                            @builtin(local_invocation_id) lid: vec3<u32>) {
    let local = lid.x;
    let count = f32(p.d);
    for (var row = group.x; row < p.rows; row += groups.x) {
        let mean = stats[p.stats_offset + row];
        let rstd = stats[p.stats_offset + p.rows + row];
        var g_sum = 0.0;
        var gx_sum = 0.0;
        for (var k = local; k < p.d; k += GROUP) {
            let xhat = (inp[p.in_offset + row * p.d + k] - mean) * rstd;
            let g = weights[p.gamma_offset + k] * p.dout_scale * dout[p.dout_offset + row * p.d + k];
            g_sum += g;
            gx_sum += g * xhat;
        }
        let g_mean = workgroup_sum(local, g_sum) / count;
        let gx_mean = workgroup_sum(local, gx_sum) / count;
        for (var k = local; k < p.d; k += GROUP) {
            let xhat = (inp[p.in_offset + row * p.d + k] - mean) * rstd;
            let g = weights[p.gamma_offset + k] * p.dout_scale * dout[p.dout_offset + row * p.d + k];
            var value = rstd * (g - g_mean - xhat * gx_mean);
            if (p.has_residual != 0u) { value += residual[p.residual_offset + row * p.d + k]; }
            target_buffer[p.dinp_offset + row * p.d + k] = value;
        }
    }
}

// dγ[k] += Σ_rows g·x̂ and dβ[k] += Σ_rows g with g = dout_scale·dout, into `target_buffer`
// (the gradient buffer) at gamma_offset and beta_offset. One workgroup per
// feature (looping when d exceeds the dispatch): its invocations sum every
// 64th row, then the workgroup adds the partial sums. No invocation walks
// all rows, because llvmpipe (Mesa's software Vulkan driver) ends an
// invocation's loops after 65535 iterations in total.
@compute @workgroup_size(64)
fn layernorm_backward_params(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                             @builtin(local_invocation_id) lid: vec3<u32>) {
    let local = lid.x;
    for (var k = group.x; k < p.d; k += groups.x) {
        var dgamma = 0.0;
        var dbeta = 0.0;
        for (var row = local; row < p.rows; row += GROUP) {
            let mean = stats[p.stats_offset + row];
            let rstd = stats[p.stats_offset + p.rows + row];
            let xhat = (inp[p.in_offset + row * p.d + k] - mean) * rstd;
            let g = p.dout_scale * dout[p.dout_offset + row * p.d + k];
            dgamma += g * xhat;
            dbeta += g;
        }
        let total_gamma = workgroup_sum(local, dgamma);
        let total_beta = workgroup_sum(local, dbeta);
        if (local == 0u) {
            target_buffer[p.gamma_offset + k] += total_gamma;
            target_buffer[p.beta_offset + k] += total_beta;
        }
    }
}
