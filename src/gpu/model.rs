//! The model on the GPU: every buffer of one training step, and the
//! dispatch plans for the forward pass, the backward pass, the optimiser
//! and the statistics. The plans mirror `model/forward.rs` and
//! `model/backward.rs` half-step by half-step.
//!
//! Plans are built once, for one batch size. Per step the CPU writes only
//! the token ids and the step settings; per evaluation it reads back a few
//! hundred numbers.

use super::context::GpuContext;
use super::kernels::{AttentionParams, Epilogue, Kernels, MatmulShape, Plan, View, NORM_PARTIALS, STATS_PER_STATE};
use crate::config::{ModelConfig, OptimizerKind, TrainConfig};
use crate::metrics::bounds::{weight_norm_jobs, NormJob};
use crate::model::forward::{half_step_norms, Branch};
use crate::model::params::{BlockIds, LnIds};
use crate::model::{Layout, Model, TensorKind};

/// Buffers of one half-step's forward pass (each [N, d] unless noted).
struct HalfStepBuffers {
    branch: Branch,
    /// Statistics of the norm in front of the branch (mean then rstd, [2N]).
    ln_in_stats: Option<wgpu::Buffer>,
    /// The branch input u when a norm produces it; otherwise u is the state.
    branch_in: Option<wgpu::Buffer>,
    /// Attention: qkv [N, 3d]; MLP: pre-GELU [N, 4d].
    first: wgpu::Buffer,
    /// Attention: probs [B, H, T, T]; MLP: post-GELU [N, 4d].
    second: wgpu::Buffer,
    /// Attention: concatenated heads [N, d]; MLP: unused.
    third: Option<wgpu::Buffer>,
    /// The branch output f(u), kept only under an output norm (Peri-LN).
    /// Without one, the branch's last matmul adds Δt·f(u) to the state
    /// directly.
    branch_out: Option<wgpu::Buffer>,
    /// Peri-LN: the output norm's statistics. Its result goes straight
    /// into the residual sum.
    ln_out_stats: Option<wgpu::Buffer>,
    /// Post-LN: the sum before the norm and the norm's statistics.
    ln_post: Option<(wgpu::Buffer, wgpu::Buffer)>,
}

/// Scratch buffers of the backward pass, reused by every half-step.
struct BackwardScratch {
    dsum: wgpu::Buffer,
    dbranch_out: wgpu::Buffer,
    dheads: wgpu::Buffer,
    dqkv: wgpu::Buffer,
    dscores: wgpu::Buffer,
    dpre: wgpu::Buffer,
    du: wgpu::Buffer,
    dhead_input: wgpu::Buffer,
    dembedded: wgpu::Buffer,
}

pub struct GpuModel {
    pub config: ModelConfig,
    pub layout: Layout,
    pub batch: usize,
    pub context: usize,
    pub params: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    pub first_moment: wgpu::Buffer,
    pub second_moment: wgpu::Buffer,
    decay_mask: wgpu::Buffer,
    /// [global norm, clip scale, non-finite flag, first non-finite step].
    pub optimizer_state: wgpu::Buffer,
    partials: wgpu::Buffer,
    pub step_uniform: wgpu::Buffer,
    pub tokens: wgpu::Buffer,
    pub targets: wgpu::Buffer,
    ones: wgpu::Buffer,
    embedded: wgpu::Buffer,
    ln_emb_stats: Option<wgpu::Buffer>,
    /// The 2L + 1 residual-stream states, [N, d] each.
    pub states: Vec<wgpu::Buffer>,
    /// ∂loss/∂state for each state.
    pub state_grads: Vec<wgpu::Buffer>,
    half_steps: Vec<HalfStepBuffers>,
    head_input: Option<wgpu::Buffer>,
    ln_f_stats: Option<wgpu::Buffer>,
    logits: wgpu::Buffer,
    dlogits: wgpu::Buffer,
    losses: wgpu::Buffer,
    /// Mean loss of the last forward pass, [1].
    pub loss: wgpu::Buffer,
    scratch: BackwardScratch,
    /// Statistics per state, then the final-gradient pair, then norms.
    pub stats: wgpu::Buffer,
    weight_jobs: wgpu::Buffer,
    pub weight_job_count: usize,
    pub weight_norms: wgpu::Buffer,
    grad_jobs: wgpu::Buffer,
    pub grad_norms: wgpu::Buffer,
    pub forward: Plan,
    pub backward: Plan,
    pub optimizer: Plan,
    pub measure: Plan,
}

/// Bytes of the largest buffer a model needs at this batch size, for the
/// device request.
pub fn largest_buffer_bytes(config: &ModelConfig, batch: usize) -> u64 {
    let rows = batch * config.context;
    let layout_total = Layout::new(config).total;
    let candidates = [
        layout_total,
        rows * config.hidden(),
        rows * 3 * config.width,
        batch * config.heads * config.context * config.context,
        rows * config.vocab,
    ];
    4 * candidates.into_iter().max().unwrap_or(1) as u64
}

pub const NONE_STEP: u32 = u32::MAX;

impl GpuModel {
    /// Allocate every buffer for `model` at `batch` sequences and record
    /// the plans.
    pub fn new(ctx: &GpuContext, kernels: &Kernels, model: &Model<f32>, train: &TrainConfig, batch: usize) -> GpuModel {
        let config = model.config.clone();
        let layout = model.layout.clone();
        let (d, v, t) = (config.width, config.vocab, config.context);
        let rows = batch * t;
        let hidden = config.hidden();
        let probs_len = batch * config.heads * t * t;

        let params = ctx.upload("parameters", &model.params);
        let grads = ctx.zeros("gradients", layout.total);
        let first_moment = ctx.zeros("first moment", layout.total);
        let second_moment = ctx.zeros("second moment", layout.total);
        let mut mask = vec![0.0f32; layout.total];
        for spec in &layout.tensors {
            let decays = match spec.kind {
                TensorKind::Matrix | TensorKind::Embedding => true,
                TensorKind::LnGain => train.decay_ln_gains,
                TensorKind::Bias | TensorKind::LnBias => false,
            };
            if decays {
                mask[spec.range()].fill(1.0);
            }
        }
        let decay_mask = ctx.upload("decay mask", &mask);
        let optimizer_state = ctx.upload("optimizer state", &[0.0, 1.0, 0.0, f32::from_bits(NONE_STEP)]);
        let partials = ctx.zeros("norm partial sums", NORM_PARTIALS);
        let step_uniform = ctx.uniform("step settings", &super::kernels::StepParams::default());
        let tokens = ctx.upload_u32("tokens", &vec![0; rows]);
        let targets = ctx.upload_u32("targets", &vec![0; rows]);
        let ones = ctx.upload("ones", &vec![1.0; rows]);

        let state = |label: &str| ctx.zeros(label, rows * d);
        let ln_stats = |label: &str| ctx.zeros(label, 2 * rows);
        let embedded = state("embedded");
        let ln_emb_stats = layout.ln_emb.map(|_| ln_stats("ln_emb stats"));
        let states: Vec<wgpu::Buffer> = (0..=2 * config.layers).map(|_| state("state")).collect();
        let state_grads: Vec<wgpu::Buffer> = (0..=2 * config.layers).map(|_| state("state gradient")).collect();

        let mut half_steps = Vec::with_capacity(2 * config.layers);
        for block in &layout.blocks {
            for branch in [Branch::Attention, Branch::Mlp] {
                let (ln_in, ln_out, ln_post) = half_step_norms(config.placement, block, branch);
                let (first, second, third) = match branch {
                    Branch::Attention => (ctx.zeros("qkv", rows * 3 * d), ctx.zeros("attention probabilities", probs_len), Some(state("heads"))),
                    Branch::Mlp => (ctx.zeros("pre-GELU", rows * hidden), ctx.zeros("post-GELU", rows * hidden), None),
                };
                half_steps.push(HalfStepBuffers {
                    branch,
                    ln_in_stats: ln_in.map(|_| ln_stats("ln in stats")),
                    branch_in: ln_in.map(|_| state("branch input")),
                    first,
                    second,
                    third,
                    branch_out: ln_out.map(|_| state("branch output")),
                    ln_out_stats: ln_out.map(|_| ln_stats("ln out stats")),
                    ln_post: ln_post.map(|_| (state("residual sum"), ln_stats("ln post stats"))),
                });
            }
        }
        let head_input = layout.ln_f.map(|_| state("head input"));
        let ln_f_stats = layout.ln_f.map(|_| ln_stats("ln_f stats"));
        let logits = ctx.zeros("logits", rows * v);
        let dlogits = ctx.zeros("logit gradients", rows * v);
        let losses = ctx.zeros("row losses", rows);
        let loss = ctx.zeros("mean loss", 1);
        let scratch = BackwardScratch {
            dsum: state("dsum"),
            dbranch_out: state("dbranch_out"),
            dheads: state("dheads"),
            dqkv: ctx.zeros("dqkv", rows * 3 * d),
            dscores: ctx.zeros("dscores", probs_len),
            dpre: ctx.zeros("dpre", rows * hidden),
            du: state("du"),
            dhead_input: state("dhead_input"),
            dembedded: state("dembedded"),
        };

        let weight_job_list = weight_norm_jobs(&config, &layout);
        let weight_jobs = ctx.upload_u32("weight norm jobs", &flatten_jobs(&weight_job_list));
        let weight_norms = ctx.zeros("weight norms", 3 * weight_job_list.len());
        let grad_job_list: Vec<NormJob> = layout.tensors.iter().map(NormJob::vector).collect();
        let grad_jobs = ctx.upload_u32("gradient norm jobs", &flatten_jobs(&grad_job_list));
        let grad_norms = ctx.zeros("gradient norms", 3 * grad_job_list.len());
        let stats = ctx.zeros("layer statistics", STATS_PER_STATE * states.len() + 2);

        let mut model = GpuModel {
            config, layout, batch, context: t, params, grads, first_moment, second_moment, decay_mask, optimizer_state, partials,
            step_uniform, tokens, targets, ones, embedded, ln_emb_stats, states, state_grads, half_steps, head_input, ln_f_stats,
            logits, dlogits, losses, loss, scratch, stats, weight_jobs, weight_job_count: weight_job_list.len(), weight_norms,
            grad_jobs, grad_norms,
            forward: Plan::default(), backward: Plan::default(), optimizer: Plan::default(), measure: Plan::default(),
        };
        model.forward = model.record_forward(ctx, kernels);
        model.backward = model.record_backward(ctx, kernels);
        model.optimizer = model.record_optimizer(ctx, kernels);
        model.measure = model.record_measure(ctx, kernels);
        model
    }

    fn rows(&self) -> usize {
        self.batch * self.context
    }

    fn offset(&self, id: usize) -> usize {
        self.layout.tensors[id].offset
    }

    fn layernorm_forward(&self, ctx: &GpuContext, k: &Kernels, plan: &mut Plan, ids: LnIds, inp: &wgpu::Buffer, out: &wgpu::Buffer, stats: &wgpu::Buffer) {
        self.layernorm_forward_with(ctx, k, plan, ids, inp, out, stats, None);
    }

    /// LayerNorm forward, or out = r + s·LayerNorm(inp) with `residual` = (r, s).
    #[allow(clippy::too_many_arguments)]
    fn layernorm_forward_with(
        &self, ctx: &GpuContext, k: &Kernels, plan: &mut Plan, ids: LnIds, inp: &wgpu::Buffer, out: &wgpu::Buffer, stats: &wgpu::Buffer,
        residual: Option<(&wgpu::Buffer, f32)>,
    ) {
        let gamma = self.offset(ids.weight);
        let beta = self.offset(ids.bias);
        let residual = residual.map(|(buffer, scale)| (View::whole(buffer), scale));
        k.layernorm_forward_with(
            ctx, plan, self.rows(), self.config.width, View::whole(inp), &self.params, gamma, beta, View::whole(out), View::whole(stats), residual,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn layernorm_backward(
        &self, ctx: &GpuContext, k: &Kernels, plan: &mut Plan, ids: LnIds, dout: &wgpu::Buffer, inp: &wgpu::Buffer, stats: &wgpu::Buffer, dinp: &wgpu::Buffer,
    ) {
        self.layernorm_backward_with(ctx, k, plan, ids, dout, 1.0, inp, stats, dinp, None);
    }

    /// LayerNorm backward for the output gradient dout_scale·dout, adding
    /// `residual` to dinp when given.
    #[allow(clippy::too_many_arguments)]
    fn layernorm_backward_with(
        &self, ctx: &GpuContext, k: &Kernels, plan: &mut Plan, ids: LnIds, dout: &wgpu::Buffer, dout_scale: f32, inp: &wgpu::Buffer,
        stats: &wgpu::Buffer, dinp: &wgpu::Buffer, residual: Option<&wgpu::Buffer>,
    ) {
        let gamma = self.offset(ids.weight);
        let beta = self.offset(ids.bias);
        k.layernorm_backward_with(
            ctx, plan, self.rows(), self.config.width, View::whole(dout), dout_scale, View::whole(inp), View::whole(stats), &self.params,
            gamma, beta, View::whole(dinp), &self.grads, residual.map(View::whole),
        );
    }

    /// Records y = x·W + b for a weight `[c_in, c_out]` in the parameter
    /// buffer, followed by `epilogue`.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &self, ctx: &GpuContext, k: &Kernels, plan: &mut Plan, x: &wgpu::Buffer, weight: usize, bias: usize, c_in: usize, c_out: usize,
        y: &wgpu::Buffer, epilogue: Epilogue,
    ) {
        let shape = MatmulShape::new(self.rows(), c_in, c_out);
        let params = &self.params;
        let (w, b) = (View::at(params, self.offset(weight)), View::at(params, self.offset(bias)));
        k.matmul_with(ctx, plan, shape, View::whole(x), w, Some(b), View::whole(y), epilogue);
    }

    /// Records the backward of [`GpuModel::linear`] for the output gradient scale·dy:
    /// dx = scale·dy·Wᵀ followed by `dx_epilogue`, then dW += scale·xᵀ·dy
    /// and db += scale·1ᵀ·dy in one dispatch.
    #[allow(clippy::too_many_arguments)]
    fn linear_backward(
        &self, ctx: &GpuContext, k: &Kernels, plan: &mut Plan, dy: &wgpu::Buffer, scale: f32, x: &wgpu::Buffer, weight: usize, bias: usize,
        c_in: usize, c_out: usize, dx: &wgpu::Buffer, dx_epilogue: Epilogue,
    ) {
        let rows = self.rows();
        let dx_shape = MatmulShape { transpose_b: true, alpha: scale, ..MatmulShape::new(rows, c_out, c_in) };
        k.matmul_with(ctx, plan, dx_shape, View::whole(dy), View::at(&self.params, self.offset(weight)), None, View::whole(dx), dx_epilogue);
        let dw_shape = MatmulShape { transpose_a: true, alpha: scale, beta: 1.0, ..MatmulShape::new(c_in, rows, c_out) };
        let bias_gradient = Epilogue::ColumnSums { sums: self.offset(bias) };
        k.matmul_with(ctx, plan, dw_shape, View::whole(x), View::whole(dy), None, View::at(&self.grads, self.offset(weight)), bias_gradient);
    }

    fn record_forward(&self, ctx: &GpuContext, k: &Kernels) -> Plan {
        let mut plan = Plan::default();
        let (d, v) = (self.config.width, self.config.vocab);
        let rows = self.rows();
        let wte = self.offset(self.layout.wte);
        let wpe = self.offset(self.layout.wpe);

        match (self.layout.ln_emb, &self.ln_emb_stats) {
            (Some(ids), Some(stats)) => {
                k.embedding_forward(ctx, &mut plan, rows, self.context, d, v, &self.tokens, &self.params, wte, wpe, &self.embedded);
                self.layernorm_forward(ctx, k, &mut plan, ids, &self.embedded, &self.states[0], stats);
            }
            _ => k.embedding_forward(ctx, &mut plan, rows, self.context, d, v, &self.tokens, &self.params, wte, wpe, &self.states[0]),
        }

        for (i, hs) in self.half_steps.iter().enumerate() {
            let block = &self.layout.blocks[i / 2];
            self.record_half_step_forward(ctx, k, &mut plan, i, hs, block);
        }

        let x_last = self.states.last().expect("states start with x_0");
        let head_input = match (self.layout.ln_f, &self.head_input, &self.ln_f_stats) {
            (Some(ids), Some(out), Some(stats)) => {
                self.layernorm_forward(ctx, k, &mut plan, ids, x_last, out, stats);
                out
            }
            _ => x_last,
        };
        // logits = h·W_Uᵀ + b_U with W_U stored [V, d].
        let shape = MatmulShape { transpose_b: true, ..MatmulShape::new(rows, d, v) };
        let bias = self.layout.lm_head_bias.map(|id| View::at(&self.params, self.offset(id)));
        let head = View::at(&self.params, self.offset(self.layout.head_weight()));
        k.matmul(ctx, &mut plan, shape, View::whole(head_input), head, bias, View::whole(&self.logits));
        k.cross_entropy(ctx, &mut plan, rows, v, &self.logits, &self.targets, &self.dlogits, &self.losses);
        k.sum_scaled(ctx, &mut plan, rows, 1.0 / rows as f32, View::whole(&self.losses), View::whole(&self.loss));
        plan
    }

    fn record_half_step_forward(&self, ctx: &GpuContext, k: &Kernels, plan: &mut Plan, i: usize, hs: &HalfStepBuffers, block: &BlockIds) {
        let (d, hidden) = (self.config.width, self.config.hidden());
        let (ln_in, ln_out, ln_post) = half_step_norms(self.config.placement, block, hs.branch);
        let x = &self.states[i];

        let u = match (ln_in, &hs.branch_in, &hs.ln_in_stats) {
            (Some(ids), Some(u), Some(stats)) => {
                self.layernorm_forward(ctx, k, plan, ids, x, u, stats);
                u
            }
            _ => x,
        };
        let dt = self.config.dt as f32;
        let next = &self.states[i + 1];
        // The residual sum x + Δt·update: the state itself, or the input of
        // the post-norm.
        let sum = hs.ln_post.as_ref().map_or(next, |(sum, _)| sum);
        // Without an output norm, update = f(u), so the branch's last matmul
        // writes the sum itself.
        let (branch_target, branch_epilogue) = match &hs.branch_out {
            Some(branch_out) => (branch_out, Epilogue::None),
            None => (sum, Epilogue::Residual { residual: View::whole(x), scale: dt }),
        };
        match hs.branch {
            Branch::Attention => {
                let heads = hs.third.as_ref().expect("attention keeps its heads");
                self.linear(ctx, k, plan, u, block.c_attn_weight, block.c_attn_bias, d, 3 * d, &hs.first, Epilogue::None);
                let shape = AttentionParams::new(self.batch, self.context, d, self.config.heads);
                k.attention_forward(ctx, plan, shape, &hs.first, &hs.second, heads);
                self.linear(ctx, k, plan, heads, block.attn_proj_weight, block.attn_proj_bias, d, d, branch_target, branch_epilogue);
            }
            Branch::Mlp => {
                let gelu = Epilogue::Gelu { activated: View::whole(&hs.second) };
                self.linear(ctx, k, plan, u, block.c_fc_weight, block.c_fc_bias, d, hidden, &hs.first, gelu);
                self.linear(ctx, k, plan, &hs.second, block.mlp_proj_weight, block.mlp_proj_bias, hidden, d, branch_target, branch_epilogue);
            }
        }
        // Under an output norm, update = LN_out(f(u)), and the norm's kernel
        // writes the sum.
        if let (Some(ids), Some(branch_out), Some(stats)) = (ln_out, &hs.branch_out, &hs.ln_out_stats) {
            self.layernorm_forward_with(ctx, k, plan, ids, branch_out, sum, stats, Some((x, dt)));
        }
        if let (Some(ids), Some((sum, stats))) = (ln_post, &hs.ln_post) {
            self.layernorm_forward(ctx, k, plan, ids, sum, next, stats);
        }
    }

    /// Record the backward pass. The caller clears the gradient buffer first.
    fn record_backward(&self, ctx: &GpuContext, k: &Kernels) -> Plan {
        let mut plan = Plan::default();
        let (d, v) = (self.config.width, self.config.vocab);
        let rows = self.rows();
        let s = &self.scratch;
        let last = self.states.len() - 1;

        // logits = h·W_Uᵀ + b_U: dh = dlogits·W_U, dW_U += dlogitsᵀ·h, db_U += 1ᵀ·dlogits.
        let head = self.offset(self.layout.head_weight());
        let head_input = self.head_input.as_ref().unwrap_or(&self.states[last]);
        let dh_target = if self.layout.ln_f.is_some() { &s.dhead_input } else { &self.state_grads[last] };
        k.matmul(ctx, &mut plan, MatmulShape::new(rows, v, d), View::whole(&self.dlogits), View::at(&self.params, head), None, View::whole(dh_target));
        let dw_shape = MatmulShape { transpose_a: true, beta: 1.0, ..MatmulShape::new(v, rows, d) };
        k.matmul(ctx, &mut plan, dw_shape, View::whole(&self.dlogits), View::whole(head_input), None, View::at(&self.grads, head));
        if let Some(bias) = self.layout.lm_head_bias {
            let db_shape = MatmulShape { beta: 1.0, ..MatmulShape::new(1, rows, v) };
            k.matmul(ctx, &mut plan, db_shape, View::whole(&self.ones), View::whole(&self.dlogits), None, View::at(&self.grads, self.offset(bias)));
        }
        if let (Some(ids), Some(stats)) = (self.layout.ln_f, &self.ln_f_stats) {
            self.layernorm_backward(ctx, k, &mut plan, ids, &s.dhead_input, &self.states[last], stats, &self.state_grads[last]);
        }

        for (i, hs) in self.half_steps.iter().enumerate().rev() {
            let block = &self.layout.blocks[i / 2];
            self.record_half_step_backward(ctx, k, &mut plan, i, hs, block);
        }

        let dembedded = match (self.layout.ln_emb, &self.ln_emb_stats) {
            (Some(ids), Some(stats)) => {
                self.layernorm_backward(ctx, k, &mut plan, ids, &self.state_grads[0], &self.embedded, stats, &s.dembedded);
                &s.dembedded
            }
            _ => &self.state_grads[0],
        };
        let (wte, wpe) = (self.offset(self.layout.wte), self.offset(self.layout.wpe));
        k.embedding_backward(ctx, &mut plan, rows, self.context, d, v, &self.tokens, dembedded, &self.grads, wte, wpe);
        plan
    }

    fn record_half_step_backward(&self, ctx: &GpuContext, k: &Kernels, plan: &mut Plan, i: usize, hs: &HalfStepBuffers, block: &BlockIds) {
        let (d, hidden) = (self.config.width, self.config.hidden());
        let (ln_in, ln_out, ln_post) = half_step_norms(self.config.placement, block, hs.branch);
        let s = &self.scratch;
        let dt = self.config.dt as f32;
        let dx_out = &self.state_grads[i + 1];

        // x_out = LN_post(sum) or sum, with sum = x_in + Δt·update.
        let dsum = match (ln_post, &hs.ln_post) {
            (Some(ids), Some((sum, stats))) => {
                self.layernorm_backward(ctx, k, plan, ids, dx_out, sum, stats, &s.dsum);
                &s.dsum
            }
            _ => dx_out,
        };
        // The gradient of the branch output f(u), as dy and a factor. The
        // factor Δt of dupdate = Δt·dsum goes into the output norm's
        // backward, or without one into the matmuls of the branch's last
        // linear layer.
        let (dbranch_out, dbranch_scale) = match (ln_out, &hs.branch_out, &hs.ln_out_stats) {
            (Some(ids), Some(branch_out), Some(stats)) => {
                self.layernorm_backward_with(ctx, k, plan, ids, dsum, dt, branch_out, stats, &s.dbranch_out, None);
                (&s.dbranch_out, 1.0)
            }
            _ => (dsum, dt),
        };
        // dx_in = dsum + the gradient through the branch. Without an input
        // norm, the branch's first matmul adds dsum itself.
        let dx_in = &self.state_grads[i];
        let (du_target, du_epilogue) = match ln_in {
            Some(_) => (&s.du, Epilogue::None),
            None => (dx_in, Epilogue::Residual { residual: View::whole(dsum), scale: 1.0 }),
        };
        let u = hs.branch_in.as_ref().unwrap_or(&self.states[i]);
        match hs.branch {
            Branch::Attention => {
                let heads = hs.third.as_ref().expect("attention keeps its heads");
                let (proj_weight, proj_bias) = (block.attn_proj_weight, block.attn_proj_bias);
                self.linear_backward(ctx, k, plan, dbranch_out, dbranch_scale, heads, proj_weight, proj_bias, d, d, &s.dheads, Epilogue::None);
                let shape = AttentionParams::new(self.batch, self.context, d, self.config.heads);
                k.attention_backward(ctx, plan, shape, &s.dheads, &hs.first, &hs.second, &s.dscores, &s.dqkv);
                self.linear_backward(ctx, k, plan, &s.dqkv, 1.0, u, block.c_attn_weight, block.c_attn_bias, d, 3 * d, du_target, du_epilogue);
            }
            Branch::Mlp => {
                // The GELU backward rides on the matmul that forms the
                // gradient of the GELU's output.
                let gelu = Epilogue::GeluGradient { pre: View::whole(&hs.first) };
                let (proj_weight, proj_bias) = (block.mlp_proj_weight, block.mlp_proj_bias);
                self.linear_backward(ctx, k, plan, dbranch_out, dbranch_scale, &hs.second, proj_weight, proj_bias, hidden, d, &s.dpre, gelu);
                self.linear_backward(ctx, k, plan, &s.dpre, 1.0, u, block.c_fc_weight, block.c_fc_bias, d, hidden, du_target, du_epilogue);
            }
        }
        // Under an input norm, its backward adds dsum.
        if let (Some(ids), Some(stats)) = (ln_in, &hs.ln_in_stats) {
            self.layernorm_backward_with(ctx, k, plan, ids, &s.du, 1.0, &self.states[i], stats, dx_in, Some(dsum));
        }
    }

    fn record_optimizer(&self, ctx: &GpuContext, k: &Kernels) -> Plan {
        let mut plan = Plan::default();
        k.optimizer_step(
            ctx, &mut plan, self.layout.total, &self.step_uniform, &self.params, &self.grads, &self.first_moment, &self.second_moment,
            &self.decay_mask, &self.optimizer_state, &self.partials,
        );
        plan
    }

    /// Statistics of every state and its gradient, the final-gradient pair,
    /// and the weight and gradient norms. Runs after forward and backward.
    fn record_measure(&self, ctx: &GpuContext, k: &Kernels) -> Plan {
        let mut plan = Plan::default();
        let d = self.config.width;
        for (i, (state, grad)) in self.states.iter().zip(&self.state_grads).enumerate() {
            k.layer_stats(ctx, &mut plan, self.batch, self.context, d, state, grad, &self.stats, i * STATS_PER_STATE);
        }
        if let Some(stats) = &self.ln_f_stats {
            let last = self.states.len() - 1;
            k.final_grad_stats(ctx, &mut plan, self.rows(), d, stats, &self.state_grads[last], &self.stats, self.states.len() * STATS_PER_STATE);
        }
        k.matrix_norms(ctx, &mut plan, &self.params, &self.weight_jobs, self.weight_job_count, &self.weight_norms);
        k.matrix_norms(ctx, &mut plan, &self.grads, &self.grad_jobs, self.layout.tensors.len(), &self.grad_norms);
        plan
    }

    /// Settings of the update that takes the model from `step` to `step + 1`.
    pub fn step_params(&self, train: &TrainConfig, step: usize, lr: f64) -> super::kernels::StepParams {
        use crate::train::optimizer::{ADAM_BETA1, ADAM_BETA2, ADAM_EPS};
        let t = (step + 1) as i32;
        super::kernels::StepParams {
            n: self.layout.total as u32,
            step: step as u32,
            is_sgd: u32::from(train.optimizer == OptimizerKind::Sgd),
            partials: NORM_PARTIALS as u32,
            lr: lr as f32,
            beta1: ADAM_BETA1 as f32,
            beta2: ADAM_BETA2 as f32,
            eps: ADAM_EPS as f32,
            weight_decay: train.weight_decay as f32,
            correction1: (1.0 - ADAM_BETA1.powi(t)) as f32,
            correction2: (1.0 - ADAM_BETA2.powi(t)) as f32,
            clip: train.grad_clip.unwrap_or(0.0) as f32,
        }
    }

    /// Number of dispatches of one training step.
    pub fn dispatches_per_step(&self) -> usize {
        self.forward.len() + self.backward.len() + self.optimizer.len()
    }
}

fn flatten_jobs(jobs: &[NormJob]) -> Vec<u32> {
    jobs.iter().flat_map(|j| [j.offset as u32, j.rows as u32, j.cols as u32, j.row_stride as u32]).collect()
}
