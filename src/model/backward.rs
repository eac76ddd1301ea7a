//! The backward pass, half-step by half-step in reverse, mirroring
//! `forward.rs`.

use super::forward::{half_step_norms, BranchCache, ForwardPass, HalfStepCache, LnStats};
use super::params::{BlockIds, LnIds};
use super::scratch::{buffer, copied, recycle, zeroed};
use super::Model;
use crate::kernels::cpu::attention::{attention_backward, AttentionShape};
use crate::kernels::cpu::cross_entropy::cross_entropy_backward;
use crate::kernels::cpu::embedding::embedding_backward;
use crate::kernels::cpu::gelu::gelu_backward_with_gate;
use crate::kernels::cpu::layernorm::layernorm_backward;
use crate::kernels::cpu::matmul::{gemm, linear_backward, Op};
use crate::kernels::cpu::Scalar;

/// Gradients of the loss.
#[derive(Clone, Debug)]
pub struct Gradients<F> {
    /// ∂loss/∂θ in the parameter layout.
    pub params: Vec<F>,
    /// ∂loss/∂state for every residual-stream state of the forward pass
    /// (`states[2l]` is ∂loss/∂x_l), each [N, d].
    pub states: Vec<Vec<F>>,
}

/// Borrow two distinct tensors of the gradient buffer mutably at once.
fn two_mut<'a, F>(model: &Model<F>, grads: &'a mut [F], first: usize, second: usize) -> (&'a mut [F], &'a mut [F]) {
    let (a, b) = (model.layout.tensors[first].range(), model.layout.tensors[second].range());
    assert!(a.end <= b.start || b.end <= a.start, "tensors overlap");
    if a.start < b.start {
        let (low, high) = grads.split_at_mut(b.start);
        (&mut low[a], &mut high[..b.len()])
    } else {
        let (low, high) = grads.split_at_mut(a.start);
        (&mut high[..a.len()], &mut low[b])
    }
}

fn ln_backward<F: Scalar>(model: &Model<F>, grads: &mut [F], ids: LnIds, dout: &[F], inp: &[F], stats: &LnStats<F>) -> Vec<F> {
    let mut dinp = buffer(inp.len());
    let (dgamma, dbeta) = two_mut(model, grads, ids.weight, ids.bias);
    layernorm_backward(&mut dinp, dgamma, dbeta, dout, inp, &stats.mean, &stats.rstd, model.tensor(ids.weight), model.config.width);
    dinp
}

impl<F: Scalar> Model<F> {
    /// Back-propagate the loss of `pass`. `weights` must be the ones given
    /// to the forward pass.
    pub fn backward(&self, pass: &ForwardPass<F>, weights: Option<&[F]>) -> Gradients<F> {
        let (d, v) = (self.config.width, self.config.vocab);
        let rows = pass.rows();
        let mut grads = zeroed(self.layout.total);

        let mut dlogits = buffer(rows * v);
        cross_entropy_backward(&mut dlogits, &pass.probs, &pass.targets, weights, v);

        // logits = h·W_Uᵀ + b_U: dh = dlogits·W_U, dW_U += dlogitsᵀ·h.
        let head = self.layout.head_weight();
        let mut dhead_input = buffer(rows * d);
        gemm(rows, v, d, F::one(), &dlogits, Op::Plain, self.tensor(head), Op::Plain, F::zero(), &mut dhead_input);
        gemm(v, rows, d, F::one(), &dlogits, Op::Transposed, &pass.head_input, Op::Plain, F::one(), self.layout.get_mut(&mut grads, head));
        if let Some(bias) = self.layout.lm_head_bias {
            let dbias = self.layout.get_mut(&mut grads, bias);
            for row in dlogits.chunks_exact(v) {
                for (db, &g) in dbias.iter_mut().zip(row) {
                    *db = *db + g;
                }
            }
        }

        let last = pass.states.len() - 1;
        let mut dstates = vec![Vec::new(); pass.states.len()];
        dstates[last] = match (self.layout.ln_f, &pass.ln_f) {
            (Some(ids), Some(stats)) => ln_backward(self, &mut grads, ids, &dhead_input, &pass.states[last], stats),
            _ => dhead_input,
        };

        for i in (0..pass.half_steps.len()).rev() {
            let block = &self.layout.blocks[i / 2];
            let dx = self.half_step_backward(&mut grads, &dstates[i + 1], &pass.states[i], &pass.half_steps[i], block, pass);
            dstates[i] = dx;
        }

        let dembedded = match (self.layout.ln_emb, &pass.ln_emb) {
            (Some(ids), Some(stats)) => ln_backward(self, &mut grads, ids, &dstates[0], &pass.embedded, stats),
            _ => copied(&dstates[0]),
        };
        let (dwte, dwpe) = two_mut(self, &mut grads, self.layout.wte, self.layout.wpe);
        embedding_backward(dwte, dwpe, &dembedded, &pass.tokens, pass.context, d);
        recycle([dembedded]);

        Gradients { params: grads, states: dstates }
    }

    /// Gradient through one half-step: from ∂loss/∂x_out to ∂loss/∂x_in.
    fn half_step_backward(
        &self, grads: &mut [F], dx_out: &[F], x_in: &[F], cache: &HalfStepCache<F>, block: &BlockIds, pass: &ForwardPass<F>,
    ) -> Vec<F> {
        let (ln_in_ids, ln_out_ids, ln_post_ids) = half_step_norms(self.config.placement, block, cache.branch);
        let dt = F::of(self.config.dt);

        // x_out = LN_post(sum) or sum, with sum = x_in + Δt·update.
        let post_grad = match (ln_post_ids, &cache.ln_post) {
            (Some(ids), Some((sum, stats))) => Some(ln_backward(self, grads, ids, dx_out, sum, stats)),
            _ => None,
        };
        let dsum: &[F] = post_grad.as_deref().unwrap_or(dx_out);
        let mut dupdate = buffer(dsum.len());
        for (u, &g) in dupdate.iter_mut().zip(dsum) {
            *u = dt * g;
        }
        let dbranch_out = match (ln_out_ids, &cache.ln_out) {
            (Some(ids), Some(stats)) => {
                let grad = ln_backward(self, grads, ids, &dupdate, &cache.branch_out, stats);
                recycle([dupdate]);
                grad
            }
            _ => dupdate,
        };
        let dbranch_in = match &cache.cache {
            BranchCache::Attention { qkv, probs, heads_out } => {
                self.attention_backward(grads, &dbranch_out, &cache.branch_in, qkv, probs, heads_out, block, pass)
            }
            BranchCache::Mlp { pre_gelu, post_gelu, gate } => {
                self.mlp_backward(grads, &dbranch_out, &cache.branch_in, pre_gelu, post_gelu, gate, block)
            }
        };
        recycle([dbranch_out]);
        let dx_branch = match (ln_in_ids, &cache.ln_in) {
            (Some(ids), Some(stats)) => {
                let grad = ln_backward(self, grads, ids, &dbranch_in, x_in, stats);
                recycle([dbranch_in]);
                grad
            }
            _ => dbranch_in,
        };

        let mut dx_in = buffer(dsum.len());
        for ((g, &a), &b) in dx_in.iter_mut().zip(dsum).zip(&dx_branch) {
            *g = a + b;
        }
        recycle([dx_branch]);
        recycle(post_grad);
        dx_in
    }

    #[allow(clippy::too_many_arguments)]
    fn attention_backward(
        &self, grads: &mut [F], dout: &[F], u: &[F], qkv: &[F], probs: &[F], heads_out: &[F], block: &BlockIds, pass: &ForwardPass<F>,
    ) -> Vec<F> {
        let d = self.config.width;
        let rows = pass.rows();
        let shape = AttentionShape { batch: pass.batch, context: pass.context, width: d, heads: self.config.heads };

        let mut dheads_out = buffer(rows * d);
        let (dw, db) = two_mut(self, grads, block.attn_proj_weight, block.attn_proj_bias);
        linear_backward(&mut dheads_out, dw, Some(db), dout, heads_out, self.tensor(block.attn_proj_weight), d, d);

        let mut dqkv = buffer(rows * 3 * d);
        attention_backward(&mut dqkv, &dheads_out, qkv, probs, shape);

        let mut du = buffer(rows * d);
        let (dw, db) = two_mut(self, grads, block.c_attn_weight, block.c_attn_bias);
        linear_backward(&mut du, dw, Some(db), &dqkv, u, self.tensor(block.c_attn_weight), d, 3 * d);
        recycle([dheads_out, dqkv]);
        du
    }

    #[allow(clippy::too_many_arguments)]
    fn mlp_backward(&self, grads: &mut [F], dout: &[F], u: &[F], pre_gelu: &[F], post_gelu: &[F], gate: &[F], block: &BlockIds) -> Vec<F> {
        let (d, hidden) = (self.config.width, self.config.hidden());
        let rows = u.len() / d;

        let mut dpost = buffer(rows * hidden);
        let (dw, db) = two_mut(self, grads, block.mlp_proj_weight, block.mlp_proj_bias);
        linear_backward(&mut dpost, dw, Some(db), dout, post_gelu, self.tensor(block.mlp_proj_weight), hidden, d);

        let mut dpre = buffer(rows * hidden);
        gelu_backward_with_gate(&mut dpre, &dpost, pre_gelu, gate);

        let mut du = buffer(rows * d);
        let (dw, db) = two_mut(self, grads, block.c_fc_weight, block.c_fc_bias);
        linear_backward(&mut du, dw, Some(db), &dpre, u, self.tensor(block.c_fc_weight), d, hidden);
        recycle([dpost, dpre]);
        du
    }
}

