// Checks of the browser set-up itself, independent of the page's features:
// WebGPU is really on in one launch and really off in the other, the built
// page loads, starts and serves its corpus, and its wasm stays within the
// size budget in wasm-budget.json.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { distDir, launchChromium, recentLog, repoRoot, startStaticServer } from './harness.mjs';

// Runs in the page: whether navigator.gpu exists and what requestAdapter() returns.
async function probeWebgpu() {
  if (!('gpu' in navigator) || !navigator.gpu) {
    return { gpu: false, adapter: null };
  }
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) {
    return { gpu: true, adapter: null };
  }
  const info = adapter.info ?? {};
  return {
    gpu: true,
    adapter: {
      vendor: info.vendor ?? '',
      architecture: info.architecture ?? '',
      device: info.device ?? '',
      description: info.description ?? '',
      isFallbackAdapter: adapter.isFallbackAdapter ?? info.isFallbackAdapter ?? null,
    },
  };
}

describe('webgpu availability in headless Chromium', () => {
  let server;

  before(async () => {
    server = await startStaticServer();
  });

  after(async () => {
    await server?.close();
  });

  test('launch with --enable-unsafe-webgpu has an adapter', async (t) => {
    const browser = await launchChromium({ webgpu: true });
    t.after(() => browser.close());

    await browser.page.goto(server.url);
    const result = await browser.page.evaluate(probeWebgpu);

    assert.equal(result.gpu, true, 'navigator.gpu is missing although Chromium was started with --enable-unsafe-webgpu');
    assert.notEqual(result.adapter, null, 'navigator.gpu.requestAdapter() returned null although Chromium was started with --enable-unsafe-webgpu');
    t.diagnostic(`adapter info: ${JSON.stringify(result.adapter)}`);
  });

  test('launch without the flag has no adapter', async (t) => {
    const browser = await launchChromium({ webgpu: false });
    t.after(() => browser.close());

    await browser.page.goto(server.url);
    const result = await browser.page.evaluate(probeWebgpu);

    assert.equal(
      result.adapter,
      null,
      `requestAdapter() returned an adapter (${JSON.stringify(result.adapter)}) without --enable-unsafe-webgpu, so the CPU launch would not test the CPU path`,
    );
    t.diagnostic(`navigator.gpu ${result.gpu ? 'is defined, requestAdapter() returned null' : 'is undefined'}`);
  });
});

describe('built page in headless Chromium', () => {
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

  test('page starts without errors', async () => {
    const { page, log } = browser;
    // Trunk's loader dispatches TrunkApplicationStarted after the wasm's main has run.
    await page.addInitScript(() => {
      window.lnlabStarted = false;
      addEventListener('TrunkApplicationStarted', () => {
        window.lnlabStarted = true;
      });
    });
    await page.goto(server.url);

    await page.waitForFunction(() => window.lnlabStarted, null, { timeout: 30_000 }).catch((error) => {
      assert.fail(`the wasm did not start within 30 s (no TrunkApplicationStarted event): ${error.message}\n${recentLog(log)}`);
    });
    assert.equal(await page.locator('#boot').count(), 0, 'the loading line #boot is still shown after the wasm started');

    const errors = log.filter((line) => line.startsWith('page error:'));
    assert.deepEqual(errors, [], `uncaught errors while starting:\n${recentLog(log)}`);
    assert.equal(await page.locator('#status').count(), 1, `#status not found on the started page\n${recentLog(log)}`);
  });

  test('corpus is served from the page origin', async () => {
    const { page } = browser;
    await page.goto(server.url);

    const corpus = await page.evaluate(async () => {
      const response = await fetch('moby-dick.txt');
      const text = await response.text();
      return { status: response.status, length: text.length, opening: text.includes('Call me Ishmael') };
    });

    assert.equal(corpus.status, 200, 'moby-dick.txt is missing from dist/; index.html copies it from data/ (scripts/fetch-corpus.sh)');
    assert.ok(corpus.length > 1_000_000, `moby-dick.txt has ${corpus.length} characters, expected the whole novel (over 1,000,000)`);
    assert.ok(corpus.opening, 'moby-dick.txt does not contain "Call me Ishmael"');
  });
});

describe('wasm size budget', () => {
  const budgetPath = join(repoRoot, 'wasm-budget.json');

  test('wasm within raw and gzip budget', (t) => {
    const budget = JSON.parse(readFileSync(budgetPath, 'utf8'));
    for (const key of ['rawBytes', 'gzipBytes']) {
      assert.ok(Number.isInteger(budget[key]), `${budgetPath}: ${key} is ${budget[key]}, expected a whole number`);
      assert.ok(budget[key] > 0, `${budgetPath}: ${key} is ${budget[key]}, expected a positive number`);
    }

    const files = readdirSync(distDir).filter((name) => name.endsWith('.wasm'));
    assert.equal(files.length, 1, `expected one .wasm file in ${distDir}, found ${files.length}: ${files.join(', ') || 'none'}`);
    const wasm = readFileSync(join(distDir, files[0]));
    const gzipBytes = gzipSync(wasm, { level: 9 }).length;
    const sizes = `dist/${files[0]} is ${wasm.length} bytes after wasm-opt and ${gzipBytes} bytes after gzip level 9`;
    const limits = `the budget in ${budgetPath} is ${budget.rawBytes} and ${budget.gzipBytes} bytes`;
    t.diagnostic(`${sizes}; ${limits}`);

    // The budget is for release builds: a debug build (scripts/build-web.sh
    // --debug) skips wasm-opt and may exceed it.
    assert.ok(wasm.length <= budget.rawBytes, `${sizes}: over the raw budget by ${wasm.length - budget.rawBytes} bytes; ${limits}. Shrink the wasm or, if the growth is worth it, raise the budget`);
    assert.ok(gzipBytes <= budget.gzipBytes, `${sizes}: over the gzip budget by ${gzipBytes - budget.gzipBytes} bytes; ${limits}. Shrink the wasm or, if the growth is worth it, raise the budget`);
  });
});
