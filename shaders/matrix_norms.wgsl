// Norms of sub-matrices of one flat buffer, one workgroup per job: the
// Frobenius norm, the max absolute row sum and the max absolute column sum
// (the inputs of the spectral-norm bound min(‖W‖_F, sqrt(‖W‖₁·‖W‖_∞))).
//
// jobs: 4 u32 per job: element offset, rows, columns, row stride.
// out: 3 f32 per job.

const GROUP: u32 = 256u;

@group(0) @binding(0) var<storage, read> values: array<f32>;
@group(0) @binding(1) var<storage, read> jobs: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> sums: array<f32, 256>;
var<workgroup> maxima: array<f32, 256>;

@compute @workgroup_size(256)
fn matrix_norms(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let local = lid.x;
    let job = group.x;
    let offset = jobs[4u * job];
    let rows = jobs[4u * job + 1u];
    let cols = jobs[4u * job + 2u];
    let stride = jobs[4u * job + 3u];

    var squares = 0.0;
    var max_row = 0.0;
    for (var r = local; r < rows; r += GROUP) {
        var row_sum = 0.0;
        for (var c = 0u; c < cols; c++) {
            let w = values[offset + r * stride + c];
            squares += w * w;
            row_sum += abs(w);
        }
        max_row = max(max_row, row_sum);
    }
    var max_col = 0.0;
    for (var c = local; c < cols; c += GROUP) {
        var col_sum = 0.0;
        for (var r = 0u; r < rows; r++) { col_sum += abs(values[offset + r * stride + c]); }
        max_col = max(max_col, col_sum);
    }

    sums[local] = squares;
    maxima[local] = max_row;
    workgroupBarrier();
    for (var width = GROUP / 2u; width > 0u; width /= 2u) {
        if (local < width) {
            sums[local] += sums[local + width];
            maxima[local] = max(maxima[local], maxima[local + width]);
        }
        workgroupBarrier();
    }
    let total = sums[0];
    let largest_row = maxima[0];
    workgroupBarrier();
    maxima[local] = max_col;
    workgroupBarrier();
    for (var width = GROUP / 2u; width > 0u; width /= 2u) {
        if (local < width) { maxima[local] = max(maxima[local], maxima[local + width]); }
        workgroupBarrier();
    }
    if (local == 0u) {
        out[3u * job] = sqrt(total);
        out[3u * job + 1u] = largest_row;
        out[3u * job + 2u] = maxima[0];
    }
}
