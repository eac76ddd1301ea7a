// Per-layer statistics and the inputs of the certified bounds, computed on
// the GPU so that an evaluation reads back a few hundred numbers.
//
// Each statistic takes two passes: `chunks` workgroups each reduce an
// interleaved share of the rows into `partials`, then one workgroup
// combines the partial results. A single workgroup over a whole state
// would loop B·T·d/64 times per invocation, and llvmpipe (Mesa's software
// Vulkan driver) stops an invocation's loops after 65535 iterations in
// total, which states of 4.2M values exceed.
//
// Non-finite values are found from the bit pattern (exponent all ones),
// because WGSL does not promise IEEE behaviour for NaN comparisons.

const GROUP: u32 = 256u;
/// Partial values per workgroup of `layer_stats_partial`.
const LAYER_PARTS: u32 = 10u;
/// Partial values per workgroup of `final_grad_partial`.
const FINAL_PARTS: u32 = 2u;

struct StateParams {
    rows: u32, d: u32, batch: u32, context: u32,
    out_offset: u32, chunks: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: StateParams;
@group(0) @binding(1) var<storage, read> state: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;

var<workgroup> sums: array<f32, 256>;
var<workgroup> maxima: array<f32, 256>;
var<workgroup> flags: array<u32, 256>;

fn is_non_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

fn reduce_sum(local: u32, value: f32) -> f32 {
    sums[local] = value;
    workgroupBarrier();
    for (var width = GROUP / 2u; width > 0u; width /= 2u) {
        if (local < width) { sums[local] += sums[local + width]; }
        workgroupBarrier();
    }
    let total = sums[0];
    workgroupBarrier();
    return total;
}

fn reduce_max(local: u32, value: f32) -> f32 {
    maxima[local] = value;
    workgroupBarrier();
    for (var width = GROUP / 2u; width > 0u; width /= 2u) {
        if (local < width) { maxima[local] = max(maxima[local], maxima[local + width]); }
        workgroupBarrier();
    }
    let total = maxima[0];
    workgroupBarrier();
    return total;
}

fn reduce_or(local: u32, value: u32) -> u32 {
    flags[local] = value;
    workgroupBarrier();
    for (var width = GROUP / 2u; width > 0u; width /= 2u) {
        if (local < width) { flags[local] = flags[local] | flags[local + width]; }
        workgroupBarrier();
    }
    let total = flags[0];
    workgroupBarrier();
    return total;
}

// First pass over one residual-stream state [rows, d] and its gradient.
// Workgroup g takes rows g·256 + local, stepping by chunks·256, and likewise
// the (t, k) entries of the data-wise variance. Writes 10 values per
// workgroup into `partials`: Σ|x|, Σ entry variances, Σ data variances,
// Σx², max |x|, max ‖x_row‖², Σg², max ‖g_row‖², and 1/0 flags for a
// non-finite state and a non-finite gradient.
@compute @workgroup_size(256)
fn layer_stats_partial(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let local = lid.x;
    let first = group.x * GROUP + local;
    let stride = p.chunks * GROUP;
    let count = f32(p.d);
    var abs_sum = 0.0;
    var square_sum = 0.0;
    var entry_var_sum = 0.0;
    var max_abs = 0.0;
    var max_norm_sq = 0.0;
    var grad_square_sum = 0.0;
    var max_grad_sq = 0.0;
    var bad_state = 0u;
    var bad_grad = 0u;
    for (var row = first; row < p.rows; row += stride) {
        let base = row * p.d;
        var row_sum = 0.0;
        var row_squares = 0.0;
        var grad_squares = 0.0;
        for (var k = 0u; k < p.d; k++) {
            let x = state[base + k];
            let g = grad[base + k];
            if (is_non_finite(x)) { bad_state = 1u; }
            if (is_non_finite(g)) { bad_grad = 1u; }
            abs_sum += abs(x);
            row_sum += x;
            row_squares += x * x;
            max_abs = max(max_abs, abs(x));
            grad_squares += g * g;
        }
        let row_mean = row_sum / count;
        var deviations = 0.0;
        for (var k = 0u; k < p.d; k++) {
            let centred = state[base + k] - row_mean;
            deviations += centred * centred;
        }
        entry_var_sum += deviations / count;
        square_sum += row_squares;
        max_norm_sq = max(max_norm_sq, row_squares);
        grad_square_sum += grad_squares;
        max_grad_sq = max(max_grad_sq, grad_squares);
    }

    // Variance across the batch of every (t, k) entry.
    var data_var_sum = 0.0;
    let entries = p.context * p.d;
    for (var j = first; j < entries; j += stride) {
        let t = j / p.d;
        let k = j % p.d;
        var mean = 0.0;
        for (var b = 0u; b < p.batch; b++) { mean += state[(b * p.context + t) * p.d + k]; }
        mean /= f32(p.batch);
        var deviations = 0.0;
        for (var b = 0u; b < p.batch; b++) {
            let centred = state[(b * p.context + t) * p.d + k] - mean;
            deviations += centred * centred;
        }
        data_var_sum += deviations / f32(p.batch);
    }

    let totals = array<f32, 10>(
        reduce_sum(local, abs_sum),
        reduce_sum(local, entry_var_sum),
        reduce_sum(local, data_var_sum),
        reduce_sum(local, square_sum),
        reduce_max(local, max_abs),
        reduce_max(local, max_norm_sq),
        reduce_sum(local, grad_square_sum),
        reduce_max(local, max_grad_sq),
        f32(reduce_or(local, bad_state)),
        f32(reduce_or(local, bad_grad)),
    );
    if (local == 0u) {
        for (var i = 0u; i < LAYER_PARTS; i++) { partials[group.x * LAYER_PARTS + i] = totals[i]; }
    }
}

// Second pass, one workgroup: combines the partial values and writes 10
// values at out_offset: mean |x|, entry-wise variance, data-wise variance,
// RMS, max |x|, max token norm, gradient RMS, max token gradient norm, and
// 1.0 flags for a non-finite state and a non-finite gradient.
@compute @workgroup_size(256)
fn layer_stats_finish(@builtin(local_invocation_id) lid: vec3<u32>) {
    let local = lid.x;
    var abs_sum = 0.0;
    var entry_var_sum = 0.0;
    var data_var_sum = 0.0;
    var square_sum = 0.0;
    var max_abs = 0.0;
    var max_norm_sq = 0.0;
    var grad_square_sum = 0.0;
    var max_grad_sq = 0.0;
    var bad_state = 0u;
    var bad_grad = 0u;
    for (var chunk = local; chunk < p.chunks; chunk += GROUP) {
        let base = chunk * LAYER_PARTS;
        abs_sum += partials[base];
        entry_var_sum += partials[base + 1u];
        data_var_sum += partials[base + 2u];
        square_sum += partials[base + 3u];
        max_abs = max(max_abs, partials[base + 4u]);
        max_norm_sq = max(max_norm_sq, partials[base + 5u]);
        grad_square_sum += partials[base + 6u];
        max_grad_sq = max(max_grad_sq, partials[base + 7u]);
        if (partials[base + 8u] != 0.0) { bad_state = 1u; }
        if (partials[base + 9u] != 0.0) { bad_grad = 1u; }
    }
    let total_abs = reduce_sum(local, abs_sum);
    let total_entry_var = reduce_sum(local, entry_var_sum);
    let total_data_var = reduce_sum(local, data_var_sum);
    let total_squares = reduce_sum(local, square_sum);
    let largest_abs = reduce_max(local, max_abs);
    let largest_norm_sq = reduce_max(local, max_norm_sq);
    let total_grad = reduce_sum(local, grad_square_sum);
    let largest_grad_sq = reduce_max(local, max_grad_sq);
    let any_bad_state = reduce_or(local, bad_state);
    let any_bad_grad = reduce_or(local, bad_grad);
    if (local != 0u) { return; }
    let elements = f32(p.rows) * f32(p.d);
    let o = p.out_offset;
    out[o + 0u] = total_abs / elements;
    out[o + 1u] = total_entry_var / f32(p.rows);
    out[o + 2u] = total_data_var / f32(p.context * p.d);
    out[o + 3u] = sqrt(total_squares / elements);
    out[o + 4u] = largest_abs;
    out[o + 5u] = sqrt(largest_norm_sq);
    out[o + 6u] = sqrt(total_grad / f32(p.rows));
    out[o + 7u] = sqrt(largest_grad_sq);
    out[o + 8u] = f32(any_bad_state);
    out[o + 9u] = f32(any_bad_grad);
}

// Under the final LayerNorm, first pass: Σ rstd² over tokens and max over
// tokens of ‖∂loss/∂x_L[b,t]‖ / rstd, which the CPU turns into the gradient
// bound. Here `state` holds the LN statistics (mean [rows], then rstd
// [rows]) and `grad` the gradient at x_L. Rows are shared out as in
// `layer_stats_partial`; writes 2 values per workgroup into `partials`.
@compute @workgroup_size(256)
fn final_grad_partial(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let local = lid.x;
    var rstd_squares = 0.0;
    var max_ratio = 0.0;
    for (var row = group.x * GROUP + local; row < p.rows; row += p.chunks * GROUP) {
        let rstd = state[p.rows + row];
        var squares = 0.0;
        for (var k = 0u; k < p.d; k++) {
            let g = grad[row * p.d + k];
            squares += g * g;
        }
        rstd_squares += rstd * rstd;
        max_ratio = max(max_ratio, sqrt(squares) / rstd);
    }
    let total = reduce_sum(local, rstd_squares);
    let largest = reduce_max(local, max_ratio);
    if (local == 0u) {
        partials[group.x * FINAL_PARTS] = total;
        partials[group.x * FINAL_PARTS + 1u] = largest;
    }
}

// Second pass, one workgroup: writes Σ rstd² and the max ratio at out_offset.
@compute @workgroup_size(256)
fn final_grad_finish(@builtin(local_invocation_id) lid: vec3<u32>) {
    let local = lid.x;
    var rstd_squares = 0.0;
    var max_ratio = 0.0;
    for (var chunk = local; chunk < p.chunks; chunk += GROUP) {
        rstd_squares += partials[chunk * FINAL_PARTS];
        max_ratio = max(max_ratio, partials[chunk * FINAL_PARTS + 1u]);
    }
    let total = reduce_sum(local, rstd_squares);
    let largest = reduce_max(local, max_ratio);
    if (local == 0u) {
        out[p.out_offset] = total;
        out[p.out_offset + 1u] = largest;
    }
}
