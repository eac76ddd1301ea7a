//! The WGSL kernels of `shaders/`, compiled once, and functions that append
//! one configured dispatch of each to a [`Plan`].
//!
//! Pipelines use automatic bind-group layouts, so each dispatch binds
//! exactly the bindings its entry point uses. Operands are whole buffers
//! plus element offsets in the kernel's uniform parameters: tensors inside
//! the flat parameter and gradient buffers are not 256-byte aligned, which
//! binding offsets would require. No kernel binds more than 7 storage
//! buffers, inside WebGPU's default limit of 8 per stage.

use super::context::GpuContext;
use bytemuck::{Pod, Zeroable};

/// Workgroups per dimension that WebGPU guarantees.
const MAX_WORKGROUPS: u32 = 65_535;

/// Workgroups for a grid-stride loop over `items` with `group_size`
/// invocations each.
fn groups_for(items: usize, group_size: usize) -> u32 {
    (items.div_ceil(group_size)).clamp(1, MAX_WORKGROUPS as usize) as u32
}

/// Returns a grid of one workgroup per row for kernels that compute
/// row = group.y·groups.x + group.x, with both dimensions within WebGPU's
/// 65535. Unlike a grid-stride loop, no workgroup takes a second row, so
/// the loop work of one invocation does not grow with the row count.
fn row_grid(rows: usize) -> [u32; 3] {
    let x = rows.clamp(1, MAX_WORKGROUPS as usize);
    [x as u32, rows.div_ceil(x).max(1) as u32, 1]
}

/// One recorded dispatch: everything is bound, so encoding it is cheap.
pub struct Dispatch {
    pub label: &'static str,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

/// A fixed sequence of dispatches, built once per model and encoded into
/// one compute pass on every use.
#[derive(Default)]
pub struct Plan {
    pub dispatches: Vec<Dispatch>,
}

impl Plan {
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
        }
    }

    /// Encode only dispatch `index`, for timing dispatches one by one.
    pub fn encode_one(&self, pass: &mut wgpu::ComputePass<'_>, index: usize) {
        let d = &self.dispatches[index];
        pass.set_pipeline(&d.pipeline);
        pass.set_bind_group(0, &d.bind_group, &[]);
        pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
    }

    /// Encode the plan in its own compute pass.
    pub fn encode_pass(&self, encoder: &mut wgpu::CommandEncoder, label: &str) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(label), timestamp_writes: None });
        self.encode(&mut pass);
    }

    pub fn len(&self) -> usize {
        self.dispatches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }
}

/// A tensor inside a buffer: the buffer and the element offset.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub offset: usize,
}

impl<'a> View<'a> {
    pub fn at(buffer: &'a wgpu::Buffer, offset: usize) -> View<'a> {
        View { buffer, offset }
    }

    pub fn whole(buffer: &'a wgpu::Buffer) -> View<'a> {
        View { buffer, offset: 0 }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MatmulParams {
    m: u32, k: u32, n: u32, a_offset: u32,
    b_offset: u32, c_offset: u32, bias_offset: u32, flags: u32,
    alpha: f32, beta: f32, k_begin: u32, k_end: u32,
    aux_offset: u32, sums_offset: u32, residual_scale: f32, _pad: u32,
}

// Flag bits of `MatmulParams::flags` (see `shaders/matmul.wgsl`).
const TRANSPOSE_A: u32 = 1;
const TRANSPOSE_B: u32 = 2;
const HAS_BIAS: u32 = 4;
const RESIDUAL: u32 = 8;
const GELU_GRADIENT: u32 = 16;
const COLUMN_SUMS: u32 = 32;

/// Maximum number of reduction terms in one matmul dispatch. Longer
/// products are split into dispatches that accumulate into C, because
/// llvmpipe (Mesa's software Vulkan driver) stops an invocation's loops
/// after 65535 iterations in total. The kernel loops 17 times per 16
/// terms and at most 36 times in its epilogue, so one dispatch stays
/// below 35000. The chunk is a multiple of the kernel's 16 terms per step.
const MATMUL_K_CHUNK: usize = 32_768;

/// Side of the square C tile of one matmul workgroup.
const MATMUL_TILE: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ElementwiseParams {
    n: u32, x_offset: u32, y_offset: u32, out_offset: u32,
    alpha: f32, beta: f32, _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LayerNormParams {
    rows: u32, d: u32, in_offset: u32, out_offset: u32,
    gamma_offset: u32, beta_offset: u32, stats_offset: u32, has_residual: u32,
    residual_offset: u32, residual_scale: f32, _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LayerNormBackwardParams {
    rows: u32, d: u32, dout_offset: u32, in_offset: u32,
    gamma_offset: u32, dinp_offset: u32, stats_offset: u32, beta_offset: u32,
    residual_offset: u32, has_residual: u32, dout_scale: f32, _pad: u32,
}

/// Sizes of one attention call.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct AttentionParams {
    pub batch: u32, pub context: u32, pub width: u32, pub heads: u32,
    pub head_dim: u32, pub scale: f32, pub _pad: [u32; 2],
}

impl AttentionParams {
    pub fn new(batch: usize, context: usize, width: usize, heads: usize) -> AttentionParams {
        let head_dim = width / heads;
        AttentionParams {
            batch: batch as u32, context: context as u32, width: width as u32, heads: heads as u32,
            head_dim: head_dim as u32, scale: 1.0 / (head_dim as f32).sqrt(), _pad: [0; 2],
        }
    }

    fn rows(&self) -> usize {
        (self.batch * self.heads * self.context) as usize
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct EmbeddingParams {
    rows: u32, context: u32, d: u32, vocab: u32,
    wte_offset: u32, wpe_offset: u32, _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CrossEntropyParams {
    rows: u32, vocab: u32, _pad: [u32; 2],
}

/// Per-step optimiser settings, rewritten before every step's submit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct StepParams {
    pub n: u32, pub step: u32, pub is_sgd: u32, pub partials: u32,
    pub lr: f32, pub beta1: f32, pub beta2: f32, pub eps: f32,
    pub weight_decay: f32, pub correction1: f32, pub correction2: f32, pub clip: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct StatsParams {
    rows: u32, d: u32, batch: u32, context: u32,
    out_offset: u32, chunks: u32, _pad: [u32; 2],
}

/// Workgroups of the first statistics pass over `elements` values, about
/// 64Ki values each, so that one invocation loops about 1000 times (see
/// `shaders/stats.wgsl`).
fn stats_chunks(elements: usize) -> usize {
    elements.div_ceil(256 * 256).clamp(1, MAX_WORKGROUPS as usize)
}

/// Partial values per workgroup of `layer_stats_partial` and
/// `final_grad_partial`.
const LAYER_PARTS: usize = 10;
const FINAL_PARTS: usize = 2;

/// Shape and options of one matrix product (see `shaders/matmul.wgsl`).
#[derive(Clone, Copy, Debug)]
pub struct MatmulShape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub transpose_a: bool,
    pub transpose_b: bool,
    pub alpha: f32,
    /// 0 overwrites C; 1 accumulates into it.
    pub beta: f32,
}

impl MatmulShape {
    pub fn new(m: usize, k: usize, n: usize) -> MatmulShape {
        MatmulShape { m, k, n, transpose_a: false, transpose_b: false, alpha: 1.0, beta: 0.0 }
    }
}

/// An element-wise step fused into a matrix product after
/// y = alpha·op(A)·op(B) + beta·C (+ bias), so that it costs no extra
/// dispatch or pass over memory. Views shaped like C must not be in C's
/// buffer, because WebGPU rejects a buffer bound both read-only and
/// writable in one dispatch.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    /// C = y.
    None,
    /// C = residual + scale·y, as in the residual update x + Δt·f(x).
    Residual { residual: View<'a>, scale: f32 },
    /// C = y, and `activated` = GELU(y): the MLP's pre-activation and output.
    Gelu { activated: View<'a> },
    /// C = y ⊙ GELU'(pre): the gradient of the GELU's input from that of its output.
    GeluGradient { pre: View<'a> },
    /// C = y, and C's buffer at element offset `sums` receives
    /// alpha·1ᵀ·op(B) + beta·sums: with op(A)·op(B) = Xᵀ·dY that is the
    /// bias gradient next to the weight gradient.
    ColumnSums { sums: usize },
}

/// Values written by the statistics kernel per state.
pub const STATS_PER_STATE: usize = 10;
/// Number of optimiser partial sums (workgroups of the norm reduction).
pub const NORM_PARTIALS: usize = 256;

pub struct Kernels {
    matmul: wgpu::ComputePipeline,
    matmul_gelu: wgpu::ComputePipeline,
    combine: wgpu::ComputePipeline,
    sum_scaled: wgpu::ComputePipeline,
    gelu_forward: wgpu::ComputePipeline,
    gelu_backward: wgpu::ComputePipeline,
    layernorm_forward: wgpu::ComputePipeline,
    layernorm_backward_input: wgpu::ComputePipeline,
    layernorm_backward_params: wgpu::ComputePipeline,
    attention_forward: wgpu::ComputePipeline,
    attention_backward_query: wgpu::ComputePipeline,
    attention_backward_key_value: wgpu::ComputePipeline,
    embedding_forward: wgpu::ComputePipeline,
    embedding_backward_tokens: wgpu::ComputePipeline,
    embedding_backward_positions: wgpu::ComputePipeline,
    cross_entropy: wgpu::ComputePipeline,
    norm_partial: wgpu::ComputePipeline,
    norm_finish: wgpu::ComputePipeline,
    update: wgpu::ComputePipeline,
    layer_stats_partial: wgpu::ComputePipeline,
    layer_stats_finish: wgpu::ComputePipeline,
    final_grad_partial: wgpu::ComputePipeline,
    final_grad_finish: wgpu::ComputePipeline,
    matrix_norms: wgpu::ComputePipeline,
}

fn pipeline(device: &wgpu::Device, module: &wgpu::ShaderModule, entry: &'static str) -> wgpu::ComputePipeline {
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: None,
        module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    })
}

fn module(device: &wgpu::Device, label: &str, source: &str) -> wgpu::ShaderModule {
    device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(label), source: wgpu::ShaderSource::Wgsl(source.into()) })
}

impl Kernels {
    /// Compile every kernel.
    pub fn new(ctx: &GpuContext) -> Kernels {
        let device = &ctx.device;
        let matmul = module(device, "matmul", include_str!("../../shaders/matmul.wgsl"));
        let elementwise = module(device, "elementwise", include_str!("../../shaders/elementwise.wgsl"));
        let layernorm = module(device, "layernorm", include_str!("../../shaders/layernorm.wgsl"));
        let layernorm_backward = module(device, "layernorm_backward", include_str!("../../shaders/layernorm_backward.wgsl"));
        let attention = module(device, "attention", include_str!("../../shaders/attention.wgsl"));
        let attention_backward = module(device, "attention_backward", include_str!("../../shaders/attention_backward.wgsl"));
        let embedding = module(device, "embedding", include_str!("../../shaders/embedding.wgsl"));
        let cross_entropy = module(device, "cross_entropy", include_str!("../../shaders/cross_entropy.wgsl"));
        let optimizer = module(device, "optimizer", include_str!("../../shaders/optimizer.wgsl"));
        let stats = module(device, "stats", include_str!("../../shaders/stats.wgsl"));
        let norms = module(device, "matrix_norms", include_str!("../../shaders/matrix_norms.wgsl"));
        Kernels {
            matmul: pipeline(device, &matmul, "matmul"),
            matmul_gelu: pipeline(device, &matmul, "matmul_gelu"),
            combine: pipeline(device, &elementwise, "combine"),
            sum_scaled: pipeline(device, &elementwise, "sum_scaled"),
            gelu_forward: pipeline(device, &elementwise, "gelu_forward"),
            gelu_backward: pipeline(device, &elementwise, "gelu_backward"),
            layernorm_forward: pipeline(device, &layernorm, "layernorm_forward"),
            layernorm_backward_input: pipeline(device, &layernorm_backward, "layernorm_backward_input"),
            layernorm_backward_params: pipeline(device, &layernorm_backward, "layernorm_backward_params"),
            attention_forward: pipeline(device, &attention, "attention_forward"),
            attention_backward_query: pipeline(device, &attention_backward, "attention_backward_query"),
            attention_backward_key_value: pipeline(device, &attention_backward, "attention_backward_key_value"),
            embedding_forward: pipeline(device, &embedding, "embedding_forward"),
            embedding_backward_tokens: pipeline(device, &embedding, "embedding_backward_tokens"),
            embedding_backward_positions: pipeline(device, &embedding, "embedding_backward_positions"),
            cross_entropy: pipeline(device, &cross_entropy, "cross_entropy"),
            norm_partial: pipeline(device, &optimizer, "norm_partial"),
            norm_finish: pipeline(device, &optimizer, "norm_finish"),
            update: pipeline(device, &optimizer, "update"),
            layer_stats_partial: pipeline(device, &stats, "layer_stats_partial"),
            layer_stats_finish: pipeline(device, &stats, "layer_stats_finish"),
            final_grad_partial: pipeline(device, &stats, "final_grad_partial"),
            final_grad_finish: pipeline(device, &stats, "final_grad_finish"),
            matrix_norms: pipeline(device, &norms, "matrix_norms"),
        }
    }
}

/// Bind `uniform` (when given) at binding 0 and `storage` at 1, 2, ...
fn push(
    ctx: &GpuContext, plan: &mut Plan, label: &'static str, pipeline: &wgpu::ComputePipeline,
    uniform: Option<&wgpu::Buffer>, storage: &[&wgpu::Buffer], workgroups: [u32; 3],
) {
    let first = if uniform.is_some() { 1 } else { 0 };
    let mut entries: Vec<wgpu::BindGroupEntry<'_>> = Vec::with_capacity(storage.len() + 1);
    if let Some(u) = uniform {
        entries.push(wgpu::BindGroupEntry { binding: 0, resource: u.as_entire_binding() });
    }
    for (i, buffer) in storage.iter().enumerate() {
        entries.push(wgpu::BindGroupEntry { binding: (first + i) as u32, resource: buffer.as_entire_binding() });
    }
    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    plan.dispatches.push(Dispatch { label, pipeline: pipeline.clone(), bind_group, workgroups });
}

/// Like [`push`] with explicit binding numbers, for entry points that skip some.
fn push_at(
    ctx: &GpuContext, plan: &mut Plan, label: &'static str, pipeline: &wgpu::ComputePipeline,
    bindings: &[(u32, &wgpu::Buffer)], workgroups: [u32; 3],
) {
    let entries: Vec<wgpu::BindGroupEntry<'_>> =
        bindings.iter().map(|(binding, buffer)| wgpu::BindGroupEntry { binding: *binding, resource: buffer.as_entire_binding() }).collect();
    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    plan.dispatches.push(Dispatch { label, pipeline: pipeline.clone(), bind_group, workgroups });
}

fn offset(value: usize) -> u32 {
    u32::try_from(value).expect("offsets fit in u32: buffers are capped far below 16 GiB")
}

impl Kernels {
    /// C = alpha·op(A)·op(B) + beta·C (+ bias on every row).
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(&self, ctx: &GpuContext, plan: &mut Plan, shape: MatmulShape, a: View, b: View, bias: Option<View>, c: View) {
        self.matmul_with(ctx, plan, shape, a, b, bias, c, Epilogue::None);
    }

    /// Records [`Kernels::matmul`] followed by `epilogue`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_with(
        &self, ctx: &GpuContext, plan: &mut Plan, shape: MatmulShape, a: View, b: View, bias: Option<View>, c: View, epilogue: Epilogue,
    ) {
        let mut flags = 0;
        if shape.transpose_a {
            flags |= TRANSPOSE_A;
        }
        if shape.transpose_b {
            flags |= TRANSPOSE_B;
        }
        if bias.is_some() {
            flags |= HAS_BIAS;
        }
        // Unused bindings still appear in the automatic layout, so they get
        // A, which the kernel only reads.
        let bias_view = bias.unwrap_or(a);
        let (mut aux, mut residual_scale, mut sums_offset, mut activated) = (a, 0.0, 0, None);
        match epilogue {
            Epilogue::None => {}
            Epilogue::Residual { residual, scale } => {
                flags |= RESIDUAL;
                aux = residual;
                residual_scale = scale;
            }
            Epilogue::Gelu { activated: out } => activated = Some(out),
            Epilogue::GeluGradient { pre } => {
                flags |= GELU_GRADIENT;
                aux = pre;
            }
            Epilogue::ColumnSums { sums } => {
                flags |= COLUMN_SUMS;
                sums_offset = sums;
            }
        }
        let aux_offset = activated.map_or(aux.offset, |view| view.offset);

        let (pipeline, label) = if activated.is_some() { (&self.matmul_gelu, "matmul_gelu") } else { (&self.matmul, "matmul") };
        let workgroups = [shape.n.div_ceil(MATMUL_TILE).max(1) as u32, shape.m.div_ceil(MATMUL_TILE).max(1) as u32, 1];

        // The first chunk applies beta, the bias and the epilogue; later
        // chunks add to C. A split product with an epilogue other than the
        // column sums would apply it to a partial sum, so it is rejected.
        assert!(
            shape.k <= MATMUL_K_CHUNK || (flags & (RESIDUAL | GELU_GRADIENT) == 0 && activated.is_none()),
            "a matmul epilogue other than column sums needs k <= {MATMUL_K_CHUNK}, got k = {}",
            shape.k
        );
        let mut k_begin = 0;
        loop {
            let k_end = shape.k.min(k_begin + MATMUL_K_CHUNK);
            let first = k_begin == 0;
            let params = MatmulParams {
                m: shape.m as u32, k: shape.k as u32, n: shape.n as u32, a_offset: offset(a.offset),
                b_offset: offset(b.offset), c_offset: offset(c.offset), bias_offset: offset(bias_view.offset),
                flags: if first { flags } else { flags & !HAS_BIAS },
                alpha: shape.alpha, beta: if first { shape.beta } else { 1.0 }, k_begin: k_begin as u32, k_end: k_end as u32,
                aux_offset: offset(aux_offset), sums_offset: offset(sums_offset), residual_scale, _pad: 0,
            };
            let uniform = ctx.uniform("matmul params", &params);
            match activated {
                Some(out) => push_at(
                    ctx, plan, label, pipeline,
                    &[(0, &uniform), (1, a.buffer), (2, b.buffer), (3, bias_view.buffer), (4, c.buffer), (5, aux.buffer), (6, out.buffer)],
                    workgroups,
                ),
                None => push(ctx, plan, label, pipeline, Some(&uniform), &[a.buffer, b.buffer, bias_view.buffer, c.buffer, aux.buffer], workgroups),
            }
            if k_end == shape.k {
                break;
            }
            k_begin = k_end;
        }
    }

    /// out = alpha·x + beta·y over n elements (y unread when beta = 0).
    #[allow(clippy::too_many_arguments)]
    pub fn combine(&self, ctx: &GpuContext, plan: &mut Plan, n: usize, alpha: f32, x: View, beta: f32, y: View, out: View) {
        let params = ElementwiseParams {
            n: n as u32, x_offset: offset(x.offset), y_offset: offset(y.offset), out_offset: offset(out.offset), alpha, beta, _pad: [0; 2],
        };
        let uniform = ctx.uniform("combine params", &params);
        push(ctx, plan, "combine", &self.combine, Some(&uniform), &[x.buffer, y.buffer, out.buffer], [groups_for(n, 256), 1, 1]);
    }

    /// out[0] = alpha·Σ x over n elements.
    pub fn sum_scaled(&self, ctx: &GpuContext, plan: &mut Plan, n: usize, alpha: f32, x: View, out: View) {
        let params = ElementwiseParams { n: n as u32, x_offset: offset(x.offset), y_offset: 0, out_offset: offset(out.offset), alpha, beta: 0.0, _pad: [0; 2] };
        let uniform = ctx.uniform("sum params", &params);
        push_at(ctx, plan, "sum_scaled", &self.sum_scaled, &[(0, &uniform), (1, x.buffer), (3, out.buffer)], [1, 1, 1]);
    }

    pub fn gelu_forward(&self, ctx: &GpuContext, plan: &mut Plan, n: usize, inp: View, out: View) {
        let params = ElementwiseParams { n: n as u32, x_offset: offset(inp.offset), y_offset: 0, out_offset: offset(out.offset), alpha: 1.0, beta: 0.0, _pad: [0; 2] };
        let uniform = ctx.uniform("gelu params", &params);
        push_at(ctx, plan, "gelu_forward", &self.gelu_forward, &[(0, &uniform), (1, inp.buffer), (3, out.buffer)], [groups_for(n, 256), 1, 1]);
    }

    /// dinp = dout·GELU'(inp).
    pub fn gelu_backward(&self, ctx: &GpuContext, plan: &mut Plan, n: usize, inp: View, dout: View, dinp: View) {
        let params = ElementwiseParams {
            n: n as u32, x_offset: offset(inp.offset), y_offset: offset(dout.offset), out_offset: offset(dinp.offset), alpha: 1.0, beta: 1.0, _pad: [0; 2],
        };
        let uniform = ctx.uniform("gelu params", &params);
        push(ctx, plan, "gelu_backward", &self.gelu_backward, Some(&uniform), &[inp.buffer, dout.buffer, dinp.buffer], [groups_for(n, 256), 1, 1]);
    }

    /// LayerNorm forward over `rows` rows of `d`; γ and β are in `weights`.
    /// `stats` receives the mean [rows] and then rstd [rows].
    #[allow(clippy::too_many_arguments)]
    pub fn layernorm_forward(
        &self, ctx: &GpuContext, plan: &mut Plan, rows: usize, d: usize,
        inp: View, weights: &wgpu::Buffer, gamma_offset: usize, beta_offset: usize, out: View, stats: View,
    ) {
        self.layernorm_forward_with(ctx, plan, rows, d, inp, weights, gamma_offset, beta_offset, out, stats, None);
    }

    /// Records [`Kernels::layernorm_forward`]. With `residual` = (r, s) it
    /// writes out = r + s·LayerNorm(inp) instead. r must not be in `out`'s buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn layernorm_forward_with(
        &self, ctx: &GpuContext, plan: &mut Plan, rows: usize, d: usize,
        inp: View, weights: &wgpu::Buffer, gamma_offset: usize, beta_offset: usize, out: View, stats: View, residual: Option<(View, f32)>,
    ) {
        // Without a residual the kernel still binds one, so it gets the input.
        let (residual_view, residual_scale) = residual.unwrap_or((inp, 0.0));
        let params = LayerNormParams {
            rows: rows as u32, d: d as u32, in_offset: offset(inp.offset), out_offset: offset(out.offset),
            gamma_offset: offset(gamma_offset), beta_offset: offset(beta_offset), stats_offset: offset(stats.offset),
            has_residual: u32::from(residual.is_some()), residual_offset: offset(residual_view.offset), residual_scale, _pad: [0; 2],
        };
        let uniform = ctx.uniform("layernorm params", &params);
        push(
            ctx, plan, "layernorm_forward", &self.layernorm_forward, Some(&uniform),
            &[inp.buffer, weights, out.buffer, stats.buffer, residual_view.buffer], [groups_for(rows, 1), 1, 1],
        );
    }

    /// LayerNorm backward: writes `dinp` and adds dγ, dβ into `grads` at the
    /// offsets of γ and β (the same offsets as in `weights`).
    #[allow(clippy::too_many_arguments)]
    pub fn layernorm_backward(
        &self, ctx: &GpuContext, plan: &mut Plan, rows: usize, d: usize,
        dout: View, inp: View, stats: View, weights: &wgpu::Buffer, gamma_offset: usize, beta_offset: usize,
        dinp: View, grads: &wgpu::Buffer,
    ) {
        self.layernorm_backward_with(ctx, plan, rows, d, dout, 1.0, inp, stats, weights, gamma_offset, beta_offset, dinp, grads, None);
    }

    /// Records [`Kernels::layernorm_backward`] for the output gradient
    /// dout_scale·dout. With a `residual`, dinp receives residual plus the
    /// input gradient. The residual must not be in `dinp`'s buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn layernorm_backward_with(
        &self, ctx: &GpuContext, plan: &mut Plan, rows: usize, d: usize,
        dout: View, dout_scale: f32, inp: View, stats: View, weights: &wgpu::Buffer, gamma_offset: usize, beta_offset: usize,
        dinp: View, grads: &wgpu::Buffer, residual: Option<View>,
    ) {
        let residual_view = residual.unwrap_or(dout);
        let params = LayerNormBackwardParams {
            rows: rows as u32, d: d as u32, dout_offset: offset(dout.offset), in_offset: offset(inp.offset),
            gamma_offset: offset(gamma_offset), dinp_offset: offset(dinp.offset), stats_offset: offset(stats.offset), beta_offset: offset(beta_offset),
            residual_offset: offset(residual_view.offset), has_residual: u32::from(residual.is_some()), dout_scale, _pad: 0,
        };
        let uniform = ctx.uniform("layernorm backward params", &params);
        push(
            ctx, plan, "layernorm_backward_input", &self.layernorm_backward_input, Some(&uniform),
            &[dout.buffer, inp.buffer, stats.buffer, weights, dinp.buffer, residual_view.buffer], [groups_for(rows, 1), 1, 1],
        );
        push_at(
            ctx, plan, "layernorm_backward_params", &self.layernorm_backward_params,
            &[(0, &uniform), (1, dout.buffer), (2, inp.buffer), (3, stats.buffer), (5, grads)], [groups_for(d, 1), 1, 1],
        );
    }

    pub fn attention_forward(&self, ctx: &GpuContext, plan: &mut Plan, shape: AttentionParams, qkv: &wgpu::Buffer, probs: &wgpu::Buffer, out: &wgpu::Buffer) {
        let uniform = ctx.uniform("attention params", &shape);
        push(ctx, plan, "attention_forward", &self.attention_forward, Some(&uniform), &[qkv, probs, out], row_grid(shape.rows()));
    }

    /// Writes `dqkv`, using `dscores` [B, H, T, T] as scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_backward(
        &self, ctx: &GpuContext, plan: &mut Plan, shape: AttentionParams,
        dout: &wgpu::Buffer, qkv: &wgpu::Buffer, probs: &wgpu::Buffer, dscores: &wgpu::Buffer, dqkv: &wgpu::Buffer,
    ) {
        let uniform = ctx.uniform("attention params", &shape);
        let groups = row_grid(shape.rows());
        push(ctx, plan, "attention_backward_query", &self.attention_backward_query, Some(&uniform), &[dout, qkv, probs, dscores, dqkv], groups);
        push(ctx, plan, "attention_backward_key_value", &self.attention_backward_key_value, Some(&uniform), &[dout, qkv, probs, dscores, dqkv], groups);
    }

    /// x = wte[token] + wpe[t]; `tokens` is [rows] of u32.
    #[allow(clippy::too_many_arguments)]
    pub fn embedding_forward(
        &self, ctx: &GpuContext, plan: &mut Plan, rows: usize, context: usize, d: usize, vocab: usize,
        tokens: &wgpu::Buffer, params: &wgpu::Buffer, wte_offset: usize, wpe_offset: usize, out: &wgpu::Buffer,
    ) {
        let p = EmbeddingParams {
            rows: rows as u32, context: context as u32, d: d as u32, vocab: vocab as u32,
            wte_offset: offset(wte_offset), wpe_offset: offset(wpe_offset), _pad: [0; 2],
        };
        let uniform = ctx.uniform("embedding params", &p);
        push(ctx, plan, "embedding_forward", &self.embedding_forward, Some(&uniform), &[tokens, params, out], [groups_for(rows * d, 256), 1, 1]);
    }

    /// Adds the embedding gradients into `grads` at the offsets of wte and wpe.
    #[allow(clippy::too_many_arguments)]
    pub fn embedding_backward(
        &self, ctx: &GpuContext, plan: &mut Plan, rows: usize, context: usize, d: usize, vocab: usize,
        tokens: &wgpu::Buffer, dout: &wgpu::Buffer, grads: &wgpu::Buffer, wte_offset: usize, wpe_offset: usize,
    ) {
        let p = EmbeddingParams {
            rows: rows as u32, context: context as u32, d: d as u32, vocab: vocab as u32,
            wte_offset: offset(wte_offset), wpe_offset: offset(wpe_offset), _pad: [0; 2],
        };
        let uniform = ctx.uniform("embedding params", &p);
        push(ctx, plan, "embedding_backward_tokens", &self.embedding_backward_tokens, Some(&uniform), &[tokens, dout, grads], row_grid(vocab * d));
        // The position gradient does not read the tokens (binding 1).
        push_at(
            ctx, plan, "embedding_backward_positions", &self.embedding_backward_positions,
            &[(0, &uniform), (2, dout), (3, grads)], [groups_for(context * d, 256), 1, 1],
        );
    }

    /// Per-row losses and dlogits = (softmax − onehot)/rows.
    #[allow(clippy::too_many_arguments)]
    pub fn cross_entropy(
        &self, ctx: &GpuContext, plan: &mut Plan, rows: usize, vocab: usize,
        logits: &wgpu::Buffer, targets: &wgpu::Buffer, dlogits: &wgpu::Buffer, losses: &wgpu::Buffer,
    ) {
        let p = CrossEntropyParams { rows: rows as u32, vocab: vocab as u32, _pad: [0; 2] };
        let uniform = ctx.uniform("cross entropy params", &p);
        push(ctx, plan, "cross_entropy", &self.cross_entropy, Some(&uniform), &[logits, targets, dlogits, losses], [groups_for(rows, 64), 1, 1]);
    }

    /// Global norm, clip scale and the AdamW or SGD update, reading the
    /// per-step settings from `step`.
    #[allow(clippy::too_many_arguments)]
    pub fn optimizer_step(
        &self, ctx: &GpuContext, plan: &mut Plan, n: usize, step: &wgpu::Buffer,
        params: &wgpu::Buffer, grads: &wgpu::Buffer, first_moment: &wgpu::Buffer, second_moment: &wgpu::Buffer,
        decay_mask: &wgpu::Buffer, state: &wgpu::Buffer, partials: &wgpu::Buffer,
    ) {
        push_at(ctx, plan, "norm_partial", &self.norm_partial, &[(0, step), (2, grads), (7, partials)], [NORM_PARTIALS as u32, 1, 1]);
        push_at(ctx, plan, "norm_finish", &self.norm_finish, &[(0, step), (6, state), (7, partials)], [1, 1, 1]);
        push_at(
            ctx, plan, "update", &self.update,
            &[(0, step), (1, params), (2, grads), (3, first_moment), (4, second_moment), (5, decay_mask), (6, state)],
            [groups_for(n, 256), 1, 1],
        );
    }

    /// Statistics of one state [rows, d] and its gradient into
    /// `out[out_offset..out_offset + STATS_PER_STATE]`.
    #[allow(clippy::too_many_arguments)]
    pub fn layer_stats(
        &self, ctx: &GpuContext, plan: &mut Plan, batch: usize, context: usize, d: usize,
        state: &wgpu::Buffer, grad: &wgpu::Buffer, out: &wgpu::Buffer, out_offset: usize,
    ) {
        let rows = batch * context;
        let chunks = stats_chunks(rows * d);
        let p = StatsParams {
            rows: rows as u32, d: d as u32, batch: batch as u32, context: context as u32,
            out_offset: offset(out_offset), chunks: chunks as u32, _pad: [0; 2],
        };
        let uniform = ctx.uniform("stats params", &p);
        let partials = ctx.zeros("layer stats partials", chunks * LAYER_PARTS);
        push_at(
            ctx, plan, "layer_stats_partial", &self.layer_stats_partial,
            &[(0, &uniform), (1, state), (2, grad), (4, &partials)], [chunks as u32, 1, 1],
        );
        push_at(ctx, plan, "layer_stats_finish", &self.layer_stats_finish, &[(0, &uniform), (3, out), (4, &partials)], [1, 1, 1]);
    }

    /// Σ rstd² and max ‖g‖/rstd under the final LayerNorm into `out[out_offset..+2]`.
    #[allow(clippy::too_many_arguments)]
    pub fn final_grad_stats(
        &self, ctx: &GpuContext, plan: &mut Plan, rows: usize, d: usize,
        ln_stats: &wgpu::Buffer, grad: &wgpu::Buffer, out: &wgpu::Buffer, out_offset: usize,
    ) {
        let chunks = stats_chunks(rows * d);
        let p = StatsParams {
            rows: rows as u32, d: d as u32, batch: 0, context: 0,
            out_offset: offset(out_offset), chunks: chunks as u32, _pad: [0; 2],
        };
        let uniform = ctx.uniform("final gradient params", &p);
        let partials = ctx.zeros("final gradient partials", chunks * FINAL_PARTS);
        push_at(
            ctx, plan, "final_grad_partial", &self.final_grad_partial,
            &[(0, &uniform), (1, ln_stats), (2, grad), (4, &partials)], [chunks as u32, 1, 1],
        );
        push_at(ctx, plan, "final_grad_finish", &self.final_grad_finish, &[(0, &uniform), (3, out), (4, &partials)], [1, 1, 1]);
    }

    /// Frobenius norm, max row and max column absolute sums for each job
    /// (offset, rows, columns, row stride) of `jobs`.
    pub fn matrix_norms(&self, ctx: &GpuContext, plan: &mut Plan, values: &wgpu::Buffer, jobs: &wgpu::Buffer, job_count: usize, out: &wgpu::Buffer) {
        push(ctx, plan, "matrix_norms", &self.matrix_norms, None, &[values, jobs, out], [job_count.max(1) as u32, 1, 1]);
    }
}
