//! Every WGSL kernel of `shaders/` against the CPU reference, on the
//! lavapipe software Vulkan adapter.
//!
//! References run in f64 on the same f32 inputs, so a comparison measures
//! the GPU's own rounding. Errors are relative to the largest magnitude of
//! the reference. With u = 2⁻²⁴ ≈ 6e-8, a sum of n terms of random sign
//! typically carries a relative error of about sqrt(n)·u, and at worst n·u.
//! The tolerances below sit one or two orders of magnitude above the
//! typical error, so they catch a wrong index or a missed term (errors of
//! order 1) without failing on rounding.
//!
//! Run with `--nocapture` to see the max error observed for each kernel.

use lnlab::config::{ModelConfig, OptimizerKind, TrainConfig};
use lnlab::gpu::kernels::{AttentionParams, Epilogue, Kernels, MatmulShape, Plan, StepParams, View, NORM_PARTIALS, STATS_PER_STATE};
use lnlab::gpu::{BufferNeeds, GpuContext};
use lnlab::kernels::cpu::attention::{attention_backward, attention_forward, AttentionShape};
use lnlab::kernels::cpu::cross_entropy::{cross_entropy_backward, cross_entropy_forward};
use lnlab::kernels::cpu::embedding::{embedding_backward, embedding_forward};
use lnlab::kernels::cpu::gelu::{gelu_backward, gelu_forward};
use lnlab::kernels::cpu::layernorm::{layernorm_backward, layernorm_forward};
use lnlab::kernels::cpu::matmul::{gemm, Op};
use lnlab::metrics::bounds::spectral_norm_bound;
use lnlab::metrics::hidden_stats::measure_state;
use lnlab::model::{Layout, TensorKind};
use lnlab::rng::{seeded, LabRng};
use lnlab::train::optimizer::{clip_global_norm, global_norm, Optimizer, ADAM_BETA1, ADAM_BETA2, ADAM_EPS};
use rand::Rng;

/// Fills the unused head and tail of output buffers, so that a write
/// outside a kernel's tensor shows up as a changed value. Input buffers are
/// padded with NaN instead, so that a read outside the tensor poisons the
/// result even where it is multiplied by zero.
const SENTINEL: f32 = 12345.0;

/// Bit pattern of the optimiser's `state[3]` before any non-finite step.
const NO_STEP: u32 = 0xFFFF_FFFF;

/// Tolerance for a result whose longest floating-point reduction has `len`
/// terms: 1e-5 up to 64 terms (typical error sqrt(64)·u ≈ 5e-7), 1e-4
/// beyond (1000 terms: typical 2e-6, worst case 6e-5).
fn reduction_tolerance(len: usize) -> f64 {
    if len <= 64 {
        1e-5
    } else {
        1e-4
    }
}

/// The lavapipe context and compiled kernels of one test.
struct Gpu {
    ctx: GpuContext,
    kernels: Kernels,
}

/// Opens the default adapter and fails unless it is lavapipe on Vulkan, so
/// that a machine without the adapter fails these tests instead of
/// skipping them.
fn open_gpu() -> Gpu {
    let ctx = pollster::block_on(GpuContext::new(BufferNeeds::default(), |_| String::from("none")))
        .unwrap_or_else(|error| panic!("opening the lavapipe adapter failed (install mesa-vulkan-drivers): {error}"));
    assert_eq!(ctx.adapter.backend, "Vulkan", "adapter {} is not on the Vulkan backend", ctx.adapter);
    assert!(ctx.adapter.name.contains("llvmpipe"), "adapter {} is not lavapipe (llvmpipe)", ctx.adapter);
    let kernels = Kernels::new(&ctx);
    Gpu { ctx, kernels }
}

impl Gpu {
    /// Submits `plan` in one compute pass.
    fn run(&self, plan: &Plan) {
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        plan.encode_pass(&mut encoder, "test");
        self.ctx.queue.submit([encoder.finish()]);
    }

    fn read(&self, buffer: &wgpu::Buffer, len: usize) -> Vec<f32> {
        pollster::block_on(self.ctx.read_f32(buffer, len)).expect("reading a result buffer back failed")
    }

    fn read_u32(&self, buffer: &wgpu::Buffer, len: usize) -> Vec<u32> {
        pollster::block_on(self.ctx.read_u32(buffer, len)).expect("reading a result buffer back failed")
    }
}

fn random_vec(rng: &mut LabRng, len: usize, low: f32, high: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(low..high)).collect()
}

fn to_f64(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| v as f64).collect()
}

fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

/// `head` copies of `fill`, then `body`, then `tail` copies of `fill`.
fn padded_with(fill: f32, head: usize, body: &[f32], tail: usize) -> Vec<f32> {
    let mut values = vec![fill; head];
    values.extend_from_slice(body);
    values.extend(std::iter::repeat_n(fill, tail));
    values
}

/// Returns an output tensor between sentinels.
fn padded(head: usize, body: &[f32], tail: usize) -> Vec<f32> {
    padded_with(SENTINEL, head, body, tail)
}

/// Returns an input tensor between NaNs.
fn padded_input(head: usize, body: &[f32], tail: usize) -> Vec<f32> {
    padded_with(f32::NAN, head, body, tail)
}

/// Max |got − expected| over the largest |expected| (over 1 when the
/// reference is all zero). A NaN or infinity in `got` counts as infinite
/// error.
fn relative_error(got: &[f32], expected: &[f64]) -> (f64, usize) {
    assert_eq!(got.len(), expected.len(), "result and reference lengths differ");
    let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let scale = if scale > 0.0 { scale } else { 1.0 };
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
        let error = if g.is_finite() { (g as f64 - e).abs() / scale } else { f64::INFINITY };
        if error > worst.0 {
            worst = (error, i);
        }
    }
    worst
}

/// Asserts that `got` matches `expected` within `tolerance` (relative to
/// the largest |expected|) and returns the error.
fn assert_close(case: &str, got: &[f32], expected: &[f64], tolerance: f64) -> f64 {
    let (error, index) = relative_error(got, expected);
    assert!(
        error <= tolerance,
        "{case}: relative error {error:.3e} exceeds {tolerance:.0e} at index {index} (got {}, expected {})",
        got[index],
        expected[index],
    );
    error
}

/// Asserts that every value outside `range` is still the sentinel.
fn assert_untouched(case: &str, values: &[f32], range: std::ops::Range<usize>) {
    for (i, &v) in values.iter().enumerate() {
        if !range.contains(&i) {
            assert_eq!(v, SENTINEL, "{case}: element {i} outside the output tensor was overwritten");
        }
    }
}

/// Max error over several cases, printed at the end of a test.
#[derive(Default)]
struct WorstError(Vec<(&'static str, f64)>);

impl WorstError {
    fn record(&mut self, kernel: &'static str, error: f64) {
        match self.0.iter_mut().find(|(name, _)| *name == kernel) {
            Some((_, worst)) => *worst = worst.max(error),
            None => self.0.push((kernel, error)),
        }
    }

    fn print(&self) {
        for (kernel, error) in &self.0 {
            eprintln!("{kernel}: max relative error {error:.2e}");
        }
    }
}

// ---------------------------------------------------------------- matmul

struct MatmulCase {
    shape: MatmulShape,
    bias: bool,
}

/// Element offsets of A, B, C and the bias inside their buffers. None is a
/// multiple of 4, so a kernel that ignores an offset reads the wrong data.
const A_OFFSET: usize = 3;
const B_OFFSET: usize = 5;
const C_OFFSET: usize = 7;
const BIAS_OFFSET: usize = 2;

fn matmul_cases() -> Vec<MatmulCase> {
    let mut cases = Vec::new();
    // Every size straddling the 64×64 tiles of C and the 16-term steps of
    // the reduction, plain operands, beta = 0 over a C full of NaN, with and
    // without bias.
    for m in [1, 63, 64, 65, 129, 500] {
        for k in [1, 16, 17, 64, 300] {
            for n in [1, 31, 33, 64, 65, 130] {
                let shape = MatmulShape::new(m, k, n);
                cases.push(MatmulCase { shape, bias: (m + k + n) % 2 == 0 });
            }
        }
    }
    // Every transpose combination on a subset, accumulating (beta = 1) on
    // half of the shapes, with alpha ≠ 1.
    let subset = [(63, 17, 33), (65, 300, 31), (1, 64, 1), (500, 17, 32), (64, 1, 33), (128, 47, 129), (130, 64, 64)];
    for (index, &(m, k, n)) in subset.iter().enumerate() {
        for (transpose_a, transpose_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let beta = if index % 2 == 0 { 1.0 } else { 0.0 };
            let shape = MatmulShape { m, k, n, transpose_a, transpose_b, alpha: 0.5, beta };
            cases.push(MatmulCase { shape, bias: transpose_a != transpose_b });
        }
    }
    // Reductions longer than one dispatch's chunk of 32768 terms, as in a
    // weight gradient Xᵀ·dY over many rows: the chunks must apply beta and
    // the bias once.
    let long = [(5, 70_000, 3, true, false, 0.0, true), (2, 70_000, 17, false, true, 1.0, false)];
    for (m, k, n, transpose_a, transpose_b, beta, bias) in long {
        cases.push(MatmulCase { shape: MatmulShape { m, k, n, transpose_a, transpose_b, alpha: 1.0, beta }, bias });
    }
    cases
}

#[test]
fn matmul_matches_cpu_reference() {
    let gpu = open_gpu();
    let mut rng = seeded(1);
    let cases = matmul_cases();

    struct Prepared {
        a: Vec<f32>,
        b: Vec<f32>,
        bias: Vec<f32>,
        c_init: Vec<f32>,
        c_buffer: wgpu::Buffer,
    }
    let mut plan = Plan::default();
    let mut prepared = Vec::new();
    for case in &cases {
        let MatmulShape { m, k, n, beta, .. } = case.shape;
        let a = random_vec(&mut rng, m * k, -1.0, 1.0);
        let b = random_vec(&mut rng, k * n, -1.0, 1.0);
        let bias = random_vec(&mut rng, n, -1.0, 1.0);
        // beta = 0 must ignore the old C, NaN included.
        let c_init = if beta == 0.0 { vec![f32::NAN; m * n] } else { random_vec(&mut rng, m * n, -1.0, 1.0) };
        let a_buffer = gpu.ctx.upload("a", &padded_input(A_OFFSET, &a, 2));
        let b_buffer = gpu.ctx.upload("b", &padded_input(B_OFFSET, &b, 2));
        let bias_buffer = gpu.ctx.upload("bias", &padded_input(BIAS_OFFSET, &bias, 2));
        let c_buffer = gpu.ctx.upload("c", &padded(C_OFFSET, &c_init, 4));
        let bias_view = case.bias.then(|| View::at(&bias_buffer, BIAS_OFFSET));
        gpu.kernels.matmul(
            &gpu.ctx, &mut plan, case.shape,
            View::at(&a_buffer, A_OFFSET), View::at(&b_buffer, B_OFFSET), bias_view, View::at(&c_buffer, C_OFFSET),
        );
        prepared.push(Prepared { a, b, bias, c_init, c_buffer });
    }
    gpu.run(&plan);

    let mut worst = WorstError::default();
    for (case, data) in cases.iter().zip(&prepared) {
        let MatmulShape { m, k, n, transpose_a, transpose_b, alpha, beta } = case.shape;
        let name = format!("matmul m={m} k={k} n={n} transpose=({transpose_a}, {transpose_b}) beta={beta} bias={}", case.bias);
        let op = |transposed: bool| if transposed { Op::Transposed } else { Op::Plain };
        let mut expected = if beta == 0.0 { vec![0.0; m * n] } else { to_f64(&data.c_init) };
        gemm(m, k, n, alpha as f64, &to_f64(&data.a), op(transpose_a), &to_f64(&data.b), op(transpose_b), beta as f64, &mut expected);
        if case.bias {
            for row in expected.chunks_exact_mut(n) {
                for (value, &b) in row.iter_mut().zip(&data.bias) {
                    *value += b as f64;
                }
            }
        }

        let whole = gpu.read(&data.c_buffer, C_OFFSET + m * n + 4);
        assert_untouched(&name, &whole, C_OFFSET..C_OFFSET + m * n);
        let got = &whole[C_OFFSET..C_OFFSET + m * n];
        worst.record("matmul", assert_close(&name, got, &expected, reduction_tolerance(k)));
    }
    worst.print();
}

/// Which fused step a [`matmul_epilogues_match_cpu_reference`] case runs.
#[derive(Clone, Copy, Debug)]
enum EpilogueKind {
    Residual,
    Gelu,
    GeluGradient,
    ColumnSums,
}

/// Each epilogue of the matmul against the f64 reference, on shapes that
/// straddle the 64×64 tiles, with both transposes, alpha ≠ 1 and a bias.
/// Extra outputs start as NaN (beta = 0) or random values (beta = 1) and
/// sit between sentinels.
#[test]
fn matmul_epilogues_match_cpu_reference() {
    let gpu = open_gpu();
    let mut rng = seeded(11);
    let mut worst = WorstError::default();
    let shapes = [(1, 17, 33), (63, 64, 65), (130, 300, 64), (65, 16, 1)];
    let kinds = [EpilogueKind::Residual, EpilogueKind::Gelu, EpilogueKind::GeluGradient, EpilogueKind::ColumnSums];
    for (index, &(m, k, n)) in shapes.iter().enumerate() {
        for (kind_index, &kind) in kinds.iter().enumerate() {
            let transpose_a = (index + kind_index) % 2 == 1;
            let transpose_b = index % 2 == 0;
            let beta = if kind_index % 2 == 0 { 1.0 } else { 0.0 };
            let shape = MatmulShape { m, k, n, transpose_a, transpose_b, alpha: 0.75, beta };
            let with_bias = !matches!(kind, EpilogueKind::ColumnSums) || index % 2 == 0;
            check_epilogue(&gpu, &mut rng, &mut worst, shape, with_bias, kind);
        }
    }
    // Column sums over a reduction split into chunks: beta applies once.
    for beta in [0.0, 1.0] {
        let shape = MatmulShape { m: 3, k: 70_000, n: 5, transpose_a: true, transpose_b: false, alpha: 1.0, beta };
        check_epilogue(&gpu, &mut rng, &mut worst, shape, false, EpilogueKind::ColumnSums);
    }
    worst.print();
}

fn check_epilogue(gpu: &Gpu, rng: &mut LabRng, worst: &mut WorstError, shape: MatmulShape, with_bias: bool, kind: EpilogueKind) {
    let MatmulShape { m, k, n, transpose_a, transpose_b, alpha, beta } = shape;
    let case = format!("matmul {kind:?} m={m} k={k} n={n} transpose=({transpose_a}, {transpose_b}) beta={beta} bias={with_bias}");
    let a = random_vec(rng, m * k, -1.0, 1.0);
    let b = random_vec(rng, k * n, -1.0, 1.0);
    let bias = random_vec(rng, n, -1.0, 1.0);
    let initial = |rng: &mut LabRng, len: usize| if beta == 0.0 { vec![f32::NAN; len] } else { random_vec(rng, len, -1.0, 1.0) };
    let c_init = initial(rng, m * n);
    let sums_init = initial(rng, n);
    // The residual, or the GELU's input, shaped like C.
    let aux = random_vec(rng, m * n, -3.0, 3.0);

    // C's buffer: sentinels, C, three sentinels, the column sums, sentinels.
    let sums_at = C_OFFSET + m * n + 3;
    let mut c_values = padded(C_OFFSET, &c_init, 3);
    c_values.extend(padded(0, &sums_init, 2));
    let a_buffer = gpu.ctx.upload("a", &padded_input(A_OFFSET, &a, 2));
    let b_buffer = gpu.ctx.upload("b", &padded_input(B_OFFSET, &b, 2));
    let bias_buffer = gpu.ctx.upload("bias", &padded_input(BIAS_OFFSET, &bias, 2));
    let c_buffer = gpu.ctx.upload("c", &c_values);
    let aux_buffer = gpu.ctx.upload("aux", &padded_input(4, &aux, 2));
    let activated_buffer = gpu.ctx.upload("activated", &padded(6, &vec![f32::NAN; m * n], 2));
    let epilogue = match kind {
        EpilogueKind::Residual => Epilogue::Residual { residual: View::at(&aux_buffer, 4), scale: -0.3 },
        EpilogueKind::Gelu => Epilogue::Gelu { activated: View::at(&activated_buffer, 6) },
        EpilogueKind::GeluGradient => Epilogue::GeluGradient { pre: View::at(&aux_buffer, 4) },
        EpilogueKind::ColumnSums => Epilogue::ColumnSums { sums: sums_at },
    };
    let mut plan = Plan::default();
    gpu.kernels.matmul_with(
        &gpu.ctx, &mut plan, shape, View::at(&a_buffer, A_OFFSET), View::at(&b_buffer, B_OFFSET),
        with_bias.then(|| View::at(&bias_buffer, BIAS_OFFSET)), View::at(&c_buffer, C_OFFSET), epilogue,
    );
    gpu.run(&plan);

    // y = alpha·op(A)·op(B) + beta·C + bias, then the epilogue.
    let op = |transposed: bool| if transposed { Op::Transposed } else { Op::Plain };
    let mut y = if beta == 0.0 { vec![0.0; m * n] } else { to_f64(&c_init) };
    gemm(m, k, n, alpha as f64, &to_f64(&a), op(transpose_a), &to_f64(&b), op(transpose_b), beta as f64, &mut y);
    if with_bias {
        for row in y.chunks_exact_mut(n) {
            for (value, &b) in row.iter_mut().zip(&bias) {
                *value += b as f64;
            }
        }
    }
    let aux64 = to_f64(&aux);
    let expected_c = match kind {
        EpilogueKind::Residual => aux64.iter().zip(&y).map(|(r, v)| r - 0.3 * v).collect(),
        EpilogueKind::GeluGradient => {
            let mut dinp = vec![0.0; m * n];
            gelu_backward(&mut dinp, &y, &aux64);
            dinp
        }
        EpilogueKind::Gelu | EpilogueKind::ColumnSums => y.clone(),
    };
    let tolerance = reduction_tolerance(k);
    let whole = gpu.read(&c_buffer, c_values.len());
    let c_range = C_OFFSET..C_OFFSET + m * n;
    let sums_range = sums_at..sums_at + n;
    for (i, &value) in whole.iter().enumerate() {
        if !c_range.contains(&i) && !sums_range.contains(&i) {
            assert_eq!(value, SENTINEL, "{case}: element {i} outside the output tensors was overwritten");
        }
    }
    worst.record("matmul epilogue", assert_close(&case, &whole[c_range], &expected_c, tolerance));

    match kind {
        EpilogueKind::Gelu => {
            let mut expected = vec![0.0; m * n];
            gelu_forward(&mut expected, &y);
            let activated = gpu.read(&activated_buffer, 6 + m * n + 2);
            assert_untouched(&format!("{case} activated"), &activated, 6..6 + m * n);
            worst.record("matmul epilogue", assert_close(&format!("{case} activated"), &activated[6..6 + m * n], &expected, tolerance));
        }
        EpilogueKind::ColumnSums => {
            let mut expected = if beta == 0.0 { vec![0.0; n] } else { to_f64(&sums_init) };
            let ones = vec![1.0; k];
            gemm(1, k, n, alpha as f64, &ones, Op::Plain, &to_f64(&b), op(transpose_b), beta as f64, &mut expected);
            worst.record("matmul column sums", assert_close(&format!("{case} sums"), &whole[sums_range], &expected, tolerance));
        }
        EpilogueKind::Residual | EpilogueKind::GeluGradient => {
            for (i, (got, initial)) in whole[sums_range].iter().zip(&sums_init).enumerate() {
                assert_eq!(got.to_bits(), initial.to_bits(), "{case}: column sum {i} was written without COLUMN_SUMS");
            }
        }
    }
}

// ------------------------------------------------------------- attention

/// Uploads `qkv`, runs the attention forward and backward, and compares
/// both with the f64 reference. Returns the errors of (out, probs, dqkv).
fn check_attention(gpu: &Gpu, rng: &mut LabRng, case: &str, shape: AttentionShape, qkv: &[f32], tolerance: f64) -> (f64, f64, f64) {
    let AttentionShape { batch, context, width, heads } = shape;
    let params = AttentionParams::new(batch, context, width, heads);
    let prob_len = batch * heads * context * context;
    let out_len = batch * context * width;
    let qkv_len = batch * context * 3 * width;
    assert_eq!(qkv.len(), qkv_len, "{case}: qkv length");

    let mut expected_out = vec![0.0f64; out_len];
    let mut expected_probs = vec![0.0f64; prob_len];
    attention_forward(&mut expected_out, &mut expected_probs, &to_f64(qkv), shape);

    // Forward, over outputs full of NaN: every entry must be written.
    let qkv_buffer = gpu.ctx.upload("qkv", qkv);
    let probs_buffer = gpu.ctx.upload("probs", &vec![f32::NAN; prob_len]);
    let out_buffer = gpu.ctx.upload("out", &vec![f32::NAN; out_len]);
    let mut plan = Plan::default();
    gpu.kernels.attention_forward(&gpu.ctx, &mut plan, params, &qkv_buffer, &probs_buffer, &out_buffer);
    gpu.run(&plan);
    let probs = gpu.read(&probs_buffer, prob_len);
    let out = gpu.read(&out_buffer, out_len);
    for row in 0..batch * heads * context {
        let t = row % context;
        for s in t + 1..context {
            assert_eq!(probs[row * context + s], 0.0, "{case}: probability of future position {s} for query {t}");
        }
    }
    let probs_error = assert_close(&format!("{case} probs"), &probs, &expected_probs, tolerance);
    let out_error = assert_close(&format!("{case} out"), &out, &expected_out, tolerance);

    // The backward starts from the reference probabilities (rounded to
    // f32), so that it is checked on its own. dqkv starts as NaN, so every
    // entry must be written.
    let dout = random_vec(rng, out_len, -1.0, 1.0);
    let probs_f32 = to_f32(&expected_probs);
    let mut expected_dqkv = vec![0.0f64; qkv_len];
    attention_backward(&mut expected_dqkv, &to_f64(&dout), &to_f64(qkv), &to_f64(&probs_f32), shape);
    let dout_buffer = gpu.ctx.upload("dout", &dout);
    let probs_in = gpu.ctx.upload("probs", &probs_f32);
    let dscores = gpu.ctx.zeros("dscores", prob_len);
    let dqkv_buffer = gpu.ctx.upload("dqkv", &vec![f32::NAN; qkv_len]);
    let mut plan = Plan::default();
    gpu.kernels.attention_backward(&gpu.ctx, &mut plan, params, &dout_buffer, &qkv_buffer, &probs_in, &dscores, &dqkv_buffer);
    gpu.run(&plan);
    let dqkv = gpu.read(&dqkv_buffer, qkv_len);
    let dqkv_error = assert_close(&format!("{case} dqkv"), &dqkv, &expected_dqkv, tolerance);
    (out_error, probs_error, dqkv_error)
}

/// Scales the q and k parts of `qkv` by one factor so that the largest
/// |score| q·k/sqrt(d_h) over the causal positions is `target`.
fn scale_scores(qkv: &mut [f32], shape: AttentionShape, target: f64) {
    let AttentionShape { batch, context, width, heads } = shape;
    let dh = width / heads;
    let mut largest = 0.0f64;
    for b in 0..batch {
        for h in 0..heads {
            for t in 0..context {
                for s in 0..=t {
                    let q = (b * context + t) * 3 * width + h * dh;
                    let k = (b * context + s) * 3 * width + width + h * dh;
                    let dot: f64 = (0..dh).map(|i| qkv[q + i] as f64 * qkv[k + i] as f64).sum();
                    largest = largest.max((dot / (dh as f64).sqrt()).abs());
                }
            }
        }
    }
    let factor = (target / largest).sqrt() as f32;
    for row in qkv.chunks_exact_mut(3 * width) {
        for value in &mut row[..2 * width] {
            *value *= factor;
        }
    }
}

#[test]
fn attention_matches_cpu_reference() {
    let gpu = open_gpu();
    let mut rng = seeded(2);
    let mut worst = WorstError::default();
    let shapes = [
        AttentionShape { batch: 1, context: 1, width: 8, heads: 2 },
        AttentionShape { batch: 2, context: 3, width: 8, heads: 2 },
        AttentionShape { batch: 1, context: 13, width: 12, heads: 3 },
        AttentionShape { batch: 1, context: 1000, width: 16, heads: 2 },
        // About 2·d_h·T = 77000 loop iterations for the last query row if one
        // invocation computed it, past llvmpipe's limit of 65535.
        AttentionShape { batch: 1, context: 600, width: 64, heads: 1 },
        // 66000 rows, more than the 65535 workgroups of one grid dimension.
        AttentionShape { batch: 16_500, context: 2, width: 4, heads: 2 },
    ];
    for shape in shapes {
        let case = format!("attention {shape:?}");
        let qkv = random_vec(&mut rng, shape.batch * shape.context * 3 * shape.width, -1.0, 1.0);
        // The softmax sums `context` terms and each score `head_dim` terms.
        let tolerance = reduction_tolerance(shape.context.max(shape.width / shape.heads));
        let (out, probs, dqkv) = check_attention(&gpu, &mut rng, &case, shape, &qkv, tolerance);
        worst.record("attention out", out);
        worst.record("attention probs", probs);
        worst.record("attention dqkv", dqkv);
    }
    worst.print();
}

#[test]
fn attention_softmax_extreme_scores() {
    let gpu = open_gpu();
    let mut rng = seeded(3);
    let mut worst = WorstError::default();
    // Scores of magnitude S carry an absolute rounding error of up to about
    // S·d_h·u, which becomes the relative error of exp(score − max): for
    // S = 80 and d_h = 4 that is 2e-5, so these cases allow 1e-4.
    let tolerance = 1e-4;
    for context in [1, 3, 13] {
        let shape = AttentionShape { batch: 1, context, width: 8, heads: 2 };
        let len = context * 3 * shape.width;

        // Mixed signs, scaled so the scores reach ±80.
        let mut mixed = random_vec(&mut rng, len, -1.0, 1.0);
        scale_scores(&mut mixed, shape, 80.0);
        let (out, probs, dqkv) = check_attention(&gpu, &mut rng, &format!("attention scores ±80, T={context}"), shape, &mixed, tolerance);
        worst.record("attention out (±80)", out);
        worst.record("attention probs (±80)", probs);
        worst.record("attention dqkv (±80)", dqkv);

        // q > 0 and k < 0 everywhere, so every score of every row is
        // negative, down to −80.
        let mut negative = random_vec(&mut rng, len, 0.1, 1.0);
        for row in negative.chunks_exact_mut(3 * shape.width) {
            for value in &mut row[shape.width..2 * shape.width] {
                *value = -*value;
            }
        }
        scale_scores(&mut negative, shape, 80.0);
        let (out, probs, dqkv) = check_attention(&gpu, &mut rng, &format!("attention negative scores, T={context}"), shape, &negative, tolerance);
        worst.record("attention out (negative)", out);
        worst.record("attention probs (negative)", probs);
        worst.record("attention dqkv (negative)", dqkv);
    }
    worst.print();
}

// ------------------------------------------------------------- layernorm

/// Offsets of the tensors of one LayerNorm test inside their buffers.
const IN_OFFSET: usize = 2;
const OUT_OFFSET: usize = 4;
const STATS_OFFSET: usize = 1;
const GAMMA_OFFSET: usize = 7;

/// Expected LayerNorm results in f64.
struct LayerNormReference {
    out: Vec<f64>,
    mean: Vec<f64>,
    rstd: Vec<f64>,
    dinp: Vec<f64>,
    dgamma: Vec<f64>,
    dbeta: Vec<f64>,
}

/// GPU LayerNorm results, read back without the padding.
struct LayerNormResult {
    out: Vec<f32>,
    mean: Vec<f32>,
    rstd: Vec<f32>,
    dinp: Vec<f32>,
    dgamma: Vec<f32>,
    dbeta: Vec<f32>,
}

/// Runs the LayerNorm forward and backward on `inp` [rows, d] with every
/// tensor at a nonzero offset, γ and β inside one weights buffer, and the
/// gradient buffer pre-filled with `grad_init` (dγ at γ's offset, dβ at
/// β's). Checks that nothing outside the tensors changes.
#[allow(clippy::too_many_arguments)]
fn run_layernorm(
    gpu: &Gpu, case: &str, rows: usize, d: usize, inp: &[f32], gamma: &[f32], beta: &[f32], dout: &[f32], grad_init: &[f32],
) -> LayerNormResult {
    let beta_offset = GAMMA_OFFSET + d + 3;
    let weights_len = beta_offset + d + 2;
    let mut weights = vec![f32::NAN; weights_len];
    weights[GAMMA_OFFSET..GAMMA_OFFSET + d].copy_from_slice(gamma);
    weights[beta_offset..beta_offset + d].copy_from_slice(beta);
    let mut grads = vec![SENTINEL; weights_len];
    grads[GAMMA_OFFSET..GAMMA_OFFSET + d].copy_from_slice(&grad_init[..d]);
    grads[beta_offset..beta_offset + d].copy_from_slice(&grad_init[d..]);

    let n = rows * d;
    let inp_buffer = gpu.ctx.upload("inp", &padded_input(IN_OFFSET, inp, 3));
    let weights_buffer = gpu.ctx.upload("weights", &weights);
    let out_buffer = gpu.ctx.upload("out", &padded(OUT_OFFSET, &vec![f32::NAN; n], 3));
    let stats_buffer = gpu.ctx.upload("stats", &padded(STATS_OFFSET, &vec![f32::NAN; 2 * rows], 3));
    let dout_buffer = gpu.ctx.upload("dout", &padded_input(IN_OFFSET + 1, dout, 3));
    let dinp_buffer = gpu.ctx.upload("dinp", &padded(OUT_OFFSET + 1, &vec![f32::NAN; n], 3));
    let grads_buffer = gpu.ctx.upload("grads", &grads);

    let mut plan = Plan::default();
    gpu.kernels.layernorm_forward(
        &gpu.ctx, &mut plan, rows, d, View::at(&inp_buffer, IN_OFFSET), &weights_buffer, GAMMA_OFFSET, beta_offset,
        View::at(&out_buffer, OUT_OFFSET), View::at(&stats_buffer, STATS_OFFSET),
    );
    gpu.kernels.layernorm_backward(
        &gpu.ctx, &mut plan, rows, d, View::at(&dout_buffer, IN_OFFSET + 1), View::at(&inp_buffer, IN_OFFSET),
        View::at(&stats_buffer, STATS_OFFSET), &weights_buffer, GAMMA_OFFSET, beta_offset,
        View::at(&dinp_buffer, OUT_OFFSET + 1), &grads_buffer,
    );
    gpu.run(&plan);

    let out = gpu.read(&out_buffer, OUT_OFFSET + n + 3);
    let stats = gpu.read(&stats_buffer, STATS_OFFSET + 2 * rows + 3);
    let dinp = gpu.read(&dinp_buffer, OUT_OFFSET + 1 + n + 3);
    let grads_after = gpu.read(&grads_buffer, weights_len);
    assert_untouched(&format!("{case} out"), &out, OUT_OFFSET..OUT_OFFSET + n);
    assert_untouched(&format!("{case} stats"), &stats, STATS_OFFSET..STATS_OFFSET + 2 * rows);
    assert_untouched(&format!("{case} dinp"), &dinp, OUT_OFFSET + 1..OUT_OFFSET + 1 + n);
    for (i, (&after, &before)) in grads_after.iter().zip(&grads).enumerate() {
        let inside = (GAMMA_OFFSET..GAMMA_OFFSET + d).contains(&i) || (beta_offset..beta_offset + d).contains(&i);
        if !inside {
            assert_eq!(after, before, "{case}: gradient element {i} outside dγ and dβ changed");
        }
    }
    LayerNormResult {
        out: out[OUT_OFFSET..OUT_OFFSET + n].to_vec(),
        mean: stats[STATS_OFFSET..STATS_OFFSET + rows].to_vec(),
        rstd: stats[STATS_OFFSET + rows..STATS_OFFSET + 2 * rows].to_vec(),
        dinp: dinp[OUT_OFFSET + 1..OUT_OFFSET + 1 + n].to_vec(),
        dgamma: grads_after[GAMMA_OFFSET..GAMMA_OFFSET + d].to_vec(),
        dbeta: grads_after[beta_offset..beta_offset + d].to_vec(),
    }
}

fn layernorm_reference(d: usize, inp: &[f32], gamma: &[f32], beta: &[f32], dout: &[f32], grad_init: &[f32]) -> LayerNormReference {
    let rows = inp.len() / d;
    let (inp, gamma, beta, dout) = (to_f64(inp), to_f64(gamma), to_f64(beta), to_f64(dout));
    let mut out = vec![0.0; rows * d];
    let mut mean = vec![0.0; rows];
    let mut rstd = vec![0.0; rows];
    layernorm_forward(&mut out, &mut mean, &mut rstd, &inp, &gamma, &beta, d);
    let mut dinp = vec![0.0; rows * d];
    let mut dgamma = to_f64(&grad_init[..d]);
    let mut dbeta = to_f64(&grad_init[d..]);
    layernorm_backward(&mut dinp, &mut dgamma, &mut dbeta, &dout, &inp, &mean, &rstd, &gamma, d);
    LayerNormReference { out, mean, rstd, dinp, dgamma, dbeta }
}

#[test]
fn layernorm_matches_cpu_reference() {
    let gpu = open_gpu();
    let mut rng = seeded(4);
    let mut worst = WorstError::default();
    for d in [1, 5, 63, 64, 65, 200] {
        for rows in [1, 3, 70] {
            let case = format!("layernorm rows={rows} d={d}");
            // Rows with their own offset and spread, as residual states have.
            let mut inp = Vec::with_capacity(rows * d);
            for _ in 0..rows {
                let centre = rng.random_range(-2.0f32..2.0);
                let spread = rng.random_range(0.1f32..3.0);
                inp.extend((0..d).map(|_| centre + spread * rng.random_range(-1.0f32..1.0)));
            }
            let gamma = random_vec(&mut rng, d, 0.5, 1.5);
            let beta = random_vec(&mut rng, d, -0.5, 0.5);
            let dout = random_vec(&mut rng, rows * d, -1.0, 1.0);
            // The gradients must be added to these, not written over them.
            let grad_init = random_vec(&mut rng, 2 * d, -1.0, 1.0);

            let got = run_layernorm(&gpu, &case, rows, d, &inp, &gamma, &beta, &dout, &grad_init);
            let expected = layernorm_reference(d, &inp, &gamma, &beta, &dout, &grad_init);
            // Row sums have d terms; dγ and dβ sum over the rows.
            let row_tolerance = reduction_tolerance(d);
            let column_tolerance = reduction_tolerance(rows);
            worst.record("layernorm out", assert_close(&format!("{case} out"), &got.out, &expected.out, row_tolerance));
            worst.record("layernorm mean", assert_close(&format!("{case} mean"), &got.mean, &expected.mean, row_tolerance));
            worst.record("layernorm rstd", assert_close(&format!("{case} rstd"), &got.rstd, &expected.rstd, row_tolerance));
            worst.record("layernorm dinp", assert_close(&format!("{case} dinp"), &got.dinp, &expected.dinp, row_tolerance));
            worst.record("layernorm dgamma", assert_close(&format!("{case} dgamma"), &got.dgamma, &expected.dgamma, column_tolerance));
            worst.record("layernorm dbeta", assert_close(&format!("{case} dbeta"), &got.dbeta, &expected.dbeta, column_tolerance));
        }
    }
    worst.print();
}

/// The fused forms: out = r + s·LayerNorm(inp), and dinp = r + the input
/// gradient for the output gradient scale·dout, with dγ and dβ scaled too.
#[test]
fn layernorm_residual_and_scale() {
    let gpu = open_gpu();
    let mut rng = seeded(12);
    let mut worst = WorstError::default();
    for (rows, d) in [(3, 65), (70, 24)] {
        let case = format!("layernorm with residual rows={rows} d={d}");
        let n = rows * d;
        let inp = random_vec(&mut rng, n, -2.0, 2.0);
        let gamma = random_vec(&mut rng, d, 0.5, 1.5);
        let beta = random_vec(&mut rng, d, -0.5, 0.5);
        let dout = random_vec(&mut rng, n, -1.0, 1.0);
        let residual = random_vec(&mut rng, n, -1.0, 1.0);
        let grad_init = random_vec(&mut rng, 2 * d, -1.0, 1.0);
        let (scale, dout_scale) = (0.3f32, -0.7f32);

        let beta_offset = GAMMA_OFFSET + d + 3;
        let mut weights = vec![f32::NAN; beta_offset + d + 2];
        weights[GAMMA_OFFSET..GAMMA_OFFSET + d].copy_from_slice(&gamma);
        weights[beta_offset..beta_offset + d].copy_from_slice(&beta);
        let mut grads = vec![SENTINEL; weights.len()];
        grads[GAMMA_OFFSET..GAMMA_OFFSET + d].copy_from_slice(&grad_init[..d]);
        grads[beta_offset..beta_offset + d].copy_from_slice(&grad_init[d..]);
        let inp_buffer = gpu.ctx.upload("inp", &padded_input(IN_OFFSET, &inp, 3));
        let residual_buffer = gpu.ctx.upload("residual", &padded_input(2, &residual, 3));
        let weights_buffer = gpu.ctx.upload("weights", &weights);
        let out_buffer = gpu.ctx.upload("out", &padded(OUT_OFFSET, &vec![f32::NAN; n], 3));
        let stats_buffer = gpu.ctx.upload("stats", &padded(STATS_OFFSET, &vec![f32::NAN; 2 * rows], 3));
        let dout_buffer = gpu.ctx.upload("dout", &padded_input(IN_OFFSET + 1, &dout, 3));
        let dinp_buffer = gpu.ctx.upload("dinp", &padded(OUT_OFFSET + 1, &vec![f32::NAN; n], 3));
        let grads_buffer = gpu.ctx.upload("grads", &grads);

        let mut plan = Plan::default();
        gpu.kernels.layernorm_forward_with(
            &gpu.ctx, &mut plan, rows, d, View::at(&inp_buffer, IN_OFFSET), &weights_buffer, GAMMA_OFFSET, beta_offset,
            View::at(&out_buffer, OUT_OFFSET), View::at(&stats_buffer, STATS_OFFSET), Some((View::at(&residual_buffer, 2), scale)),
        );
        gpu.kernels.layernorm_backward_with(
            &gpu.ctx, &mut plan, rows, d, View::at(&dout_buffer, IN_OFFSET + 1), dout_scale, View::at(&inp_buffer, IN_OFFSET),
            View::at(&stats_buffer, STATS_OFFSET), &weights_buffer, GAMMA_OFFSET, beta_offset,
            View::at(&dinp_buffer, OUT_OFFSET + 1), &grads_buffer, Some(View::at(&residual_buffer, 2)),
        );
        gpu.run(&plan);

        let (inp64, gamma64, beta64, residual64) = (to_f64(&inp), to_f64(&gamma), to_f64(&beta), to_f64(&residual));
        let scaled_dout: Vec<f64> = dout.iter().map(|&g| dout_scale as f64 * g as f64).collect();
        let (mut normalised, mut mean, mut rstd) = (vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
        layernorm_forward(&mut normalised, &mut mean, &mut rstd, &inp64, &gamma64, &beta64, d);
        let expected_out: Vec<f64> = residual64.iter().zip(&normalised).map(|(r, y)| r + scale as f64 * y).collect();
        let mut input_gradient = vec![0.0; n];
        let mut dgamma = to_f64(&grad_init[..d]);
        let mut dbeta = to_f64(&grad_init[d..]);
        layernorm_backward(&mut input_gradient, &mut dgamma, &mut dbeta, &scaled_dout, &inp64, &mean, &rstd, &gamma64, d);
        let expected_dinp: Vec<f64> = residual64.iter().zip(&input_gradient).map(|(r, g)| r + g).collect();

        let out = gpu.read(&out_buffer, OUT_OFFSET + n + 3);
        let dinp = gpu.read(&dinp_buffer, OUT_OFFSET + 1 + n + 3);
        let grads_after = gpu.read(&grads_buffer, weights.len());
        assert_untouched(&format!("{case} out"), &out, OUT_OFFSET..OUT_OFFSET + n);
        assert_untouched(&format!("{case} dinp"), &dinp, OUT_OFFSET + 1..OUT_OFFSET + 1 + n);
        let (row_tolerance, column_tolerance) = (reduction_tolerance(d), reduction_tolerance(rows));
        let record = |worst: &mut WorstError, name: &str, got: &[f32], expected: &[f64], tolerance: f64| {
            worst.record("layernorm fused", assert_close(&format!("{case} {name}"), got, expected, tolerance));
        };
        record(&mut worst, "out", &out[OUT_OFFSET..OUT_OFFSET + n], &expected_out, row_tolerance);
        record(&mut worst, "dinp", &dinp[OUT_OFFSET + 1..OUT_OFFSET + 1 + n], &expected_dinp, row_tolerance);
        record(&mut worst, "dgamma", &grads_after[GAMMA_OFFSET..GAMMA_OFFSET + d], &dgamma, column_tolerance);
        record(&mut worst, "dbeta", &grads_after[beta_offset..beta_offset + d], &dbeta, column_tolerance);
    }
    worst.print();
}

#[test]
fn layernorm_constant_and_offset_rows() {
    let gpu = open_gpu();
    let mut rng = seeded(5);

    // A constant row has variance 0: the output is exactly β and the
    // backward stays finite (rstd = 1/sqrt(ε)).
    let d = 64;
    let inp = vec![3.5f32; d];
    let gamma = random_vec(&mut rng, d, 0.5, 1.5);
    let beta = random_vec(&mut rng, d, -0.5, 0.5);
    let dout = random_vec(&mut rng, d, -1.0, 1.0);
    let grad_init = random_vec(&mut rng, 2 * d, -1.0, 1.0);
    let got = run_layernorm(&gpu, "constant row", 1, d, &inp, &gamma, &beta, &dout, &grad_init);
    assert_eq!(got.out, beta, "constant row: output is not exactly β");
    assert!(got.dinp.iter().all(|v| v.is_finite()), "constant row: dinp is not finite: {:?}", got.dinp);
    assert!(got.dgamma.iter().all(|v| v.is_finite()), "constant row: dγ is not finite: {:?}", got.dgamma);
    let expected = layernorm_reference(d, &inp, &gamma, &beta, &dout, &grad_init);
    assert_close("constant row dinp", &got.dinp, &expected.dinp, 1e-5);
    assert_close("constant row dbeta", &got.dbeta, &expected.dbeta, 1e-5);

    // A large common offset: a one-pass variance E[z²] − E[z]² would lose
    // every digit in f32. The two-pass result is (z − μ)/sqrt(1.25 + ε).
    let d = 4;
    let inp = [40000.0f32, 40001.0, 40002.0, 40003.0];
    let gamma = [1.0f32; 4];
    let beta = [0.0f32; 4];
    let dout = [0.9f32, -0.3, 0.25, 1.1];
    let grad_init = [0.0f32; 8];
    let got = run_layernorm(&gpu, "offset row", 1, d, &inp, &gamma, &beta, &dout, &grad_init);
    for (i, (&value, expected)) in got.out.iter().zip([-1.341635, -0.447212, 0.447212, 1.341635]).enumerate() {
        assert!((value - expected).abs() < 1e-5, "offset row: output {i} is {value}, expected {expected}");
    }
    let expected = layernorm_reference(d, &inp, &gamma, &beta, &dout, &grad_init);
    let error = assert_close("offset row dinp", &got.dinp, &expected.dinp, 1e-5);
    eprintln!("layernorm offset row dinp: max relative error {error:.2e}");

    // More rows than the 65535 workgroups of one dispatch, so the row
    // kernels loop; dγ and dβ each sum 70000 terms.
    let (rows, d) = (70_000, 2);
    let inp = random_vec(&mut rng, rows * d, -1.0, 1.0);
    let gamma = random_vec(&mut rng, d, 0.5, 1.5);
    let beta = random_vec(&mut rng, d, -0.5, 0.5);
    let dout = random_vec(&mut rng, rows * d, -1.0, 1.0);
    let grad_init = random_vec(&mut rng, 2 * d, -1.0, 1.0);
    let case = format!("layernorm rows={rows} d={d}");
    let got = run_layernorm(&gpu, &case, rows, d, &inp, &gamma, &beta, &dout, &grad_init);
    let expected = layernorm_reference(d, &inp, &gamma, &beta, &dout, &grad_init);
    let mut worst = WorstError::default();
    worst.record("layernorm out (70000 rows)", assert_close(&format!("{case} out"), &got.out, &expected.out, 1e-5));
    worst.record("layernorm rstd (70000 rows)", assert_close(&format!("{case} rstd"), &got.rstd, &expected.rstd, 1e-5));
    worst.record("layernorm dinp (70000 rows)", assert_close(&format!("{case} dinp"), &got.dinp, &expected.dinp, 1e-5));
    worst.record("layernorm dgamma (70000 rows)", assert_close(&format!("{case} dgamma"), &got.dgamma, &expected.dgamma, reduction_tolerance(rows)));
    worst.record("layernorm dbeta (70000 rows)", assert_close(&format!("{case} dbeta"), &got.dbeta, &expected.dbeta, reduction_tolerance(rows)));
    worst.print();
}

// ------------------------------------------------------------ elementwise

#[test]
fn gelu_matches_cpu_reference() {
    let gpu = open_gpu();
    let mut rng = seeded(6);
    let mut worst = WorstError::default();
    // Moderate inputs, then the saturated tails, each compared relative to
    // its own largest value. The kernel clamps the tanh argument at ±15,
    // where tanh is ±1 in f32 anyway.
    let moderate = {
        let mut values = random_vec(&mut rng, 1500, -8.0, 8.0);
        values.extend([0.0, 1e-3, -1e-3, 1.0, -1.0, 3.0, -3.0]);
        values
    };
    let extreme = vec![10.0f32, -10.0, 15.5, -15.5, 20.0, -20.0, 100.0, -100.0, 1e4, -1e4];
    for (name, inp) in [("moderate", moderate), ("extreme", extreme)] {
        let n = inp.len();
        let dout = random_vec(&mut rng, n, -1.0, 1.0);
        let inp_buffer = gpu.ctx.upload("inp", &padded_input(3, &inp, 2));
        let dout_buffer = gpu.ctx.upload("dout", &padded_input(6, &dout, 2));
        let out_buffer = gpu.ctx.upload("out", &padded(5, &vec![f32::NAN; n], 2));
        let dinp_buffer = gpu.ctx.upload("dinp", &padded(1, &vec![f32::NAN; n], 2));
        let mut plan = Plan::default();
        gpu.kernels.gelu_forward(&gpu.ctx, &mut plan, n, View::at(&inp_buffer, 3), View::at(&out_buffer, 5));
        gpu.kernels.gelu_backward(&gpu.ctx, &mut plan, n, View::at(&inp_buffer, 3), View::at(&dout_buffer, 6), View::at(&dinp_buffer, 1));
        gpu.run(&plan);

        let mut expected_out = vec![0.0f64; n];
        gelu_forward(&mut expected_out, &to_f64(&inp));
        let mut expected_dinp = vec![0.0f64; n];
        gelu_backward(&mut expected_dinp, &to_f64(&dout), &to_f64(&inp));
        let out = gpu.read(&out_buffer, 5 + n + 2);
        let dinp = gpu.read(&dinp_buffer, 1 + n + 2);
        assert_untouched(&format!("gelu forward {name}"), &out, 5..5 + n);
        assert_untouched(&format!("gelu backward {name}"), &dinp, 1..1 + n);
        // No reduction: the error is that of tanh and a few products.
        worst.record("gelu forward", assert_close(&format!("gelu forward {name}"), &out[5..5 + n], &expected_out, 1e-5));
        worst.record("gelu backward", assert_close(&format!("gelu backward {name}"), &dinp[1..1 + n], &expected_dinp, 1e-5));
    }
    worst.print();
}

#[test]
fn combine_and_sum_scaled() {
    let gpu = open_gpu();
    let mut rng = seeded(7);
    let mut worst = WorstError::default();

    // out = alpha·x + beta·y: with beta = 0, a y full of NaN is not read.
    let n = 70_000;
    let x = random_vec(&mut rng, n, -2.0, 2.0);
    let y = random_vec(&mut rng, n, -2.0, 2.0);
    let x_buffer = gpu.ctx.upload("x", &padded_input(3, &x, 2));
    let y_buffer = gpu.ctx.upload("y", &padded_input(5, &y, 2));
    let nan_buffer = gpu.ctx.upload("y NaN", &vec![f32::NAN; n + 4]);
    let mixed = gpu.ctx.upload("out mixed", &padded(2, &vec![f32::NAN; n], 2));
    let scaled = gpu.ctx.upload("out scaled", &padded(2, &vec![f32::NAN; n], 2));
    let mut plan = Plan::default();
    gpu.kernels.combine(&gpu.ctx, &mut plan, n, 2.0, View::at(&x_buffer, 3), -0.5, View::at(&y_buffer, 5), View::at(&mixed, 2));
    gpu.kernels.combine(&gpu.ctx, &mut plan, n, 0.25, View::at(&x_buffer, 3), 0.0, View::at(&nan_buffer, 1), View::at(&scaled, 2));
    gpu.run(&plan);
    let expected_mixed: Vec<f64> = x.iter().zip(&y).map(|(&a, &b)| 2.0 * a as f64 - 0.5 * b as f64).collect();
    let expected_scaled: Vec<f64> = x.iter().map(|&a| 0.25 * a as f64).collect();
    let got_mixed = gpu.read(&mixed, n + 4);
    let got_scaled = gpu.read(&scaled, n + 4);
    assert_untouched("combine alpha=2 beta=-0.5", &got_mixed, 2..2 + n);
    assert_untouched("combine beta=0", &got_scaled, 2..2 + n);
    // One product and one sum: a few units of f32 rounding.
    worst.record("combine", assert_close("combine alpha=2 beta=-0.5", &got_mixed[2..2 + n], &expected_mixed, 1e-6));
    worst.record("combine", assert_close("combine beta=0 with y NaN", &got_scaled[2..2 + n], &expected_scaled, 1e-6));

    // out[offset] = alpha·Σ x, for lengths around the 256-wide workgroup.
    // Positive values (like per-row losses) keep the sum well conditioned.
    for n in [1, 255, 256, 257, 5000] {
        let x = random_vec(&mut rng, n, 0.0, 5.0);
        let alpha = 1.0 / n as f32;
        let x_buffer = gpu.ctx.upload("x", &padded_input(3, &x, 2));
        let out_buffer = gpu.ctx.upload("sum", &[SENTINEL; 5]);
        let mut plan = Plan::default();
        gpu.kernels.sum_scaled(&gpu.ctx, &mut plan, n, alpha, View::at(&x_buffer, 3), View::at(&out_buffer, 2));
        gpu.run(&plan);
        let expected = alpha as f64 * x.iter().map(|&v| v as f64).sum::<f64>();
        let got = gpu.read(&out_buffer, 5);
        let case = format!("sum_scaled n={n}");
        assert_untouched(&case, &got, 2..3);
        worst.record("sum_scaled", assert_close(&case, &got[2..3], &[expected], reduction_tolerance(n)));
    }
    worst.print();
}

// ------------------------------------------------------------- embedding

/// Offsets of wte and wpe inside the parameter (and gradient) buffer, and
/// its length, for a vocabulary of `vocab` and `positions` learned positions.
fn embedding_layout(vocab: usize, positions: usize, d: usize) -> (usize, usize, usize) {
    let wte_offset = 3;
    let wpe_offset = wte_offset + vocab * d + 2;
    (wte_offset, wpe_offset, wpe_offset + positions * d + 4)
}

/// Runs the embedding backward of `dout` over `tokens` into a gradient
/// buffer pre-filled with `grads`; returns the buffer afterwards.
#[allow(clippy::too_many_arguments)]
fn run_embedding_backward(
    gpu: &Gpu, rows: usize, context: usize, d: usize, vocab: usize, tokens: &[u32], dout: &[f32], grads: &[f32],
    wte_offset: usize, wpe_offset: usize,
) -> Vec<f32> {
    let token_buffer = gpu.ctx.upload_u32("tokens", tokens);
    let dout_buffer = gpu.ctx.upload("dout", dout);
    let grads_buffer = gpu.ctx.upload("grads", grads);
    let mut plan = Plan::default();
    gpu.kernels.embedding_backward(&gpu.ctx, &mut plan, rows, context, d, vocab, &token_buffer, &dout_buffer, &grads_buffer, wte_offset, wpe_offset);
    gpu.run(&plan);
    gpu.read(&grads_buffer, grads.len())
}

#[test]
fn embedding_matches_cpu_reference() {
    let gpu = open_gpu();
    let mut rng = seeded(8);
    let (batch, context, positions, d, vocab) = (3, 5, 7, 24, 11);
    let rows = batch * context;
    let (wte_offset, wpe_offset, len) = embedding_layout(vocab, positions, d);
    let mut params = vec![f32::NAN; len];
    params[wte_offset..wte_offset + vocab * d].copy_from_slice(&random_vec(&mut rng, vocab * d, -1.0, 1.0));
    params[wpe_offset..wpe_offset + positions * d].copy_from_slice(&random_vec(&mut rng, positions * d, -1.0, 1.0));
    let tokens: Vec<u32> = (0..rows).map(|_| rng.random_range(0..vocab as u32)).collect();

    // Forward: one f32 addition per element, which Vulkan rounds
    // correctly, so the GPU must match the f32 reference exactly.
    let token_buffer = gpu.ctx.upload_u32("tokens", &tokens);
    let params_buffer = gpu.ctx.upload("params", &params);
    let out_buffer = gpu.ctx.upload("out", &vec![f32::NAN; rows * d]);
    let mut plan = Plan::default();
    gpu.kernels.embedding_forward(&gpu.ctx, &mut plan, rows, context, d, vocab, &token_buffer, &params_buffer, wte_offset, wpe_offset, &out_buffer);
    gpu.run(&plan);
    let wte = &params[wte_offset..wte_offset + vocab * d];
    let wpe = &params[wpe_offset..wpe_offset + positions * d];
    let mut expected = vec![0.0f32; rows * d];
    embedding_forward(&mut expected, &tokens, wte, wpe, context, d);
    assert_eq!(gpu.read(&out_buffer, rows * d), expected, "embedding forward differs from the f32 reference");

    // Backward: adds into a pre-filled gradient buffer.
    let dout = random_vec(&mut rng, rows * d, -1.0, 1.0);
    let grads = random_vec(&mut rng, len, -1.0, 1.0);
    let got = run_embedding_backward(&gpu, rows, context, d, vocab, &tokens, &dout, &grads, wte_offset, wpe_offset);
    let mut dwte = to_f64(&grads[wte_offset..wte_offset + vocab * d]);
    let mut dwpe = to_f64(&grads[wpe_offset..wpe_offset + positions * d]);
    embedding_backward(&mut dwte, &mut dwpe, &to_f64(&dout), &tokens, context, d);
    // Sums of at most `rows` = 15 terms.
    let dwte_error = assert_close("embedding dwte", &got[wte_offset..wte_offset + vocab * d], &dwte, 1e-6);
    let dwpe_error = assert_close("embedding dwpe", &got[wpe_offset..wpe_offset + positions * d], &dwpe, 1e-6);
    for i in (0..wte_offset).chain(wte_offset + vocab * d..wpe_offset).chain(wpe_offset + positions * d..len) {
        assert_eq!(got[i], grads[i], "embedding backward changed element {i} outside wte and wpe");
    }
    eprintln!("embedding dwte: max relative error {dwte_error:.2e}");
    eprintln!("embedding dwpe: max relative error {dwpe_error:.2e}");
}

#[test]
fn embedding_backward_repeated_token() {
    let gpu = open_gpu();
    let mut rng = seeded(9);
    let token = 2usize;
    let mut worst = WorstError::default();
    // (batch, context, positions, d, vocab): the second batch has 70400
    // rows, more than the 65535 loop iterations llvmpipe allows one
    // invocation.
    for (batch, context, positions, d, vocab) in [(4, 6, 9, 16, 5), (1100, 64, 66, 4, 5)] {
        let rows = batch * context;
        let case = format!("embedding backward rows={rows}");
        let (wte_offset, wpe_offset, len) = embedding_layout(vocab, positions, d);
        let tokens = vec![token as u32; rows];
        let dout = random_vec(&mut rng, rows * d, -1.0, 1.0);
        let grads = random_vec(&mut rng, len, -1.0, 1.0);
        let got = run_embedding_backward(&gpu, rows, context, d, vocab, &tokens, &dout, &grads, wte_offset, wpe_offset);

        // The row of the repeated token gets the sum over every row of dout.
        let row = wte_offset + token * d;
        let expected_row: Vec<f64> =
            (0..d).map(|k| grads[row + k] as f64 + (0..rows).map(|r| dout[r * d + k] as f64).sum::<f64>()).collect();
        let error = assert_close(&format!("{case} repeated token row"), &got[row..row + d], &expected_row, reduction_tolerance(rows));
        worst.record("embedding repeated token", error);
        // Every other row of wte stays exactly as it was.
        for v in (0..vocab).filter(|&v| v != token) {
            let start = wte_offset + v * d;
            assert_eq!(got[start..start + d], grads[start..start + d], "{case}: wte row {v} changed but token {v} never occurs");
        }
        // Position t gets the sum over the batch of the rows at t; positions
        // beyond the context stay unchanged.
        for t in 0..positions {
            let start = wpe_offset + t * d;
            if t < context {
                let expected: Vec<f64> = (0..d)
                    .map(|k| grads[start + k] as f64 + (0..batch).map(|b| dout[(b * context + t) * d + k] as f64).sum::<f64>())
                    .collect();
                let error = assert_close(&format!("{case} wpe row {t}"), &got[start..start + d], &expected, reduction_tolerance(batch));
                worst.record("embedding positions", error);
            } else {
                assert_eq!(got[start..start + d], grads[start..start + d], "{case}: wpe row {t} beyond the context changed");
            }
        }
    }
    worst.print();
}

// --------------------------------------------------------- cross-entropy

#[test]
fn cross_entropy_matches_cpu_reference() {
    let gpu = open_gpu();
    let mut rng = seeded(10);
    let mut worst = WorstError::default();
    for (rows, vocab) in [(1, 1), (6, 7), (130, 300)] {
        let mut logits = random_vec(&mut rng, rows * vocab, -3.0, 3.0);
        let mut targets: Vec<u32> = (0..rows).map(|_| rng.random_range(0..vocab as u32)).collect();
        if vocab >= 4 {
            // Extreme logits: the target sits at −80 next to +80 (loss ≈ 160),
            // and a row that is −80 everywhere except its target at +80.
            logits[..vocab].fill(0.0);
            logits[0] = 80.0;
            logits[1] = -80.0;
            logits[3] = 79.0;
            targets[0] = 1;
            logits[vocab..2 * vocab].fill(-80.0);
            logits[vocab + 2] = 80.0;
            targets[1] = 2;
        }
        let case = format!("cross_entropy rows={rows} vocab={vocab}");

        let logits_buffer = gpu.ctx.upload("logits", &logits);
        let targets_buffer = gpu.ctx.upload_u32("targets", &targets);
        let dlogits_buffer = gpu.ctx.upload("dlogits", &vec![f32::NAN; rows * vocab]);
        let losses_buffer = gpu.ctx.upload("losses", &vec![f32::NAN; rows]);
        let mut plan = Plan::default();
        gpu.kernels.cross_entropy(&gpu.ctx, &mut plan, rows, vocab, &logits_buffer, &targets_buffer, &dlogits_buffer, &losses_buffer);
        gpu.run(&plan);

        // The reference returns the mean loss, so one call per row gives
        // that row's loss.
        let logits64 = to_f64(&logits);
        let mut probs = vec![0.0f64; rows * vocab];
        let mut expected_losses = Vec::with_capacity(rows);
        for (row, (p, l)) in probs.chunks_exact_mut(vocab).zip(logits64.chunks_exact(vocab)).enumerate() {
            expected_losses.push(cross_entropy_forward(p, l, &targets[row..row + 1], None, vocab));
        }
        let mut expected_dlogits = vec![0.0f64; rows * vocab];
        cross_entropy_backward(&mut expected_dlogits, &probs, &targets, None, vocab);

        let tolerance = reduction_tolerance(vocab);
        let losses = gpu.read(&losses_buffer, rows);
        let dlogits = gpu.read(&dlogits_buffer, rows * vocab);
        worst.record("cross_entropy losses", assert_close(&format!("{case} losses"), &losses, &expected_losses, tolerance));
        worst.record("cross_entropy dlogits", assert_close(&format!("{case} dlogits"), &dlogits, &expected_dlogits, tolerance));
    }
    worst.print();
}

// ------------------------------------------------------------- optimizer

/// GPU buffers of one optimiser.
struct GpuOptimizer {
    step: wgpu::Buffer,
    params: wgpu::Buffer,
    grads: wgpu::Buffer,
    first_moment: wgpu::Buffer,
    second_moment: wgpu::Buffer,
    state: wgpu::Buffer,
    plan: Plan,
}

impl GpuOptimizer {
    fn new(gpu: &Gpu, params: &[f32], decay_mask: &[f32]) -> GpuOptimizer {
        let n = params.len();
        let step = gpu.ctx.uniform("step", &StepParams::default());
        let params = gpu.ctx.upload("params", params);
        let grads = gpu.ctx.zeros("grads", n);
        let first_moment = gpu.ctx.zeros("first moment", n);
        let second_moment = gpu.ctx.zeros("second moment", n);
        let mask = gpu.ctx.upload("decay mask", decay_mask);
        let state = gpu.ctx.upload_u32("state", &[0, 0, 0, NO_STEP]);
        let partials = gpu.ctx.zeros("partials", NORM_PARTIALS);
        let mut plan = Plan::default();
        gpu.kernels.optimizer_step(&gpu.ctx, &mut plan, n, &step, &params, &grads, &first_moment, &second_moment, &mask, &state, &partials);
        GpuOptimizer { step, params, grads, first_moment, second_moment, state, plan }
    }

    /// Runs update number `step` (from 1) with these gradients.
    #[allow(clippy::too_many_arguments)]
    fn step(&self, gpu: &Gpu, kind: OptimizerKind, step: u32, grads: &[f32], lr: f64, weight_decay: f64, clip: Option<f64>) {
        let settings = StepParams {
            n: grads.len() as u32,
            step,
            is_sgd: (kind == OptimizerKind::Sgd) as u32,
            partials: NORM_PARTIALS as u32,
            lr: lr as f32,
            beta1: ADAM_BETA1 as f32,
            beta2: ADAM_BETA2 as f32,
            eps: ADAM_EPS as f32,
            weight_decay: weight_decay as f32,
            correction1: (1.0 - ADAM_BETA1.powi(step as i32)) as f32,
            correction2: (1.0 - ADAM_BETA2.powi(step as i32)) as f32,
            clip: clip.unwrap_or(0.0) as f32,
        };
        gpu.ctx.queue.write_buffer(&self.step, 0, bytemuck::bytes_of(&settings));
        gpu.ctx.queue.write_buffer(&self.grads, 0, bytemuck::cast_slice(grads));
        gpu.run(&self.plan);
    }
}

/// Builds a layout of more than 256·256 parameters, so that the norm
/// reduction loops, and its weight-decay mask: 1 on matrices and
/// embeddings, 0 on biases and LayerNorm parameters.
fn optimizer_layout() -> (Layout, Vec<f32>) {
    let model = ModelConfig { layers: 2, width: 64, heads: 4, context: 16, vocab: 50, ..ModelConfig::standard(50) };
    let layout = Layout::new(&model);
    let mut mask = vec![0.0f32; layout.total];
    for spec in &layout.tensors {
        if matches!(spec.kind, TensorKind::Matrix | TensorKind::Embedding) {
            mask[spec.range()].fill(1.0);
        }
    }
    (layout, mask)
}

#[test]
fn optimizer_matches_cpu_adamw_sgd() {
    let gpu = open_gpu();
    let mut rng = seeded(11);
    let (layout, mask) = optimizer_layout();
    let n = layout.total;
    assert!(n > 256 * 256, "the layout has {n} parameters, too few to exercise the norm loop");
    assert!(mask.contains(&0.0), "the decay mask has no parameter without decay");
    assert!(mask.contains(&1.0), "the decay mask has no parameter with decay");
    // A large rate keeps the change of a parameter far above its rounding.
    let (lr, weight_decay) = (0.1, 0.1);
    // The norm of n uniform gradients in [−1, 1] is about sqrt(n/3) ≈ 180,
    // so a clip at 50 is active and one at 1e4 is not.
    let settings = [
        (OptimizerKind::Adamw, Some(50.0)),
        (OptimizerKind::Adamw, None),
        (OptimizerKind::Sgd, Some(50.0)),
        (OptimizerKind::Sgd, Some(1e4)),
    ];
    let mut worst = WorstError::default();
    for (kind, clip) in settings {
        let config = TrainConfig { optimizer: kind, ..TrainConfig::default() };
        let mut cpu = Optimizer::new(&config, &layout);
        let initial = random_vec(&mut rng, n, -1.0, 1.0);
        let mut params = initial.clone();
        let gpu_optimizer = GpuOptimizer::new(&gpu, &initial, &mask);
        for step in 1..=3u32 {
            let case = format!("{kind:?} clip={clip:?} step {step}");
            let mut grads = random_vec(&mut rng, n, -1.0, 1.0);
            gpu_optimizer.step(&gpu, kind, step, &grads, lr, weight_decay, clip);
            let norm = match clip {
                Some(max_norm) => clip_global_norm(&mut grads, max_norm),
                None => global_norm(&grads),
            };
            cpu.update(&mut params, &grads, lr, weight_decay);

            let state = gpu.read(&gpu_optimizer.state, 4);
            let expected_scale = match clip {
                Some(max_norm) if norm > max_norm => max_norm / norm,
                _ => 1.0,
            };
            // Σ g² over n terms, reduced in a tree: well below 1e-5.
            worst.record("optimizer norm", assert_close(&format!("{case} norm"), &state[..1], &[norm], 1e-5));
            worst.record("optimizer clip scale", assert_close(&format!("{case} clip scale"), &state[1..2], &[expected_scale], 1e-5));
            assert_eq!(state[2], 0.0, "{case}: finite gradients marked non-finite");

            // Compare the change from the initial parameters. The two sides
            // may round a parameter near 1 one ulp (1.2e-7) apart in each
            // step, which is up to about 4e-6 of the largest change (≥ 0.03).
            let got = gpu.read(&gpu_optimizer.params, n);
            let got_change: Vec<f32> = got.iter().zip(&initial).map(|(g, i)| g - i).collect();
            let expected_change: Vec<f64> = params.iter().zip(&initial).map(|(p, i)| *p as f64 - *i as f64).collect();
            worst.record("optimizer update", assert_close(&format!("{case} update"), &got_change, &expected_change, 1e-4));
        }
    }
    worst.print();
}

#[test]
fn optimizer_skips_non_finite_gradients() {
    let gpu = open_gpu();
    let mut rng = seeded(12);
    let n = 1000;
    let params = random_vec(&mut rng, n, -1.0, 1.0);
    let mask = vec![1.0f32; n];
    let optimizer = GpuOptimizer::new(&gpu, &params, &mask);

    // Two finite steps fill the moments.
    for step in 1..=2 {
        optimizer.step(&gpu, OptimizerKind::Adamw, step, &random_vec(&mut rng, n, -1.0, 1.0), 1e-2, 0.1, Some(1.0));
    }
    let params_before = gpu.read_u32(&optimizer.params, n);
    let first_before = gpu.read_u32(&optimizer.first_moment, n);
    let second_before = gpu.read_u32(&optimizer.second_moment, n);
    let state = gpu.read_u32(&optimizer.state, 4);
    assert_eq!(state[2], 0.0f32.to_bits(), "finite steps set the non-finite flag");
    assert_eq!(state[3], NO_STEP, "finite steps recorded a non-finite step");

    // Step 3 has a NaN, step 4 an infinity: both are skipped, and the
    // record keeps the first.
    for (step, bad) in [(3, f32::NAN), (4, f32::INFINITY)] {
        let mut grads = random_vec(&mut rng, n, -1.0, 1.0);
        grads[123] = bad;
        optimizer.step(&gpu, OptimizerKind::Adamw, step, &grads, 1e-2, 0.1, Some(1.0));
        let state = gpu.read_u32(&optimizer.state, 4);
        assert_eq!(state[2], 1.0f32.to_bits(), "step {step} with gradient {bad}: non-finite flag not set");
        assert_eq!(state[3], 3, "step {step} with gradient {bad}: recorded step is not the first non-finite one");
        assert_eq!(gpu.read_u32(&optimizer.params, n), params_before, "step {step} with gradient {bad}: parameters changed");
        assert_eq!(gpu.read_u32(&optimizer.first_moment, n), first_before, "step {step} with gradient {bad}: first moment changed");
        assert_eq!(gpu.read_u32(&optimizer.second_moment, n), second_before, "step {step} with gradient {bad}: second moment changed");
    }

    // The flag stays set, so a finite step afterwards is skipped too.
    optimizer.step(&gpu, OptimizerKind::Adamw, 5, &random_vec(&mut rng, n, -1.0, 1.0), 1e-2, 0.1, Some(1.0));
    let state = gpu.read_u32(&optimizer.state, 4);
    assert_eq!(state[2], 1.0f32.to_bits(), "finite step after a skipped one: flag cleared");
    assert_eq!(state[3], 3, "finite step after a skipped one: record lost");
    assert_eq!(gpu.read_u32(&optimizer.params, n), params_before, "finite step after a skipped one: parameters changed");

    // Once the host clears the flag, a finite step updates again.
    gpu.ctx.queue.write_buffer(&optimizer.state, 8, bytemuck::bytes_of(&0.0f32));
    optimizer.step(&gpu, OptimizerKind::Adamw, 6, &random_vec(&mut rng, n, -1.0, 1.0), 1e-2, 0.1, Some(1.0));
    let state = gpu.read_u32(&optimizer.state, 4);
    assert_eq!(state[2], 0.0f32.to_bits(), "finite step after the reset: flag set");
    assert_eq!(state[3], 3, "finite step after the reset: record lost");
    let params_after = gpu.read(&optimizer.params, n);
    assert!(params_after.iter().all(|p| p.is_finite()), "finite step after the reset: parameters not finite");
    assert_ne!(gpu.read_u32(&optimizer.params, n), params_before, "finite step after the reset: no update");
}

// ------------------------------------------------------------ statistics

/// Names of the values that `layer_stats` writes, in order.
const STAT_NAMES: [&str; STATS_PER_STATE] = [
    "mean_abs", "entry_var", "data_var", "rms", "max_abs", "max_token_norm", "grad_rms", "max_token_grad_norm",
    "non-finite state", "non-finite gradient",
];

#[test]
fn layer_stats_match_measure_state() {
    let gpu = open_gpu();
    let mut rng = seeded(13);
    let mut worst = WorstError::default();
    // (batch, context, d): rows = 320 and context·d = 960 exceed the 256
    // invocations of a workgroup, so both loops of the kernel stride; the
    // last two take 2 and 75 workgroups in the first pass. The largest
    // (4.9M values) is also above what one workgroup can loop over on
    // llvmpipe.
    for (batch, context, d) in [(1, 1, 1), (2, 3, 5), (3, 16, 64), (8, 40, 24), (16, 64, 96), (64, 256, 300)] {
        let rows = batch * context;
        let case = format!("layer_stats batch={batch} context={context} d={d}");
        let mut state = Vec::with_capacity(rows * d);
        for _ in 0..rows {
            let centre = rng.random_range(-1.0f32..1.0);
            state.extend((0..d).map(|_| centre + rng.random_range(-2.0f32..2.0)));
        }
        let grad = random_vec(&mut rng, rows * d, -0.1, 0.1);
        let state_buffer = gpu.ctx.upload("state", &state);
        let grad_buffer = gpu.ctx.upload("grad", &grad);
        let out_offset = 10;
        let out_buffer = gpu.ctx.upload("stats", &[SENTINEL; 3 * STATS_PER_STATE]);
        let mut plan = Plan::default();
        gpu.kernels.layer_stats(&gpu.ctx, &mut plan, batch, context, d, &state_buffer, &grad_buffer, &out_buffer, out_offset);
        gpu.run(&plan);
        let out = gpu.read(&out_buffer, 3 * STATS_PER_STATE);
        assert_untouched(&case, &out, out_offset..out_offset + STATS_PER_STATE);
        let got = &out[out_offset..out_offset + STATS_PER_STATE];

        let m = measure_state(0, &state, &grad, batch, context, d);
        let expected = [m.mean_abs, m.entry_var, m.data_var, m.rms, m.max_abs, m.max_token_norm, m.grad_rms, m.max_token_grad_norm, 0.0, 0.0];
        // Sums over up to rows·d = 7680 terms, split over 256 invocations
        // and then reduced in a tree.
        let tolerance = reduction_tolerance(rows * d);
        for (i, name) in STAT_NAMES.iter().enumerate() {
            let error = assert_close(&format!("{case} {name}"), &got[i..i + 1], &expected[i..i + 1], tolerance);
            worst.record("layer_stats", error);
        }
    }
    worst.print();
}

#[test]
fn layer_stats_flag_non_finite() {
    let gpu = open_gpu();
    let mut rng = seeded(14);
    // 320 rows of 256: the first pass takes 2 workgroups, the second of
    // which gets rows 256..320.
    let (batch, context, d) = (4, 80, 256);
    let len = batch * context * d;
    let state = random_vec(&mut rng, len, -1.0, 1.0);
    let grad = random_vec(&mut rng, len, -1.0, 1.0);
    let with = |values: &[f32], index: usize, bad: f32| {
        let mut changed = values.to_vec();
        changed[index] = bad;
        changed
    };

    // (case, state, gradient, expected flags [8] and [9])
    let cases = [
        ("finite", state.clone(), grad.clone(), [0.0, 0.0]),
        ("NaN in state, first workgroup", with(&state, 17, f32::NAN), grad.clone(), [1.0, 0.0]),
        ("+inf in state, second workgroup", with(&state, len - 1, f32::INFINITY), grad.clone(), [1.0, 0.0]),
        ("NaN in gradient, second workgroup", state.clone(), with(&grad, len - 1, f32::NAN), [0.0, 1.0]),
        ("-inf in gradient, first workgroup", state.clone(), with(&grad, 40, f32::NEG_INFINITY), [0.0, 1.0]),
    ];
    // Every case writes its own slot of one output buffer.
    let out_buffer = gpu.ctx.zeros("stats", cases.len() * STATS_PER_STATE);
    let mut plan = Plan::default();
    for (slot, (_, state, grad, _)) in cases.iter().enumerate() {
        let state_buffer = gpu.ctx.upload("state", state);
        let grad_buffer = gpu.ctx.upload("grad", grad);
        gpu.kernels.layer_stats(&gpu.ctx, &mut plan, batch, context, d, &state_buffer, &grad_buffer, &out_buffer, slot * STATS_PER_STATE);
    }
    gpu.run(&plan);

    let out = gpu.read(&out_buffer, cases.len() * STATS_PER_STATE);
    for (slot, (case, _, _, flags)) in cases.iter().enumerate() {
        let base = slot * STATS_PER_STATE;
        assert_eq!(out[base + 8], flags[0], "{case}: non-finite state flag");
        assert_eq!(out[base + 9], flags[1], "{case}: non-finite gradient flag");
    }
}

#[test]
fn final_grad_stats_match_cpu() {
    let gpu = open_gpu();
    let mut rng = seeded(15);
    let mut worst = WorstError::default();
    // The last shape takes 5 workgroups in the first pass.
    for (rows, d) in [(1, 1), (7, 5), (300, 16), (5000, 64)] {
        let case = format!("final_grad_stats rows={rows} d={d}");
        // LayerNorm statistics: mean [rows], then rstd [rows] > 0.
        let mut stats = random_vec(&mut rng, rows, -1.0, 1.0);
        let rstd = random_vec(&mut rng, rows, 0.1, 10.0);
        stats.extend_from_slice(&rstd);
        let grad = random_vec(&mut rng, rows * d, -0.01, 0.01);
        let stats_buffer = gpu.ctx.upload("ln stats", &stats);
        let grad_buffer = gpu.ctx.upload("grad", &grad);
        let out_buffer = gpu.ctx.upload("out", &[SENTINEL; 7]);
        let mut plan = Plan::default();
        gpu.kernels.final_grad_stats(&gpu.ctx, &mut plan, rows, d, &stats_buffer, &grad_buffer, &out_buffer, 3);
        gpu.run(&plan);
        let out = gpu.read(&out_buffer, 7);
        assert_untouched(&case, &out, 3..5);

        let rstd_squares: f64 = rstd.iter().map(|&r| (r as f64).powi(2)).sum();
        let max_ratio = grad
            .chunks_exact(d)
            .zip(&rstd)
            .map(|(row, &r)| row.iter().map(|&g| (g as f64).powi(2)).sum::<f64>().sqrt() / r as f64)
            .fold(0.0f64, f64::max);
        let tolerance = reduction_tolerance(rows.max(d));
        worst.record("final_grad_stats", assert_close(&format!("{case} Σ rstd²"), &out[3..4], &[rstd_squares], tolerance));
        worst.record("final_grad_stats", assert_close(&format!("{case} max ‖g‖/rstd"), &out[4..5], &[max_ratio], tolerance));
    }
    worst.print();
}

#[test]
fn matrix_norms_match_cpu() {
    let gpu = open_gpu();
    let mut rng = seeded(16);
    let d = 24;
    let dh = 8;
    // (case, offset, rows, columns, row stride)
    let jobs: [(&str, usize, usize, usize, usize); 6] = [
        ("whole 70×33", 5, 70, 33, 33),
        // The key columns of head 1 of a [d, 3d] attention matrix.
        ("d×dh block of [d, 3d]", 3000 + d + dh, d, dh, 3 * d),
        ("300×270, both above 256", 5000, 300, 270, 270),
        ("1×1", 7, 1, 1, 1),
        ("one row 1×300", 90_000, 1, 300, 300),
        ("one column 300×1", 100_000, 300, 1, 1),
    ];
    // NaN everywhere outside the jobs, for example in the other columns of
    // the [d, 3d] matrix, so that a read outside a job poisons its norms.
    let mut values = vec![f32::NAN; 120_000];
    for &(_, offset, rows, cols, stride) in &jobs {
        for r in 0..rows {
            let start = offset + r * stride;
            values[start..start + cols].copy_from_slice(&random_vec(&mut rng, cols, -1.0, 1.0));
        }
    }
    let job_words: Vec<u32> = jobs.iter().flat_map(|&(_, offset, rows, cols, stride)| [offset as u32, rows as u32, cols as u32, stride as u32]).collect();
    let values_buffer = gpu.ctx.upload("values", &values);
    let jobs_buffer = gpu.ctx.upload_u32("jobs", &job_words);
    let out_buffer = gpu.ctx.upload("norms", &vec![f32::NAN; 3 * jobs.len()]);
    let mut plan = Plan::default();
    gpu.kernels.matrix_norms(&gpu.ctx, &mut plan, &values_buffer, &jobs_buffer, jobs.len(), &out_buffer);
    gpu.run(&plan);
    let out = gpu.read(&out_buffer, 3 * jobs.len());

    let mut worst = WorstError::default();
    for (j, &(case, offset, rows, cols, stride)) in jobs.iter().enumerate() {
        let matrix: Vec<f32> = (0..rows).flat_map(|r| values[offset + r * stride..][..cols].iter().copied()).collect();
        let frobenius = matrix.iter().map(|&w| (w as f64).powi(2)).sum::<f64>().sqrt();
        let max_row = matrix.chunks_exact(cols).map(|row| row.iter().map(|&w| (w as f64).abs()).sum::<f64>()).fold(0.0, f64::max);
        let max_column = (0..cols).map(|c| (0..rows).map(|r| (matrix[r * cols + c] as f64).abs()).sum::<f64>()).fold(0.0, f64::max);
        let got = &out[3 * j..3 * j + 3];
        let tolerance = reduction_tolerance(rows.max(cols));
        worst.record("matrix_norms", assert_close(&format!("{case} Frobenius"), &got[0..1], &[frobenius], tolerance));
        worst.record("matrix_norms", assert_close(&format!("{case} max row sum"), &got[1..2], &[max_row], tolerance));
        worst.record("matrix_norms", assert_close(&format!("{case} max column sum"), &got[2..3], &[max_column], tolerance));
        // The CPU turns these three into the spectral-norm bound.
        let bound = (got[0] as f64).min((got[1] as f64 * got[2] as f64).sqrt());
        let expected_bound = spectral_norm_bound(&matrix, rows, cols);
        assert_close(&format!("{case} spectral bound"), &[bound as f32], &[expected_bound], tolerance);
    }
    worst.print();
}



#[test]
fn self_test_passes_on_lavapipe() {
    // The start-up check runs the fused matmul_gelu that training uses.
    let gpu = open_gpu();
    pollster::block_on(lnlab::gpu::self_test::self_test(&gpu.ctx, &gpu.kernels)).expect("the self-test failed on lavapipe");
}
