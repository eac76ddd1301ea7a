//! A start-up check that a few kernels agree with the CPU reference on
//! small inputs, so a broken driver is reported instead of trained on.

use super::context::{GpuContext, GpuError};
use super::kernels::{AttentionParams, Epilogue, Kernels, MatmulShape, Plan, View};
use crate::kernels::cpu::attention::{attention_forward, AttentionShape};
use crate::kernels::cpu::gelu::gelu_forward;
use crate::kernels::cpu::layernorm::layernorm_forward;
use crate::kernels::cpu::matmul::linear_forward;

/// Largest accepted difference, relative to the largest reference value.
/// The inputs are O(1) and the reductions short, so f32 rounding stays
/// near 1e-6.
const TOLERANCE: f32 = 1e-4;

fn inputs(len: usize, phase: f32) -> Vec<f32> {
    (0..len).map(|i| ((i as f32) * 0.37 + phase).sin() * 1.5).collect()
}

fn compare(kernel: &str, gpu: &[f32], cpu: &[f32]) -> Result<(), GpuError> {
    let scale = cpu.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        let error = (g - c).abs() / scale;
        if !(error <= TOLERANCE) {
            return Err(GpuError::SelfTest(format!("{kernel} returned {g} at index {i} where the CPU reference gives {c}")));
        }
    }
    Ok(())
}

/// Run a matrix product, the product with GELU fused into it (the MLP's
/// first layer), a LayerNorm and attention on the device and compare each
/// with the CPU.
pub async fn self_test(ctx: &GpuContext, kernels: &Kernels) -> Result<(), GpuError> {
    let (m, k, n) = (5, 7, 3);
    let x = inputs(m * k, 0.1);
    let w = inputs(k * n, 0.7);
    let bias = inputs(n, 1.3);
    let mut expected = vec![0.0; m * n];
    linear_forward(&mut expected, &x, &w, Some(&bias), k, n);

    let (rows, d) = (3, 5);
    let ln_in = inputs(rows * d, 2.0);
    let gamma = inputs(d, 0.4);
    let beta = inputs(d, 0.9);
    let (mut ln_expected, mut mean, mut rstd) = (vec![0.0; rows * d], vec![0.0; rows], vec![0.0; rows]);
    layernorm_forward(&mut ln_expected, &mut mean, &mut rstd, &ln_in, &gamma, &beta, d);

    let shape = AttentionShape { batch: 1, context: 4, width: 4, heads: 2 };
    let qkv = inputs(4 * 12, 0.2);
    let (mut att_expected, mut probs) = (vec![0.0; 16], vec![0.0; 2 * 16]);
    attention_forward(&mut att_expected, &mut probs, &qkv, shape);

    let mut gelu_expected = vec![0.0; m * n];
    gelu_forward(&mut gelu_expected, &expected);

    let x_buffer = ctx.upload("self-test x", &x);
    let weights: Vec<f32> = [w.clone(), bias.clone(), gamma.clone(), beta.clone()].concat();
    let weight_buffer = ctx.upload("self-test weights", &weights);
    let matmul_out = ctx.zeros("self-test matmul", m * n);
    let ln_in_buffer = ctx.upload("self-test layernorm input", &ln_in);
    let ln_out = ctx.zeros("self-test layernorm", rows * d);
    let ln_stats = ctx.zeros("self-test layernorm stats", 2 * rows);
    let qkv_buffer = ctx.upload("self-test qkv", &qkv);
    let probs_buffer = ctx.zeros("self-test probabilities", 2 * 16);
    let att_out = ctx.zeros("self-test attention", 16);
    let pre_gelu_out = ctx.zeros("self-test matmul before gelu", m * n);
    let gelu_out = ctx.zeros("self-test matmul_gelu", m * n);

    let mut plan = Plan::default();
    let (w_at, b_at, g_at, beta_at) = (0, k * n, k * n + n, k * n + n + d);
    kernels.matmul(
        ctx, &mut plan, MatmulShape::new(m, k, n), View::whole(&x_buffer), View::at(&weight_buffer, w_at),
        Some(View::at(&weight_buffer, b_at)), View::whole(&matmul_out),
    );
    kernels.layernorm_forward(ctx, &mut plan, rows, d, View::whole(&ln_in_buffer), &weight_buffer, g_at, beta_at, View::whole(&ln_out), View::whole(&ln_stats));
    kernels.attention_forward(ctx, &mut plan, AttentionParams::new(1, 4, 4, 2), &qkv_buffer, &probs_buffer, &att_out);
    kernels.matmul_with(
        ctx, &mut plan, MatmulShape::new(m, k, n), View::whole(&x_buffer), View::at(&weight_buffer, w_at),
        Some(View::at(&weight_buffer, b_at)), View::whole(&pre_gelu_out), Epilogue::Gelu { activated: View::whole(&gelu_out) },
    );
    let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("self-test") });
    plan.encode_pass(&mut encoder, "self-test");
    ctx.queue.submit([encoder.finish()]);

    compare("matmul", &ctx.read_f32(&matmul_out, m * n).await?, &expected)?;
    compare("layernorm_forward", &ctx.read_f32(&ln_out, rows * d).await?, &ln_expected)?;
    compare("attention_forward", &ctx.read_f32(&att_out, 16).await?, &att_expected)?;
    compare("matmul_gelu (product)", &ctx.read_f32(&pre_gelu_out, m * n).await?, &expected)?;
    compare("matmul_gelu", &ctx.read_f32(&gelu_out, m * n).await?, &gelu_expected)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_is_reported_with_kernel_and_values() {
        let error = compare("matmul", &[1.0, 2.5, 3.0], &[1.0, 2.0, 3.0]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("matmul returned 2.5 at index 1"), "{message}");
        assert!(message.contains("training stays on the CPU"), "{message}");
    }

    #[test]
    fn nan_from_the_device_fails() {
        assert!(compare("gelu_forward", &[f32::NAN], &[0.5]).is_err());
    }

    #[test]
    fn rounding_differences_pass() {
        compare("layernorm_forward", &[1.000_000_1, -2.0], &[1.0, -2.000_000_2]).unwrap();
    }
}
