//! The forward pass. Each block is two residual half-steps, attention then
//! MLP, and the placement decides where LayerNorm goes:
//!
//! | placement | half-step with branch f                |
//! |-----------|----------------------------------------|
//! | Post-LN   | x = LN(x + Δt·f(x))                    |
//! | Pre-LN    | x = x + Δt·f(LN(x))                    |
//! | Peri-LN   | x = x + Δt·LN_out(f(LN(x)))            |
//! | No LN     | x = x + Δt·f(x)                        |

use super::params::{BlockIds, LnIds};
use super::scratch::{buffer, copied, recycle, zeroed};
use super::{BatchError, Model};
use crate::config::Placement;
use crate::kernels::cpu::attention::{attention_forward, AttentionShape};
use crate::kernels::cpu::cross_entropy::cross_entropy_forward;
use crate::kernels::cpu::embedding::embedding_forward;
use crate::kernels::cpu::gelu::gelu_forward_keeping_gate;
use crate::kernels::cpu::layernorm::layernorm_forward;
use crate::kernels::cpu::matmul::{gemm, linear_forward, Op};
use crate::kernels::cpu::Scalar;

/// Per-row statistics that a LayerNorm keeps for its backward pass.
#[derive(Clone, Debug)]
pub struct LnStats<F> {
    pub mean: Vec<F>,
    /// 1 / sqrt(σ² + ε) of each row.
    pub rstd: Vec<F>,
}

/// The residual branch of a half-step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Branch {
    Attention,
    Mlp,
}

/// Values a branch keeps for its backward pass.
#[derive(Clone, Debug)]
pub enum BranchCache<F> {
    Attention {
        /// [N, 3d]
        qkv: Vec<F>,
        /// [B, H, T, T]
        probs: Vec<F>,
        /// Concatenated head outputs before `c_proj`, [N, d].
        heads_out: Vec<F>,
    },
    Mlp {
        /// `u·W_1 + b_1`, [N, 4d].
        pre_gelu: Vec<F>,
        /// GELU of it, [N, 4d].
        post_gelu: Vec<F>,
        /// The GELU's gate σ(2u) of each element, which its backward reuses, [N, 4d].
        gate: Vec<F>,
    },
}

/// One half-step's intermediate values (all [N, d] unless noted).
#[derive(Clone, Debug)]
pub struct HalfStepCache<F> {
    pub branch: Branch,
    /// Statistics of the LN in front of the branch (Pre, Peri).
    pub ln_in: Option<LnStats<F>>,
    /// The branch input u: LN(x) or x itself.
    pub branch_in: Vec<F>,
    pub cache: BranchCache<F>,
    /// The branch output f(u), before any output LN.
    pub branch_out: Vec<F>,
    /// Statistics of the LN on the branch output (Peri).
    pub ln_out: Option<LnStats<F>>,
    /// The sum x + Δt·(...) and its LN statistics (Post).
    pub ln_post: Option<(Vec<F>, LnStats<F>)>,
}

/// Everything the forward pass computed, kept for the backward pass and the
/// metrics.
#[derive(Clone, Debug)]
pub struct ForwardPass<F> {
    pub batch: usize,
    pub context: usize,
    pub tokens: Vec<u32>,
    pub targets: Vec<u32>,
    /// `wte[token] + wpe[t]`, before the optional embedding LN, [N, d].
    pub embedded: Vec<F>,
    pub ln_emb: Option<LnStats<F>>,
    /// Residual-stream states at half-step resolution: `states[2l]` is x_l,
    /// the input of block l (and `states[2L]` the last), `states[2l + 1]` the
    /// state between its attention and MLP half-steps. Each is [N, d].
    pub states: Vec<Vec<F>>,
    pub half_steps: Vec<HalfStepCache<F>>,
    /// Statistics of LN_f, whose rstd also enters the gradient bound.
    pub ln_f: Option<LnStats<F>>,
    /// LN_f(x_L) or x_L, [N, d].
    pub head_input: Vec<F>,
    /// Softmax of the logits, [N, V].
    pub probs: Vec<F>,
    /// Mean (optionally weighted) cross-entropy.
    pub loss: F,
}

impl<F> LnStats<F> {
    fn into_buffers(self) -> [Vec<F>; 2] {
        [self.mean, self.rstd]
    }
}

impl<F> ForwardPass<F> {
    /// Returns every buffer of the pass, to hand to [`super::scratch::recycle`].
    pub fn into_buffers(self) -> Vec<Vec<F>> {
        let mut buffers = vec![self.embedded, self.head_input, self.probs];
        buffers.extend(self.states);
        buffers.extend(self.ln_emb.into_iter().chain(self.ln_f).flat_map(LnStats::into_buffers));
        for half_step in self.half_steps {
            buffers.push(half_step.branch_in);
            buffers.push(half_step.branch_out);
            match half_step.cache {
                BranchCache::Attention { qkv, probs, heads_out } => buffers.extend([qkv, probs, heads_out]),
                BranchCache::Mlp { pre_gelu, post_gelu, gate } => buffers.extend([pre_gelu, post_gelu, gate]),
            }
            buffers.extend(half_step.ln_in.into_iter().chain(half_step.ln_out).flat_map(LnStats::into_buffers));
            if let Some((sum, stats)) = half_step.ln_post {
                buffers.push(sum);
                buffers.extend(stats.into_buffers());
            }
        }
        buffers
    }

    pub fn rows(&self) -> usize {
        self.batch * self.context
    }

    /// The residual stream x_l at block boundary l = 0..L.
    pub fn block_state(&self, l: usize) -> &[F] {
        &self.states[2 * l]
    }
}

pub(crate) fn ln_forward<F: Scalar>(model: &Model<F>, ids: LnIds, inp: &[F]) -> (Vec<F>, LnStats<F>) {
    let d = model.config.width;
    let rows = inp.len() / d;
    let mut out = buffer(inp.len());
    let mut stats = LnStats { mean: buffer(rows), rstd: buffer(rows) };
    layernorm_forward(&mut out, &mut stats.mean, &mut stats.rstd, inp, model.tensor(ids.weight), model.tensor(ids.bias), d);
    (out, stats)
}

/// The norms a half-step applies: (in front of the branch, on its output,
/// after the residual add).
pub(crate) fn half_step_norms(placement: Placement, block: &BlockIds, branch: Branch) -> (Option<LnIds>, Option<LnIds>, Option<LnIds>) {
    let norms = match branch {
        Branch::Attention => (block.ln_1, block.ln_attn_out),
        Branch::Mlp => (block.ln_2, block.ln_mlp_out),
    };
    half_step_roles(placement, norms)
}

/// Place a branch's two norms (the block's `ln_1`/`ln_2` and the Peri-LN
/// output norm) in the roles of [`half_step_norms`]: (in front of the
/// branch, on its output, after the residual add).
pub fn half_step_roles<T>(placement: Placement, (norm, out_norm): (Option<T>, Option<T>)) -> (Option<T>, Option<T>, Option<T>) {
    match placement {
        Placement::Pre => (norm, None, None),
        Placement::Peri => (norm, out_norm, None),
        Placement::Post => (None, None, norm),
        Placement::None => (None, None, None),
    }
}

impl<F: Scalar> Model<F> {
    /// Run the network on `batch` sequences and return the loss with every
    /// intermediate value.
    ///
    /// Shapes: tokens, targets [B, T] with T ≤ context; weights [B, T] scale
    /// each position's cross-entropy (the gradient checks use them; training
    /// passes `None`).
    pub fn forward(&self, tokens: &[u32], targets: &[u32], batch: usize, weights: Option<&[F]>) -> Result<ForwardPass<F>, BatchError> {
        let context = self.check_batch(tokens, batch)?;
        self.check_batch(targets, batch)?;
        let (d, v) = (self.config.width, self.config.vocab);
        let rows = batch * context;

        let mut embedded = buffer(rows * d);
        embedding_forward(&mut embedded, tokens, self.tensor(self.layout.wte), self.tensor(self.layout.wpe), context, d);
        let (x0, ln_emb) = match self.layout.ln_emb {
            Some(ids) => {
                let (out, stats) = ln_forward(self, ids, &embedded);
                (out, Some(stats))
            }
            None => (copied(&embedded), None),
        };

        let mut states = Vec::with_capacity(2 * self.config.layers + 1);
        let mut half_steps = Vec::with_capacity(2 * self.config.layers);
        states.push(x0);
        for block in &self.layout.blocks {
            for branch in [Branch::Attention, Branch::Mlp] {
                let x = states.last().expect("states start with x_0");
                let (next, cache) = self.half_step_forward(x, block, branch, batch, context);
                states.push(next);
                half_steps.push(cache);
            }
        }

        let x_last = states.last().expect("states start with x_0");
        let (head_input, ln_f) = match self.layout.ln_f {
            Some(ids) => {
                let (out, stats) = ln_forward(self, ids, x_last);
                (out, Some(stats))
            }
            None => (copied(x_last), None),
        };

        // logits = head_input·W_Uᵀ + b_U with W_U stored [V, d].
        let mut logits = zeroed(rows * v);
        if let Some(bias) = self.layout.lm_head_bias {
            for row in logits.chunks_exact_mut(v) {
                row.copy_from_slice(self.tensor(bias));
            }
        }
        gemm(rows, d, v, F::one(), &head_input, Op::Plain, self.tensor(self.layout.head_weight()), Op::Transposed, F::one(), &mut logits);
        let mut probs = buffer(rows * v);
        let loss = cross_entropy_forward(&mut probs, &logits, targets, weights, v);
        recycle([logits]);

        Ok(ForwardPass {
            batch, context,
            tokens: tokens.to_vec(), targets: targets.to_vec(),
            embedded, ln_emb, states, half_steps, ln_f, head_input, probs, loss,
        })
    }

    fn half_step_forward(&self, x: &[F], block: &BlockIds, branch: Branch, batch: usize, context: usize) -> (Vec<F>, HalfStepCache<F>) {
        let (ln_in_ids, ln_out_ids, ln_post_ids) = half_step_norms(self.config.placement, block, branch);
        let dt = F::of(self.config.dt);

        let (branch_in, ln_in) = match ln_in_ids {
            Some(ids) => {
                let (u, stats) = ln_forward(self, ids, x);
                (u, Some(stats))
            }
            None => (copied(x), None),
        };
        let (branch_out, cache) = match branch {
            Branch::Attention => self.attention_forward(&branch_in, block, batch, context),
            Branch::Mlp => self.mlp_forward(&branch_in, block),
        };
        let normed_out = ln_out_ids.map(|ids| ln_forward(self, ids, &branch_out));
        let update: &[F] = normed_out.as_ref().map_or(&branch_out, |(y, _)| y);
        let mut sum = buffer(x.len());
        for ((s, &xi), &yi) in sum.iter_mut().zip(x).zip(update) {
            *s = xi + dt * yi;
        }
        let ln_out = normed_out.map(|(y, stats)| {
            recycle([y]);
            stats
        });
        let (next, ln_post) = match ln_post_ids {
            Some(ids) => {
                let (out, stats) = ln_forward(self, ids, &sum);
                (out, Some((sum, stats)))
            }
            None => (sum, None),
        };
        let cache = HalfStepCache { branch, ln_in, branch_in, cache, branch_out, ln_out, ln_post };
        (next, cache)
    }

    /// `Attn(u) = concat_h(softmax_causal(q_h·k_hᵀ/sqrt(d_h))·v_h)·W_o + b_o`.
    fn attention_forward(&self, u: &[F], block: &BlockIds, batch: usize, context: usize) -> (Vec<F>, BranchCache<F>) {
        let d = self.config.width;
        let rows = batch * context;
        let shape = AttentionShape { batch, context, width: d, heads: self.config.heads };

        let mut qkv = buffer(rows * 3 * d);
        linear_forward(&mut qkv, u, self.tensor(block.c_attn_weight), Some(self.tensor(block.c_attn_bias)), d, 3 * d);
        let mut probs = buffer(batch * self.config.heads * context * context);
        let mut heads_out = buffer(rows * d);
        attention_forward(&mut heads_out, &mut probs, &qkv, shape);
        let mut out = buffer(rows * d);
        linear_forward(&mut out, &heads_out, self.tensor(block.attn_proj_weight), Some(self.tensor(block.attn_proj_bias)), d, d);
        (out, BranchCache::Attention { qkv, probs, heads_out })
    }

    /// `MLP(u) = GELU(u·W_1 + b_1)·W_2 + b_2`.
    fn mlp_forward(&self, u: &[F], block: &BlockIds) -> (Vec<F>, BranchCache<F>) {
        let (d, hidden) = (self.config.width, self.config.hidden());
        let rows = u.len() / d;
        let mut pre_gelu = buffer(rows * hidden);
        linear_forward(&mut pre_gelu, u, self.tensor(block.c_fc_weight), Some(self.tensor(block.c_fc_bias)), d, hidden);
        let (mut post_gelu, mut gate) = (buffer(rows * hidden), buffer(rows * hidden));
        gelu_forward_keeping_gate(&mut post_gelu, &mut gate, &pre_gelu);
        let mut out = buffer(rows * d);
        linear_forward(&mut out, &post_gelu, self.tensor(block.mlp_proj_weight), Some(self.tensor(block.mlp_proj_bias)), hidden, d);
        (out, BranchCache::Mlp { pre_gelu, post_gelu, gate })
    }
}
