// C = alpha·op(A)·op(B) + beta·C (+ bias on every row), row-major, any shape.
//
// Shapes: op(A) m×k, op(B) k×n, C m×n, bias [n]. A stored m×k (plain) or
// k×m (transposed); likewise B. Operands sit at element offsets inside their
// buffers, so one binding of the parameter buffer serves every tensor.
//
// Each workgroup computes one 16×16 tile of C, staging 16×16 tiles of A and
// B in workgroup memory. Out-of-range loads read 0, so sizes need not be
// multiples of 16.

struct Params {
    m: u32, k: u32, n: u32, a_offset: u32,
    b_offset: u32, c_offset: u32, bias_offset: u32, flags: u32,
    alpha: f32, beta: f32,
    // The terms k_begin..k_end of the reduction, with k_begin a multiple of
    // 16. The host splits long products so that no invocation loops more
    // than llvmpipe's limit of 65535 iterations.
    k_begin: u32, k_end: u32,
}

// flags bits
const TRANSPOSE_A: u32 = 1u;
const TRANSPOSE_B: u32 = 2u;
const HAS_BIAS: u32 = 4u;
const TILE: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

var<workgroup> tile_a: array<array<f32, 16>, 16>;
var<workgroup> tile_b: array<array<f32, 16>, 16>;

fn load_a(row: u32, col: u32) -> f32 {
    if (row >= p.m || col >= p.k) { return 0.0; }
    if ((p.flags & TRANSPOSE_A) != 0u) { return a[p.a_offset + col * p.m + row]; }
    return a[p.a_offset + row * p.k + col];
}

fn load_b(row: u32, col: u32) -> f32 {
    if (row >= p.k || col >= p.n) { return 0.0; }
    if ((p.flags & TRANSPOSE_B) != 0u) { return b[p.b_offset + col * p.k + row]; }
    return b[p.b_offset + row * p.n + col];
}

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let row = group.y * TILE + local.y;
    let col = group.x * TILE + local.x;
    var sum = 0.0;
    let tile_end = (p.k_end + TILE - 1u) / TILE;
    for (var t = p.k_begin / TILE; t < tile_end; t++) {
        tile_a[local.y][local.x] = load_a(row, t * TILE + local.x);
        tile_b[local.y][local.x] = load_b(t * TILE + local.y, col);
        workgroupBarrier();
        for (var i = 0u; i < TILE; i++) {
            sum += tile_a[local.y][i] * tile_b[i][local.x];
        }
        workgroupBarrier();
    }
    if (row >= p.m || col >= p.n) { return; }
    let index = p.c_offset + row * p.n + col;
    var value = p.alpha * sum;
    // beta = 0 ignores the old contents, NaN included.
    if (p.beta != 0.0) { value += p.beta * c[index]; }
    if ((p.flags & HAS_BIAS) != 0u) { value += bias[p.bias_offset + col]; }
    c[index] = value;
}
