// Measures the built page in headless Chromium: wasm size, time to the first
// chart, and training throughput on the CPU path (WebAssembly) and the
// WebGPU path (SwiftShader, a software adapter). Prints plain text in the
// line format of examples/bench_train.rs.
//
//     node scripts/bench-page.mjs [--no-webgpu] [--no-workers] [--model small|standard|large]
//
// --no-workers removes the Worker constructor before the page starts, so the
// CPU path computes both shards of each step on the page's own thread.
//
// Needs dist/ from scripts/build-web.sh and the npm packages (playwright-core).
// The static server listens on 127.0.0.1 and is closed with the browsers on
// exit, also after an error.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { distDir, launchChromium, recentLog, startStaticServer } from '../tests/e2e/harness.mjs';

// Model shapes as in examples/bench_train.rs; batch 16, 4 heads, Pre-LN, Moby-Dick.
const models = {
  small: { layers: 4, width: 32, context: 32 },
  standard: { layers: 8, width: 64, context: 64 },
  large: { layers: 16, width: 128, context: 128 },
};
const batch = 16;
const heads = 4;

// Runs to measure: untimed warm-up steps, then timed steps. The counts keep
// each run under a minute on a 2-core x86_64 machine. SwiftShader trains the
// small model at about 0.3 steps/s there, so the WebGPU path measures only
// that model and few steps.
const runs = [
  { backend: 'cpu', model: 'small', warmup: 20, timed: 300 },
  { backend: 'cpu', model: 'standard', warmup: 3, timed: 60 },
  { backend: 'cpu', model: 'large', warmup: 1, timed: 4 },
  { backend: 'webgpu', model: 'small', warmup: 1, timed: 4 },
];
const chartRepeats = 3;
const runTimeoutMs = 300_000;
const chartTimeoutMs = 60_000;

/** Counts model FLOPs per training step with the formula of examples/bench_train.rs. */
function flopsPerStep({ layers, width, context }, vocab) {
  const tokens = batch * context;
  const block = 24 * tokens * width * width + 4 * batch * context * context * width;
  return 3 * (layers * block + 2 * tokens * width * vocab);
}

/** Returns the lab's vocabulary size for Moby-Dick: its number of distinct characters. */
function corpusVocabulary() {
  const text = readFileSync(join(distDir, 'moby-dick.txt'), 'utf8');
  return new Set(text).size;
}

/** Prints the size of the one .wasm in dist/, raw and after gzip level 9 with node's zlib. */
function reportWasmSize() {
  const files = readdirSync(distDir).filter((name) => name.endsWith('.wasm'));
  if (files.length !== 1) {
    throw new Error(`expected one .wasm file in ${distDir}, found ${files.length}: ${files.join(', ') || 'none'}`);
  }
  const bytes = readFileSync(join(distDir, files[0]));
  const gzipped = gzipSync(bytes, { level: 9 }).length;
  console.log(`wasm     ${bytes.length} bytes after wasm-opt, ${gzipped} bytes after gzip level 9 with node's zlib (dist/${files[0]})`);
}

// Runs in the page before its scripts: records the time (ms since navigation
// start) of every change of #status's data-step and data-state, because the
// page publishes its progress through those attributes.
function recordStatusChanges() {
  window.lnlabProgress = [];
  const observer = new MutationObserver(() => {
    const status = document.getElementById('status');
    if (!status) {
      return;
    }
    const step = Number(status.getAttribute('data-step'));
    const state = status.getAttribute('data-state');
    const last = window.lnlabProgress.at(-1);
    if (!last || last.step !== step || last.state !== state) {
      window.lnlabProgress.push({ time: performance.now(), step, state });
    }
  });
  const observe = () => observer.observe(document.documentElement, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-step', 'data-state'] });
  if (document.documentElement) {
    observe();
  } else {
    addEventListener('DOMContentLoaded', observe);
  }
}

/** Opens a fresh page `count` times and returns the ms from navigation start to a sized canvas#metric-chart. */
async function measureFirstChart(browser, url, count) {
  const times = [];
  for (let i = 0; i < count; i += 1) {
    const page = await browser.context.newPage();
    try {
      await page.goto(url);
      const handle = await page.waitForFunction(
        () => {
          const canvas = document.querySelector('canvas#metric-chart');
          const box = canvas?.getBoundingClientRect();
          return canvas && canvas.width > 0 && canvas.height > 0 && box.width > 0 && box.height > 0 ? performance.now() : null;
        },
        null,
        { timeout: chartTimeoutMs, polling: 'raf' },
      );
      times.push(await handle.jsonValue());
    } finally {
      await page.close();
    }
  }
  return times;
}

/** Trains one run from a link, without web workers when `withoutWorkers` is set, and prints its timing; throws with the page's log. */
async function measureRun(browser, serverUrl, run, vocab, withoutWorkers) {
  const shape = models[run.model];
  const steps = run.warmup + run.timed;
  const query = new URLSearchParams({
    placement: 'pre',
    layers: shape.layers,
    width: shape.width,
    heads,
    context: shape.context,
    batch,
    steps,
    'eval-every': steps,
    data: 'moby-dick',
    backend: run.backend,
    run: 1,
  });
  const page = await browser.context.newPage();
  const log = [];
  page.on('console', (message) => log.push(`console.${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => log.push(`page error: ${error.message}`));
  try {
    await page.addInitScript(recordStatusChanges);
    if (withoutWorkers) {
      await page.addInitScript(() => {
        delete globalThis.Worker;
      });
    }
    await page.goto(`${serverUrl}?${query}`);
    await page
      .waitForFunction(() => ['finished', 'diverged'].includes(document.getElementById('status')?.getAttribute('data-state')), null, {
        timeout: runTimeoutMs,
        polling: 500,
      })
      .catch((error) => {
        throw new Error(`${run.backend} ${run.model}: the run did not finish within ${runTimeoutMs / 1000} s: ${error.message}\n${recentLog(log)}`);
      });

    const result = await page.evaluate(() => ({
      progress: window.lnlabProgress,
      state: document.getElementById('status').getAttribute('data-state'),
      backend: document.getElementById('backend')?.getAttribute('data-backend'),
      backendLabel: document.getElementById('backend')?.textContent ?? '',
      rate: document.getElementById('rate')?.textContent ?? '',
      userAgent: navigator.userAgent,
    }));
    if (result.state !== 'finished') {
      throw new Error(`${run.backend} ${run.model}: the run ended as "${result.state}", expected "finished"\n${recentLog(log)}`);
    }
    if (result.backend !== run.backend) {
      throw new Error(`${run.backend} ${run.model}: the page trained on "${result.backend}" (${result.backendLabel}), not on the requested backend\n${recentLog(log)}`);
    }

    // Timed span: from the first published step at or past the warm-up to
    // the finished state. It includes the evaluation after the last step
    // and the page's chart redraws, which a student waits for too.
    const start = result.progress.find((entry) => entry.step >= run.warmup);
    const end = result.progress.findLast((entry) => entry.state === 'finished');
    if (!start || !end || end.step - start.step < 1) {
      throw new Error(`${run.backend} ${run.model}: too few progress records to time the run: ${JSON.stringify(result.progress)}`);
    }
    const timedSteps = end.step - start.step;
    const perSecond = timedSteps / ((end.time - start.time) / 1000);
    // Training alone, as the native benchmark times it: up to the last
    // progress record before the final step, whose evaluation is then
    // left out. The page publishes progress about every 250 ms.
    const beforeEnd = result.progress.filter((entry) => entry.step > start.step && entry.step < end.step).at(-1);
    const trainingOnly = beforeEnd ? (beforeEnd.step - start.step) / ((beforeEnd.time - start.time) / 1000) : NaN;
    const flops = flopsPerStep(shape, vocab);
    const browserVersion = result.userAgent.match(/Chrome\/([\d.]+)/)?.[1] ?? 'unknown version';
    // The CPU label ends with where the shards ran: "in 2 workers" or "in the page".
    const where = run.backend === 'cpu' ? `WebAssembly (SIMD128) ${result.backendLabel.replace(/^CPU \(WebAssembly\)\s*/, '')}` : result.backendLabel;
    console.log(
      `${run.model.padEnd(8)} ${'Pre-LN'.padEnd(8)} ${perSecond.toFixed(3).padStart(9)} steps/s ${((flops * perSecond) / 1e9).toFixed(3).padStart(8)} GFLOP/s  ` +
        `(${(flops / 1e9).toFixed(3)} GFLOP per step, ${timedSteps} steps after ${start.step} warm-up, last evaluation included; ` +
        `without it ${beforeEnd ? `${trainingOnly.toFixed(3)} steps/s over ${beforeEnd.step - start.step} steps` : 'not measured'}; page showed ${result.rate}) ` +
        `on page ${where}, Chromium ${browserVersion}`,
    );
  } finally {
    await page.close();
  }
}

async function main() {
  const usage = 'usage: node scripts/bench-page.mjs [--no-webgpu] [--no-workers] [--model small|standard|large]';
  const args = process.argv.slice(2);
  let withWebgpu = true;
  let withoutWorkers = false;
  let onlyModel = null;
  for (let i = 0; i < args.length; i += 1) {
    if (args[i] === '--no-webgpu') {
      withWebgpu = false;
    } else if (args[i] === '--no-workers') {
      withoutWorkers = true;
    } else if (args[i] === '--model' && args[i + 1] in models) {
      onlyModel = args[i + 1];
      i += 1;
    } else {
      throw new Error(`invalid argument ${args[i]} ${args[i + 1] ?? ''}; ${usage}`);
    }
  }
  const selected = runs.filter((r) => onlyModel === null || r.model === onlyModel);

  reportWasmSize();
  const vocab = corpusVocabulary();
  const server = await startStaticServer();
  const browsers = [];
  try {
    const cpuBrowser = await launchChromium({ webgpu: false });
    browsers.push(cpuBrowser);
    const chartTimes = await measureFirstChart(cpuBrowser, server.url, chartRepeats);
    console.log(`chart    first sized canvas#metric-chart after ${chartTimes.map((ms) => `${Math.round(ms)} ms`).join(', ')} (navigation start, ${chartRepeats} loads)`);

    for (const run of selected.filter((r) => r.backend === 'cpu')) {
      await measureRun(cpuBrowser, server.url, run, vocab, withoutWorkers);
    }

    if (withWebgpu) {
      const gpuBrowser = await launchChromium({ webgpu: true });
      browsers.push(gpuBrowser);
      for (const run of selected.filter((r) => r.backend === 'webgpu')) {
        await measureRun(gpuBrowser, server.url, run, vocab, false);
      }
    }
  } finally {
    for (const browser of browsers) {
      await browser.close();
    }
    await server.close();
  }
}

main().catch((error) => {
  console.error(`bench-page: ${error.message}`);
  process.exitCode = 1;
});
