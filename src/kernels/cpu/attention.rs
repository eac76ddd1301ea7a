//! Causal multi-head self-attention on a packed `[q k v]` tensor:
//! `softmax_causal(q_h·k_hᵀ / sqrt(d_h))·v_h` for every head h, concatenated.

use super::matmul::{gemm_view, View};
use super::scalar::wide_simd;
use super::threads::{for_each_part, for_each_rows, SharedMut};
use super::{dot, max_of, sum_of, Scalar};

/// Sizes shared by the attention forward and backward.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub batch: usize,
    pub context: usize,
    pub width: usize,
    pub heads: usize,
}

impl AttentionShape {
    fn head_dim(&self) -> usize {
        self.width / self.heads
    }
}

/// Attention forward. Stores the softmax probabilities for the backward pass;
/// entries above the diagonal (future positions) are 0.
///
/// Shapes: qkv [B, T, 3d] with q, k, v at column offsets 0, d, 2d and head h
/// in columns h·d_h..(h+1)·d_h of each; out [B, T, d]; probs [B, H, T, T].
///
/// Each head's scores and weighted sum are matrix products over blocks of
/// 32 query rows, and each block reads only the keys up to its last row
/// (see [`causal_blocks`]).
pub fn attention_forward<F: Scalar>(out: &mut [F], probs: &mut [F], qkv: &[F], shape: AttentionShape) {
    let AttentionShape { batch, context: t_len, width: d, heads } = shape;
    let (out_len, probs_len) = (t_len * d, heads * t_len * t_len);
    assert_eq!(out.len(), batch * out_len, "attention_forward: out has the wrong size");
    assert_eq!(probs.len(), batch * probs_len, "attention_forward: probs has the wrong size");
    let (out_at, probs_at) = (SharedMut(out.as_mut_ptr()), SharedMut(probs.as_mut_ptr()));
    // Sequences are independent, so each thread takes whole ones.
    for_each_part(batch, 1, 1, |part| {
        for b in part {
            // SAFETY: sequence b owns these rows of `out` and this block of
            // `probs`, and the parts are disjoint.
            let out = unsafe { std::slice::from_raw_parts_mut(out_at.get().add(b * out_len), out_len) };
            let probs = unsafe { std::slice::from_raw_parts_mut(probs_at.get().add(b * probs_len), probs_len) };
            let qkv = &qkv[b * t_len * 3 * d..][..t_len * 3 * d];
            sequence_forward(out, probs, qkv, shape);
        }
    });
}

wide_simd! {
/// Computes [`attention_forward`] on one sequence: out [T, d], probs [H, T, T], qkv [T, 3d].
fn sequence_forward<F: Scalar>(out: &mut [F], probs: &mut [F], qkv: &[F], shape: AttentionShape) {
    let AttentionShape { context: t_len, width: d, heads, .. } = shape;
    let dh = shape.head_dim();
    let scale = F::one() / F::of(dh as f64).sqrt();
    for h in 0..heads {
        let p_at = h * t_len * t_len;
        let (q, k_t, v) = (h * dh, View::transposed(d + h * dh, 3 * d), View::rows(2 * d + h * dh, 3 * d));
        // Scores of each block of queries against the keys up to its last
        // row; the softmax then zeroes the rest of each row.
        causal_blocks(t_len, |first, rows| {
            let (queries, scores) = (View::rows(q + first * 3 * d, 3 * d), View::rows(p_at + first * t_len, t_len));
            gemm_view(rows, dh, first + rows, scale, qkv, queries, qkv, k_t, F::zero(), probs, scores);
        });
        for t in 0..t_len {
            softmax_causal_row(&mut probs[p_at + t * t_len..][..t_len], t);
        }
        causal_blocks(t_len, |first, rows| {
            let (weights, o) = (View::rows(p_at + first * t_len, t_len), View::rows(h * dh + first * d, d));
            gemm_view(rows, first + rows, dh, F::one(), probs, weights, qkv, v, F::zero(), out, o);
        });
    }
}
}

/// Replaces the scores of positions s ≤ t in `row` by their softmax,
/// shifted by their maximum so exp never overflows, and zeroes the rest.
/// Inlined so that it runs in the caller's wide SIMD copy.
#[inline(always)]
fn softmax_causal_row<F: Scalar>(row: &mut [F], t: usize) {
    let (past, future) = row.split_at_mut(t + 1);
    let max_score = max_of(past);
    for p in past.iter_mut() {
        *p = (*p - max_score).fast_exp();
    }
    let total = sum_of(past, |p| p);
    let inv_total = F::one() / total;
    for p in past.iter_mut() {
        *p = *p * inv_total;
    }
    future.fill(F::zero());
}

/// Attention backward. Writes `dqkv`.
///
/// Shapes: dout [B, T, d], qkv [B, T, 3d], probs [B, H, T, T]; dqkv [B, T, 3d].
pub fn attention_backward<F: Scalar>(dqkv: &mut [F], dout: &[F], qkv: &[F], probs: &[F], shape: AttentionShape) {
    let AttentionShape { batch, context: t_len, width: d, heads } = shape;
    let (rows_len, out_len, probs_len) = (t_len * 3 * d, t_len * d, heads * t_len * t_len);
    // Each sequence writes only its own rows of dqkv.
    for_each_rows(dqkv, batch, 1, |first, dqkv| {
        // dP, then in place the score gradient dS, of one head.
        let mut dscores = vec![F::zero(); t_len * t_len];
        for (index, dqkv) in dqkv.chunks_exact_mut(rows_len).enumerate() {
            let b = first + index;
            let dout = &dout[b * out_len..][..out_len];
            let qkv = &qkv[b * rows_len..][..rows_len];
            let probs = &probs[b * probs_len..][..probs_len];
            sequence_backward(dqkv, &mut dscores, dout, qkv, probs, shape);
        }
    });
}

wide_simd! {
/// Computes [`attention_backward`] on one sequence, with `dscores` [T, T] as scratch.
fn sequence_backward<F: Scalar>(dqkv: &mut [F], dscores: &mut [F], dout: &[F], qkv: &[F], probs: &[F], shape: AttentionShape) {
    let AttentionShape { context: t_len, width: d, heads, .. } = shape;
    let dh = shape.head_dim();
    let scale = F::one() / F::of(dh as f64).sqrt();
    // The heads' dq, dk and dv products below write every column of dqkv.
    for h in 0..heads {
        let p_at = h * t_len * t_len;
        let o_grad = h * dh;
        let (q, k, v) = (h * dh, d + h * dh, 2 * d + h * dh);

        // out = P·V gives dP = dout·Vᵀ and dV = Pᵀ·dout. Like the forward,
        // each block of rows of dP needs only the keys up to its last row,
        // and each block of keys of dV only the queries from its first row.
        causal_blocks(t_len, |first, rows| {
            let (grads, dp) = (View::rows(o_grad + first * d, d), View::rows(first * t_len, t_len));
            gemm_view(rows, dh, first + rows, F::one(), dout, grads, qkv, View::transposed(v, 3 * d), F::zero(), dscores, dp);
        });
        causal_blocks(t_len, |first, cols| {
            let p_t = View::transposed(p_at + first * t_len + first, t_len);
            let (grads, dv) = (View::rows(o_grad + first * d, d), View::rows(v + first * 3 * d, 3 * d));
            gemm_view(cols, t_len - first, dh, F::one(), probs, p_t, dout, grads, F::zero(), dqkv, dv);
        });

        // Softmax backward: dS_ts = P_ts·(dP_ts − Σ_s' P_ts'·dP_ts'), times
        // the score scale, and 0 for future positions, whose dP is not used.
        for t in 0..t_len {
            let row = &probs[p_at + t * t_len..][..=t];
            let (past, future) = dscores[t * t_len..][..t_len].split_at_mut(t + 1);
            let weighted = dot(row, past);
            for (g, &pr) in past.iter_mut().zip(row) {
                *g = pr * (*g - weighted) * scale;
            }
            future.fill(F::zero());
        }

        // S = Q·Kᵀ gives dQ = dS·K and dK = dSᵀ·Q, with the same blocks.
        causal_blocks(t_len, |first, rows| {
            let (ds, dq) = (View::rows(first * t_len, t_len), View::rows(q + first * 3 * d, 3 * d));
            gemm_view(rows, first + rows, dh, F::one(), dscores, ds, qkv, View::rows(k, 3 * d), F::zero(), dqkv, dq);
        });
        causal_blocks(t_len, |first, cols| {
            let ds_t = View::transposed(first * t_len + first, t_len);
            let (queries, dk) = (View::rows(q + first * 3 * d, 3 * d), View::rows(k + first * 3 * d, 3 * d));
            gemm_view(cols, t_len - first, dh, F::one(), dscores, ds_t, qkv, queries, F::zero(), dqkv, dk);
        });
    }
}
}

/// Query rows per block of the causal products.
const CAUSAL_BLOCK: usize = 32;

/// Calls `product(first, rows)` for consecutive blocks of rows that cover
/// `0..t_len`. Queries first..first + rows attend to keys 0..first + rows
/// only, which skips a quarter of the work at T = 64.
#[inline(always)]
fn causal_blocks(t_len: usize, mut product: impl FnMut(usize, usize)) {
    let mut first = 0;
    while first < t_len {
        let rows = CAUSAL_BLOCK.min(t_len - first);
        product(first, rows);
        first += rows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_position_copies_its_own_value() {
        let shape = AttentionShape { batch: 1, context: 3, width: 2, heads: 1 };
        let qkv: Vec<f64> = (0..18).map(|i| (i as f64 * 0.3).sin()).collect();
        let (mut out, mut probs) = (vec![0.0; 6], vec![0.0; 9]);
        attention_forward(&mut out, &mut probs, &qkv, shape);
        assert_eq!(&out[0..2], &qkv[4..6]);
        assert_eq!(probs[1], 0.0, "future position must get no weight");
        for t in 0..3 {
            let total: f64 = probs[t * 3..t * 3 + 3].iter().sum();
            assert!((total - 1.0).abs() < 1e-12);
        }
    }

    /// Wide heads make each causal block's product split over threads
    /// inside a sequence that already runs on one: nested parallel parts.
    #[test]
    fn nested_threads_give_identical_bits() {
        let shape = AttentionShape { batch: 4, context: 128, width: 256, heads: 4 };
        let qkv: Vec<f32> = (0..4 * 128 * 768).map(|i| (i as f32 * 0.001).sin()).collect();
        let dout: Vec<f32> = (0..4 * 128 * 256).map(|i| (i as f32 * 0.003).cos()).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let (mut out, mut probs) = (vec![0.0f32; dout.len()], vec![0.0f32; 4 * 4 * 128 * 128]);
                attention_forward(&mut out, &mut probs, &qkv, shape);
                let mut dqkv = vec![0.0f32; qkv.len()];
                attention_backward(&mut dqkv, &dout, &qkv, &probs, shape);
                (out, dqkv)
            })
        };
        let (one, four) = (run(1), run(4));
        assert!(one.0.iter().zip(&four.0).all(|(a, b)| a.to_bits() == b.to_bits()), "forward differs");
        assert!(one.1.iter().zip(&four.1).all(|(a, b)| a.to_bits() == b.to_bits()), "backward differs");
    }

    #[test]
    fn large_logits_stay_finite() {
        let shape = AttentionShape { batch: 1, context: 4, width: 1, heads: 1 };
        let mut qkv = vec![0.0f32; 12];
        for t in 0..4 {
            qkv[t * 3] = 300.0;
            qkv[t * 3 + 1] = if t % 2 == 0 { 300.0 } else { -300.0 };
            qkv[t * 3 + 2] = t as f32;
        }
        let (mut out, mut probs) = (vec![0.0; 4], vec![0.0; 16]);
        attention_forward(&mut out, &mut probs, &qkv, shape);
        assert!(out.iter().chain(&probs).all(|v| v.is_finite()), "{out:?} {probs:?}");
    }
}
