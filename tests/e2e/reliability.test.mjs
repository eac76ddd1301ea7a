// Failures the page turns into a lesson, in headless Chromium. Invalid
// settings are named by their label. A diverging run names its step and
// rewinds. A finished run trains on when Steps is raised, and a hidden tab
// pauses training. A lost WebGPU device moves the run to the CPU, where its
// numbers continue.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifactsDir, launchChromium, recentLog, saveScreenshot, startStaticServer } from './harness.mjs';
import { openTab, readStatus, readTables, runLnlab, runTimeoutMs, setInput, trainToEnd } from './lab.mjs';

/** Waits until #status reaches one of `states`. */
async function waitForState(page, log, states, timeout = runTimeoutMs) {
  await page
    .waitForFunction((wanted) => wanted.includes(document.getElementById('status')?.getAttribute('data-state')), states, { timeout, polling: 100 })
    .catch(async () => {
      const status = await readStatus(page);
      assert.fail(`#status did not reach ${states.join(' or ')} (it is ${status.state} at step ${status.step})\n${recentLog(log)}`);
    });
  return readStatus(page);
}

/** Sets document.hidden and fires visibilitychange, as switching tabs does. */
async function setHidden(page, hidden) {
  await page.evaluate((value) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => value });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

/** Writes a copy of a safetensors file with one float of `tensor` set to NaN. */
function poisonTensor(source, target, tensor) {
  const bytes = readFileSync(source);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  const name = Object.keys(header).find((key) => key === tensor || key === `transformer.${tensor}`);
  assert.ok(name, `${source} has no tensor ${tensor}`);
  const copy = Buffer.from(bytes);
  copy.writeFloatLE(Number.NaN, 8 + headerLength + header[name].data_offsets[0]);
  writeFileSync(target, copy);
}

const tinyRun = 'layers=2&width=16&heads=2&context=16&batch=4&warmup=1';

describe('reliability on the CPU path', () => {
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

  test('invalid settings name their label and range', async () => {
    const { page } = await openTab(browser, `${server.url}?backend=cpu`);
    try {
      await setInput(page, 'steps', '-3');
      assert.equal(await page.locator('#steps').getAttribute('aria-invalid'), 'true', '#steps is not marked invalid');
      const stepsError = await page.locator('#steps-error').innerText();
      assert.match(stepsError, /^Steps: "-3"/, `#steps-error says "${stepsError}"`);
      assert.match(stepsError, /in \[1, /, `#steps-error does not give the range: "${stepsError}"`);

      // Two invalid settings are both marked, each with its own message.
      await setInput(page, 'lr', '20');
      assert.equal(await page.locator('#lr').getAttribute('aria-invalid'), 'true', '#lr is not marked invalid');
      assert.equal(await page.locator('#steps').getAttribute('aria-invalid'), 'true', '#steps lost its mark when #lr became invalid too');

      await setInput(page, 'steps', '300');
      assert.equal(await page.locator('#steps').getAttribute('aria-invalid'), 'false', '#steps stays invalid after a valid value');
      const rateError = await page.locator('#lr-error').innerText();
      assert.match(rateError, /^Learning rate: 20/, `#lr-error says "${rateError}"`);

      await page.locator('#train').click();
      const error = await page.locator('#error').innerText();
      assert.match(error, /Learning rate/, `Train with an invalid rate shows "${error}"`);
      assert.equal((await readStatus(page)).state, 'idle', 'an invalid setting started a run');
    } finally {
      await page.close();
    }
  });

  test('diverging preset names step and layer, and rewinds', { timeout: 4 * runTimeoutMs }, async () => {
    // The too-fast preset trains Pre-LN and Peri-LN at learning rate 1, then
    // the model without LayerNorm, which diverges.
    const { page, log } = await openTab(browser, `${server.url}?preset=too-fast&backend=cpu&run=1`);
    try {
      await page.waitForFunction(() => document.getElementById('status')?.getAttribute('data-queued') === '0', null, { timeout: 2 * runTimeoutMs });
      const diverged = await waitForState(page, log, ['diverged', 'finished']);
      assert.equal(diverged.state, 'diverged', `the run at learning rate 1 ended as ${diverged.state}`);
      await saveScreenshot(page, 'diverged');
      const error = await page.locator('#error').innerText();
      assert.match(error, /diverged: .* after \d+ updates?, at layer \d+/, `#error does not name the step and layer: "${error}"`);
      const caption = await page.locator('#metric-chart + figcaption').innerText();
      assert.match(caption, /diverged/, `the chart caption does not mark the divergence: "${caption}"`);

      // Rewind, lowering the rate tenfold each time, until the run finishes.
      let latest = diverged;
      for (let attempt = 0; attempt < 3; attempt += 1) {
        await page.locator('#rewind').click();
        const rewound = await readStatus(page);
        assert.equal(rewound.state, 'paused', `after Rewind the run is ${rewound.state}`);
        assert.ok(Number(rewound.step) <= Number(latest.step), `Rewind went to step ${rewound.step}, past the divergence at ${latest.step}`);
        await page.locator('#train').click();
        latest = await waitForState(page, log, ['diverged', 'finished']);
        if (latest.state === 'finished') {
          break;
        }
      }
      const final = await readStatus(page);
      assert.equal(final.state, 'finished', `the rewound run ended as ${final.state}`);
      assert.equal(final.step, '60');
      assert.ok(Number(await page.locator('#lr').inputValue()) <= 0.1, 'Rewind did not lower the learning rate');
      const { lossRows } = await readTables(page);
      const steps = lossRows.map((row) => Number(row.step));
      assert.deepEqual(steps, [...new Set(steps)].sort((a, b) => a - b), `the loss table repeats or reorders steps: ${steps}`);
      assert.ok(lossRows.every((row) => Number.isFinite(Number(row.val))), 'a loss in the rewound run is not finite');
    } finally {
      await page.close();
    }
  });

  test('bad checkpoints are rejected, a NaN weight is named', { timeout: 3 * runTimeoutMs }, async () => {
    mkdirSync(artifactsDir, { recursive: true });
    const model = join(artifactsDir, 'small-model.safetensors');
    runLnlab([
      'train', '--layers', '2', '--width', '16', '--heads', '2', '--context', '16', '--batch', '4', '--steps', '2',
      '--eval-every', '2', '--data', 'moby-dick', '--out', join(artifactsDir, 'small-model.json'), '--save', model,
    ]);
    const truncated = join(artifactsDir, 'truncated.safetensors');
    const bytes = readFileSync(model);
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const poisoned = join(artifactsDir, 'nan-block1.safetensors');
    poisonTensor(model, poisoned, 'h.1.attn.c_proj.weight');

    const { page, log } = await openTab(browser, `${server.url}?backend=cpu&steps=4&eval-every=2&warmup=1`);
    try {
      await page.locator('#import-model').setInputFiles(truncated);
      await page.locator('#error').waitFor({ timeout: 10_000 });
      const error = await page.locator('#error').innerText();
      assert.match(error, /truncated\.safetensors could not be loaded/, `#error says "${error}"`);
      assert.equal(await page.locator('#layers').inputValue(), '8', 'a rejected checkpoint changed the settings');

      await page.locator('#import-model').setInputFiles(poisoned);
      await page.waitForFunction(() => document.getElementById('notice')?.textContent.includes('nan-block1.safetensors'), null, { timeout: 10_000 });
      assert.equal(await page.locator('#layers').inputValue(), '2', 'the checkpoint did not set the depth');
      await page.locator('#train').click();
      const status = await waitForState(page, log, ['diverged', 'finished']);
      assert.equal(status.state, 'diverged', `a NaN weight trained to ${status.state}`);
      assert.equal(status.step, '0', 'the NaN weight was not caught at step 0');
      const message = await page.locator('#error').innerText();
      assert.match(message, /at layer 2/, `the NaN in block 1 is not placed at layer 2: "${message}"`);
    } finally {
      await page.evaluate(() => localStorage.clear());
      await page.close();
    }
  });

  test('raising Steps extends a finished run', { timeout: 2 * runTimeoutMs }, async () => {
    const { page, log } = await openTab(browser, `${server.url}?${tinyRun}&steps=6&eval-every=3&backend=cpu`);
    try {
      const before = await page.locator('#run-list tr[data-run-id]').count();
      const first = await trainToEnd(page, log);
      assert.equal(first.state, 'finished');
      assert.ok(await page.locator('#train').isDisabled(), 'Train is enabled on a finished run');
      await setInput(page, 'steps', '9');
      assert.ok(await page.locator('#train').isEnabled(), 'Train stays disabled after raising Steps');
      const second = await trainToEnd(page, log);
      assert.equal(second.step, '9', `the extended run stopped at step ${second.step}`);
      const rows = await page.locator('#run-list tr[data-run-id]').count();
      assert.equal(rows, before + 1, 'extending the run started a new one');
    } finally {
      await page.evaluate(() => localStorage.clear());
      await page.close();
    }
  });

  test('hidden tab pauses training', { timeout: 2 * runTimeoutMs }, async () => {
    const { page, log } = await openTab(browser, `${server.url}?${tinyRun}&steps=100000&eval-every=50&backend=cpu`);
    try {
      await page.locator('#train').click();
      await waitForState(page, log, ['training']);
      // Every state and step #status shows from here on. A CPU step awaits
      // the workers, so the page hides in the middle of a step: it may show
      // "pausing" while that step ends, but never "paused" before the last
      // step it takes.
      await page.evaluate(() => {
        const status = document.getElementById('status');
        window.shownStatus = [];
        const record = () => window.shownStatus.push([status.getAttribute('data-state'), status.getAttribute('data-step')]);
        new MutationObserver(record).observe(status, { attributes: true, attributeFilter: ['data-state', 'data-step'] });
      });
      await setHidden(page, true);
      const hidden = await waitForState(page, log, ['paused'], 10_000);
      await page.waitForTimeout(500);
      assert.equal((await readStatus(page)).step, hidden.step, 'training went on in a hidden tab');
      const history = await page.evaluate(() => window.shownStatus);
      const premature = history.find(([state, step]) => state === 'paused' && step !== hidden.step);
      assert.equal(premature, undefined, `#status showed paused at step ${premature?.[1]}, before the last step ${hidden.step}: ${JSON.stringify(history)}`);

      await setHidden(page, false);
      await waitForState(page, log, ['training'], 10_000);

      await page.locator('#train-hidden').check();
      await setHidden(page, true);
      await page.waitForTimeout(500);
      assert.equal((await readStatus(page)).state, 'training', 'training paused although the user chose to keep it going');
      await page.locator('#pause').click();
    } finally {
      await page.evaluate(() => localStorage.clear());
      await page.close();
    }
  });
});

describe('lost WebGPU device', () => {
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

  test('run moves to the cpu and its numbers continue', { timeout: 3 * runTimeoutMs }, async () => {
    // Keep every device the page opens, so the test can destroy them as a
    // driver reset would.
    const keepDevices = () => {
      window.lnlabTestDevices = [];
      const request = GPUAdapter.prototype.requestDevice;
      GPUAdapter.prototype.requestDevice = async function requestDevice(...args) {
        const device = await request.apply(this, args);
        window.lnlabTestDevices.push(device);
        return device;
      };
    };
    const { page, log } = await openTab(browser, `${server.url}?${tinyRun}&steps=12&eval-every=3&backend=webgpu`, keepDevices);
    try {
      assert.equal(await page.locator('#backend').getAttribute('data-backend'), 'webgpu', `the run did not start on WebGPU\n${recentLog(log)}`);
      await page.locator('#train').click();
      await page.waitForFunction(() => Number(document.getElementById('status')?.getAttribute('data-step')) >= 3, null, { timeout: runTimeoutMs });
      await page.evaluate(() => window.lnlabTestDevices.forEach((device) => device.destroy()));

      const status = await waitForState(page, log, ['finished', 'diverged', 'idle']);
      await saveScreenshot(page, 'lost-device');
      assert.equal(status.state, 'finished', `after the device loss the run ended as ${status.state}\n${recentLog(log)}`);
      assert.equal(status.step, '12');
      assert.equal(await page.locator('#backend').getAttribute('data-backend'), 'cpu', 'the page still names WebGPU');
      const notice = await page.locator('#notice').innerText();
      assert.match(notice, /continues on the CPU/, `#notice says "${notice}"`);

      const { lossRows } = await readTables(page);
      assert.deepEqual(lossRows.map((row) => row.step), ['0', '3', '6', '9', '12'], 'the evaluations do not continue step by step');
      assert.ok(lossRows.every((row) => Number.isFinite(Number(row.val))), 'a loss after the move is not finite');
    } finally {
      await page.close();
    }
  });
});
