//! Causal multi-head self-attention on a packed `[q k v]` tensor:
//! `softmax_causal(q_h·k_hᵀ / sqrt(d_h))·v_h` for every head h, concatenated.

use super::{add_scaled, dot, Scalar};

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
pub fn attention_forward<F: Scalar>(out: &mut [F], probs: &mut [F], qkv: &[F], shape: AttentionShape) {
    let AttentionShape { batch, context: t_len, width: d, heads } = shape;
    let dh = shape.head_dim();
    let scale = F::one() / F::of(dh as f64).sqrt();
    for b in 0..batch {
        for h in 0..heads {
            for t in 0..t_len {
                let q = &qkv[(b * t_len + t) * 3 * d + h * dh..][..dh];
                let row = &mut probs[((b * heads + h) * t_len + t) * t_len..][..t_len];

                // Scores for positions s ≤ t, shifted by their maximum so
                // exp never overflows.
                let mut max_score = F::neg_infinity();
                for s in 0..=t {
                    let k = &qkv[(b * t_len + s) * 3 * d + d + h * dh..][..dh];
                    let score = dot(q, k) * scale;
                    row[s] = score;
                    max_score = max_score.max(score);
                }
                let mut total = F::zero();
                for p in row.iter_mut().take(t + 1) {
                    *p = (*p - max_score).exp();
                    total = total + *p;
                }
                let inv_total = F::one() / total;
                for p in row.iter_mut().take(t + 1) {
                    *p = *p * inv_total;
                }
                for p in row.iter_mut().skip(t + 1) {
                    *p = F::zero();
                }

                let o = &mut out[(b * t_len + t) * d + h * dh..][..dh];
                o.fill(F::zero());
                for (s, &p) in row.iter().enumerate().take(t + 1) {
                    add_scaled(o, p, &qkv[(b * t_len + s) * 3 * d + 2 * d + h * dh..][..dh]);
                }
            }
        }
    }
}

/// Attention backward. Writes `dqkv`.
///
/// Shapes: dout [B, T, d], qkv [B, T, 3d], probs [B, H, T, T]; dqkv [B, T, 3d].
pub fn attention_backward<F: Scalar>(dqkv: &mut [F], dout: &[F], qkv: &[F], probs: &[F], shape: AttentionShape) {
    let AttentionShape { batch, context: t_len, width: d, heads } = shape;
    let dh = shape.head_dim();
    let scale = F::one() / F::of(dh as f64).sqrt();
    dqkv.fill(F::zero());
    let mut dprobs = vec![F::zero(); t_len];
    // q_t and its gradient, kept apart from dqkv so the inner loops borrow
    // one row of dqkv at a time.
    let mut q = vec![F::zero(); dh];
    let mut dq = vec![F::zero(); dh];
    for b in 0..batch {
        for h in 0..heads {
            for t in 0..t_len {
                let row = &probs[((b * heads + h) * t_len + t) * t_len..][..t_len];
                let o_grad = &dout[(b * t_len + t) * d + h * dh..][..dh];

                // out_t = Σ_s p_ts v_s gives dv_s += p_ts·dout_t and dp_ts = dout_t·v_s.
                for s in 0..=t {
                    let v_at = (b * t_len + s) * 3 * d + 2 * d + h * dh;
                    dprobs[s] = dot(o_grad, &qkv[v_at..][..dh]);
                    add_scaled(&mut dqkv[v_at..][..dh], row[s], o_grad);
                }

                // Softmax backward: dscore_ts = p_ts·(dp_ts − Σ_s' p_ts'·dp_ts').
                let weighted = dot(&row[..=t], &dprobs[..=t]);
                let q_at = (b * t_len + t) * 3 * d + h * dh;
                q.copy_from_slice(&qkv[q_at..][..dh]);
                dq.fill(F::zero());
                for s in 0..=t {
                    let dscore = row[s] * (dprobs[s] - weighted) * scale;
                    let k_at = (b * t_len + s) * 3 * d + d + h * dh;
                    add_scaled(&mut dq, dscore, &qkv[k_at..][..dh]);
                    add_scaled(&mut dqkv[k_at..][..dh], dscore, &q);
                }
                add_scaled(&mut dqkv[q_at..][..dh], F::one(), &dq);
            }
        }
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
