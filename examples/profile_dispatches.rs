//! Wall time of each kind of dispatch in one training step of the standard
//! preset, on the default adapter, after one untimed step. Each dispatch
//! is submitted and waited for alone, so the total exceeds a real step,
//! but the shares show where the time goes.
//!
//!     cargo run --release --example profile_dispatches [-- pre|post|peri|none]

use lnlab::config::{DataConfig, ModelConfig, Placement, TrainConfig};
use lnlab::data::{Dataset, Split};
use lnlab::gpu::kernels::Plan;
use lnlab::gpu::GpuBackend;
use lnlab::model::Model;
use lnlab::rng::seeded;
use std::collections::BTreeMap;
use std::time::Instant;

fn time_plan(backend: &GpuBackend, plan: &Plan, totals: &mut BTreeMap<&'static str, (usize, f64)>) {
    let ctx = &backend.ctx;
    for (index, dispatch) in plan.dispatches.iter().enumerate() {
        let start = Instant::now();
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            plan.encode_one(&mut pass, index);
        }
        ctx.queue.submit([encoder.finish()]);
        ctx.device.poll(wgpu::PollType::wait_indefinitely()).expect("the device stays alive");
        let entry = totals.entry(dispatch.label).or_default();
        entry.0 += 1;
        entry.1 += start.elapsed().as_secs_f64();
    }
}

fn main() {
    let placement = std::env::args().nth(1).map(|p| Placement::parse(&p).unwrap_or_else(|e| panic!("{e}"))).unwrap_or(Placement::Pre);
    let dataset = Dataset::load(&DataConfig::MobyDick, 1).unwrap_or_else(|e| panic!("{e}"));
    let config = ModelConfig { placement, ..ModelConfig::standard(dataset.vocab.len()) };
    let train = TrainConfig::default();
    let model = Model::<f32>::init(&config, &mut seeded(1));
    let backend = pollster::block_on(GpuBackend::new(&model, &train)).unwrap_or_else(|e| panic!("{e}"));
    let batch = dataset.sample_batch(Split::Train, train.batch, config.context, &mut seeded(2));
    backend.ctx.queue.write_buffer(&backend.model.tokens, 0, bytemuck::cast_slice(&batch.inputs));
    backend.ctx.queue.write_buffer(&backend.model.targets, 0, bytemuck::cast_slice(&batch.targets));

    // On llvmpipe the first dispatch of a pipeline also compiles its shader
    // (tens of milliseconds for the matmul), so one untimed step keeps
    // compile time out of the shares.
    let plans = [&backend.model.forward, &backend.model.backward, &backend.model.optimizer];
    for plan in plans {
        time_plan(&backend, plan, &mut BTreeMap::new());
    }
    let mut totals = BTreeMap::new();
    for plan in plans {
        time_plan(&backend, plan, &mut totals);
    }
    let sum: f64 = totals.values().map(|(_, t)| t).sum();
    let mut rows: Vec<_> = totals.into_iter().collect();
    rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    println!("{} on {}, {} dispatches per step", placement.label(), backend.ctx.adapter, backend.model.dispatches_per_step());
    for (label, (count, seconds)) in rows {
        println!("{label:32} {count:4} dispatches {:9.1} ms {:5.1} %", seconds * 1e3, 100.0 * seconds / sum);
    }
}
