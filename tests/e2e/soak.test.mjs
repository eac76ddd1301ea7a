// Bounded resources, in headless Chromium: a run of thousands of steps
// keeps its evaluations and memory bounded, 50 runs created and deleted
// leave nothing behind, and resetting WebGPU runs closes their devices.
// The figures are read from the page's #diagnostics element.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, recentLog, startStaticServer } from './harness.mjs';
import { openTab, readStatus, runTimeoutMs, trainToEnd } from './lab.mjs';

// Evaluations a run keeps in memory (MAX_EVALS_KEPT in src/web/mod.rs).
const maxEvalsKept = 400;
const tinyModel = 'layers=1&width=8&heads=1&context=8&batch=2&warmup=1';

/** Reads #diagnostics as numbers. */
async function readDiagnostics(page) {
  return page.evaluate(() => {
    const element = document.getElementById('diagnostics');
    const number = (name) => Number(element?.getAttribute(name));
    return { wasmBytes: number('data-wasm-bytes'), gpuDevices: number('data-gpu-devices'), runs: number('data-runs'), evals: number('data-evals') };
  });
}

/** Waits until the run has taken at least `step` steps. */
async function waitForStep(page, log, step) {
  await page.waitForFunction((target) => Number(document.getElementById('status')?.getAttribute('data-step')) >= target, step, { timeout: 5 * runTimeoutMs, polling: 250 }).catch(async () => {
    const status = await readStatus(page);
    assert.fail(`the run did not reach step ${step} (it is ${status.state} at step ${status.step})\n${recentLog(log)}`);
  });
}

describe('soak on the CPU path', () => {
  let server;
  let browser;

  before(async () => {
    server = await startStaticServer();
    browser = await launchChromium({ webgpu: false });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('long run keeps memory and evaluations bounded', { timeout: 10 * runTimeoutMs }, async (t) => {
    const { page, log } = await openTab(browser, `${server.url}?${tinyModel}&steps=4000&eval-every=2&backend=cpu`);
    try {
      await page.locator('#train').click();
      const samples = [];
      for (const step of [1000, 2000, 3000]) {
        await waitForStep(page, log, step);
        samples.push({ step, ...(await readDiagnostics(page)) });
      }
      const status = await trainToEnd(page, log).catch(() => readStatus(page));
      samples.push({ step: Number(status.step), ...(await readDiagnostics(page)) });
      for (const sample of samples) {
        t.diagnostic(`step ${sample.step}: ${(sample.wasmBytes / 1e6).toFixed(1)} MB of WebAssembly memory, ${sample.evals} evaluations kept`);
      }
      assert.equal(status.state, 'finished', `the long run ended as ${status.state}`);
      for (const sample of samples) {
        assert.ok(sample.evals <= maxEvalsKept, `at step ${sample.step} the page keeps ${sample.evals} evaluations, more than ${maxEvalsKept}`);
      }
      // WebAssembly memory only grows; after the first thousand steps it must level off.
      const growth = samples.at(-1).wasmBytes - samples[0].wasmBytes;
      assert.ok(growth <= 4 * 2 ** 20, `WebAssembly memory grew by ${(growth / 1e6).toFixed(1)} MB from step 1000 to the end`);
    } finally {
      await page.evaluate(() => localStorage.clear());
      await page.close();
    }
  });

  test('fifty runs created and deleted leave nothing', { timeout: 10 * runTimeoutMs }, async (t) => {
    const { page, log } = await openTab(browser, `${server.url}?${tinyModel}&steps=4&eval-every=2&backend=cpu`);
    try {
      const createAndDelete = async (count) => {
        for (let index = 0; index < count; index += 1) {
          await page.locator('#reset').click();
          const status = await trainToEnd(page, log);
          assert.equal(status.state, 'finished', `run ${index + 1} ended as ${status.state}`);
        }
        assert.equal((await readDiagnostics(page)).runs, count, `the run list does not hold the ${count} runs`);
        for (let index = 0; index < count; index += 1) {
          await page.locator('#run-list button[data-delete]').first().click();
        }
        return readDiagnostics(page);
      };
      const first = await createAndDelete(25);
      const second = await createAndDelete(25);
      t.diagnostic(`after 25 runs: ${(first.wasmBytes / 1e6).toFixed(1)} MB; after 50: ${(second.wasmBytes / 1e6).toFixed(1)} MB`);
      assert.equal(second.runs, 0, 'deleted runs remain in the list');
      assert.equal(second.evals, 0, 'deleted runs left evaluations in memory');
      const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('lnlab.runs')).runs.length);
      assert.equal(stored, 0, 'deleted runs remain in local storage');
      assert.ok(second.wasmBytes - first.wasmBytes <= 2 * 2 ** 20, `WebAssembly memory grew by ${((second.wasmBytes - first.wasmBytes) / 1e6).toFixed(1)} MB over the second 25 runs`);
    } finally {
      await page.evaluate(() => localStorage.clear());
      await page.close();
    }
  });
});

describe('soak on WebGPU', () => {
  let server;
  let browser;

  before(async () => {
    server = await startStaticServer();
    browser = await launchChromium({ webgpu: true });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('reset runs close their devices', { timeout: 10 * runTimeoutMs }, async () => {
    const { page, log } = await openTab(browser, `${server.url}?${tinyModel}&steps=3&eval-every=3&backend=webgpu`);
    try {
      assert.equal(await page.locator('#backend').getAttribute('data-backend'), 'webgpu', `the page is not on WebGPU\n${recentLog(log)}`);
      for (let index = 0; index < 5; index += 1) {
        const status = await trainToEnd(page, log);
        assert.equal(status.state, 'finished', `run ${index + 1} ended as ${status.state}`);
        const open = (await readDiagnostics(page)).gpuDevices;
        assert.equal(open, 1, `with one run parked the page holds ${open} GPU devices`);
        await page.locator('#reset').click();
        const afterReset = (await readDiagnostics(page)).gpuDevices;
        assert.equal(afterReset, 0, `after Reset the page holds ${afterReset} GPU devices`);
      }
    } finally {
      await page.evaluate(() => localStorage.clear());
      await page.close();
    }
  });
});
