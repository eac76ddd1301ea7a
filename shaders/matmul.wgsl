// C = alpha·op(A)·op(B) + beta·C (+ bias on every row), row-major, any
// shape, with optional epilogues (see the flags below).
//
// Shapes: op(A) m×k, op(B) k×n, C m×n, bias [n]. A stored m×k (plain) or
// k×m (transposed); likewise B. Operands sit at element offsets inside their
// buffers, so one binding of the parameter buffer serves every tensor.
//
// `matmul` and `matmul_gelu`: each workgroup of 16×16 invocations computes
// one 64×64 tile of C, and each invocation a 4×4 block of it in registers.
// Per step of 16 reduction terms the workgroup stages a 64×16 slice of
// op(A) and a 16×64 slice of op(B) in workgroup memory (8 KiB), so every
// value an invocation reads from workgroup memory feeds four multiply-adds
// instead of one.
//
// Out-of-range loads read 0, so sizes need not be multiples of the tiles.

struct Params {
    m: u32, k: u32, n: u32, a_offset: u32,
    b_offset: u32, c_offset: u32, bias_offset: u32, flags: u32,
    alpha: f32, beta: f32,
    // The terms k_begin..k_end of the reduction, with k_begin a multiple of
    // 16. The host splits long products so that no invocation loops more
    // than llvmpipe's limit of 65535 iterations.
    k_begin: u32, k_end: u32,
    // Offset into `aux` (RESIDUAL, GELU_GRADIENT) or into `activated`
    // (`matmul_gelu`), of a tensor shaped like C.
    aux_offset: u32,
    // Offset into C's buffer of the column sums (COLUMN_SUMS).
    sums_offset: u32,
    // The factor s of RESIDUAL.
    residual_scale: f32,
    _pad: u32,
}

// flags bits
const TRANSPOSE_A: u32 = 1u;
const TRANSPOSE_B: u32 = 2u;
const HAS_BIAS: u32 = 4u;
// C = aux + s·(alpha·op(A)·op(B) + beta·C + bias): a residual update fused
// into the product, so the branch output never goes to memory.
const RESIDUAL: u32 = 8u;
// C = (alpha·op(A)·op(B) + beta·C + bias) ⊙ GELU'(aux): the GELU backward
// fused into the product that forms the gradient of the GELU's output.
const GELU_GRADIENT: u32 = 16u;
// Also writes alpha·1ᵀ·op(B) + beta·sums, the column sums of op(B), to C's
// buffer at sums_offset: the bias gradient next to the weight gradient
// op(A)·op(B) = Xᵀ·dY. Only `matmul` honours it.
const COLUMN_SUMS: u32 = 32u;

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read> aux: array<f32>;
@group(0) @binding(6) var<storage, read_write> activated: array<f32>;

// Slices of op(A) and op(B) for one step of TILE_K terms. Element
// [kk·16 + r] of tile_a holds rows 4r..4r+3 of the 64-row tile at term kk;
// element [kk·16 + q] of tile_b holds columns 4q..4q+3 at term kk.
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

// Column sums of the op(B) values this invocation stages (COLUMN_SUMS),
// and the element of tile_b it stages them in.
var<private> staged_sums: vec4<f32>;
var<private> staged_slot: u32;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const CUBIC: f32 = 0.044715;

// op(A)[row, col], or 0 outside the matrix. Out-of-range positions load a
// valid element and discard it, so no branch depends on the position.
fn load_a(row: u32, col: u32) -> f32 {
    let inside = row < p.m && col < p.k;
    let transposed = (p.flags & TRANSPOSE_A) != 0u;
    let index = select(row * p.k + col, col * p.m + row, transposed);
    return select(0.0, a[p.a_offset + select(0u, index, inside)], inside);
}

fn load_b(row: u32, col: u32) -> f32 {
    let inside = row < p.k && col < p.n;
    let transposed = (p.flags & TRANSPOSE_B) != 0u;
    let index = select(row * p.n + col, col * p.k + row, transposed);
    return select(0.0, b[p.b_offset + select(0u, index, inside)], inside);
}

// Returns the 4×4 block of op(A)·op(B) over terms k_begin..k_end at rows
// row0..row0+3 and columns col0..col0+3 of C; column j of the result is
// row row0 + j of C. With COLUMN_SUMS it also sums the op(B) values this
// invocation stages into `staged_sums`.
fn multiply_tile(group: vec2<u32>, local: vec2<u32>) -> mat4x4<f32> {
    let lid = local.y * 16u + local.x;
    let tile_row = group.y * TILE;
    let tile_col = group.x * TILE;

    // Each invocation stages one vec4 of each slice per step. The slot it
    // takes makes neighbouring invocations read neighbouring addresses of
    // the stored layout, plain or transposed.
    let a_transposed = (p.flags & TRANSPOSE_A) != 0u;
    let a_term = select(lid % 16u, lid / 16u, a_transposed);
    let a_quad = select(lid / 16u, lid % 16u, a_transposed);
    let a_row = tile_row + 4u * a_quad;
    let b_transposed = (p.flags & TRANSPOSE_B) != 0u;
    let b_term = select(lid / 16u, lid % 16u, b_transposed);
    let b_quad = select(lid % 16u, lid / 16u, b_transposed);
    let b_col = tile_col + 4u * b_quad;

    var acc = mat4x4<f32>();
    staged_sums = vec4<f32>(0.0);
    staged_slot = b_term * 16u + b_quad;
    let step_end = (p.k_end + TILE_K - 1u) / TILE_K;
    for (var step = p.k_begin / TILE_K; step < step_end; step++) {
        let term = step * TILE_K;
        let a_col = term + a_term;
        tile_a[a_term * 16u + a_quad] =
            vec4<f32>(load_a(a_row, a_col), load_a(a_row + 1u, a_col), load_a(a_row + 2u, a_col), load_a(a_row + 3u, a_col));
        let b_row = term + b_term;
        let staged = vec4<f32>(load_b(b_row, b_col), load_b(b_row, b_col + 1u), load_b(b_row, b_col + 2u), load_b(b_row, b_col + 3u));
        tile_b[staged_slot] = staged;
        staged_sums += staged;
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let av = tile_a[kk * 16u + local.y];
            let bv = tile_b[kk * 16u + local.x];
            acc[0] += av.x * bv;
            acc[1] += av.y * bv;
            acc[2] += av.z * bv;
            acc[3] += av.w * bv;
        }
        workgroupBarrier();
    }
    return acc;
}

// The epilogue shared by both entry points: alpha·product +
// beta·C + bias, then the RESIDUAL or GELU_GRADIENT step.
fn finish_value(index: u32, col: u32, product: f32) -> f32 {
    var value = p.alpha * product;
    // beta = 0 ignores the old contents, NaN included.
    if (p.beta != 0.0) { value += p.beta * c[index]; }
    if ((p.flags & HAS_BIAS) != 0u) { value += bias[p.bias_offset + col]; }
    let aux_index = p.aux_offset + (index - p.c_offset);
    if ((p.flags & RESIDUAL) != 0u) { value = aux[aux_index] + p.residual_scale * value; }
    if ((p.flags & GELU_GRADIENT) != 0u) { value *= gelu_derivative(aux[aux_index]); }
    return value;
}

fn store_row(row: u32, col: u32, values: vec4<f32>) {
    if (row >= p.m) { return; }
    for (var j = 0u; j < 4u; j++) {
        if (col + j < p.n) {
            let index = p.c_offset + row * p.n + col + j;
            c[index] = finish_value(index, col + j, values[j]);
        }
    }
}

// Writes the column sums of op(B) for columns tile_col..tile_col+63 from
// the workgroup's 256 partial sums, using tile_b as scratch.
fn store_column_sums(tile_col: u32, lid: u32) {
    workgroupBarrier();
    tile_b[staged_slot] = staged_sums;
    workgroupBarrier();
    if (lid < 16u) {
        var total = vec4<f32>(0.0);
        for (var term = 0u; term < TILE_K; term++) { total += tile_b[term * 16u + lid]; }
        for (var j = 0u; j < 4u; j++) {
            let col = tile_col + 4u * lid + j;
            if (col < p.n) {
                let index = p.sums_offset + col;
                var value = p.alpha * total[j];
                if (p.beta != 0.0) { value += p.beta * c[index]; }
                c[index] = value;
            }
        }
    }
}

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let acc = multiply_tile(group.xy, local.xy);
    // Every invocation takes part in the barriers of the column sums.
    if ((p.flags & COLUMN_SUMS) != 0u && group.y == 0u) {
        store_column_sums(group.x * TILE, local.y * 16u + local.x);
    }
    let row = group.y * TILE + 4u * local.y;
    let col = group.x * TILE + 4u * local.x;
    store_row(row, col, acc[0]);
    store_row(row + 1u, col, acc[1]);
    store_row(row + 2u, col, acc[2]);
    store_row(row + 3u, col, acc[3]);
}

// Like `matmul`, and also writes GELU(C) to `activated` at aux_offset: the
// MLP's first layer writes its pre-activation (kept for the backward pass)
// and its output in one pass.
fn store_row_gelu(row: u32, col: u32, values: vec4<f32>) {
    if (row >= p.m) { return; }
    for (var j = 0u; j < 4u; j++) {
        if (col + j < p.n) {
            let index = p.c_offset + row * p.n + col + j;
            let value = finish_value(index, col + j, values[j]);
            c[index] = value;
            activated[p.aux_offset + row * p.n + col + j] = gelu(value);
        }
    }
}

@compute @workgroup_size(16, 16)
fn matmul_gelu(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_id) local: vec3<u32>) {
    let acc = multiply_tile(group.xy, local.xy);
    let row = group.y * TILE + 4u * local.y;
    let col = group.x * TILE + 4u * local.x;
    store_row_gelu(row, col, acc[0]);
    store_row_gelu(row + 1u, col, acc[1]);
    store_row_gelu(row + 2u, col, acc[2]);
    store_row_gelu(row + 3u, col, acc[3]);
}

// GELU, tanh form of GPT-2. Keep in step with gelu_forward and
// gelu_backward in elementwise.wgsl.
fn gelu(z: f32) -> f32 {
    return 0.5 * z * (1.0 + tanh_safe(SQRT_2_OVER_PI * (z + CUBIC * z * z * z)));
}

fn gelu_derivative(z: f32) -> f32 {
    let t = tanh_safe(SQRT_2_OVER_PI * (z + CUBIC * z * z * z));
    let du_dz = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * z * z);
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du_dz;
}

fn tanh_safe(u: f32) -> f32 {
    return tanh(clamp(u, -15.0, 15.0));
}
