// The lab page against its contract, in headless Chromium: once on WebGPU
// (SwiftShader) and once on the CPU fallback. Each launch trains a tiny
// model with Pre-LN, then with Peri-LN after a reset, and checks every
// layer's statistics against its certified bound and that the validation
// loss falls. Screenshots go to test-artifacts/.
//
// The contract, in element ids and data attributes:
//   #backend[data-backend="webgpu"|"cpu"], text naming the adapter or "CPU (WebAssembly)"
//   #notice, a plain-language notice on the CPU path that mentions WebGPU
//   controls #placement #layers #width #heads #context #batch #dt #lr #warmup
//     #weight-decay #optimizer #steps #eval-every #seed #data; buttons #train
//     #pause #step #reset
//   #status[data-state="idle"|"loading"|"training"|"pausing"|"paused"|"finished"|"diverged"][data-step=N]
//   table#layer-table tr[data-layer] for l = 0..L (latest evaluation)
//   table#loss-table tr[data-step] per evaluation, data-train-loss, data-val-loss
//   canvas#metric-chart

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, recentLog, saveScreenshot, startStaticServer, watchPage } from './harness.mjs';
import {
  configureSmallRun, layerAttributes, openLab, openTab, parseNumber, readStatus, readTables, resetLab, runTimeoutMs, smallRun, trainToEnd, waitForBackend,
} from './lab.mjs';

const controlIds = [
  'placement', 'layers', 'width', 'heads', 'context', 'batch', 'dt', 'lr', 'warmup',
  'weight-decay', 'optimizer', 'steps', 'eval-every', 'seed', 'data',
];
const buttonIds = ['train', 'pause', 'step', 'reset'];
const placementValues = ['post', 'pre', 'peri', 'none'];
const dataValues = ['moby-dick', 'copy', 'reverse', 'sort', 'add', 'file'];
const runStates = ['idle', 'training', 'pausing', 'paused', 'finished', 'diverged'];

const firstChartTimeoutMs = 15_000;
// Relative slack for measured <= bound, for rounding. Some bounds are tight:
// at layer 0 the bound on the max token norm is the measured value itself.
const boundTolerance = 1e-5;

// Measured statistic and the bound it must stay under, as attribute names.
const boundedStatistics = [
  ['data-mean-abs', 'data-bound-mean-abs'],
  ['data-entry-var', 'data-bound-entry-var'],
  ['data-data-var', 'data-bound-entry-var'],
  ['data-max-token-norm', 'data-bound-max-token-norm'],
];
/** Returns the ids in `ids` that have no element on the page. */
async function missingIds(page, ids) {
  return page.evaluate((list) => list.filter((id) => !document.getElementById(id)), ids);
}

/** Returns the option values of the select with this id, or null if it is no select. */
async function selectOptions(page, id) {
  return page.evaluate((selectId) => {
    const element = document.getElementById(selectId);
    if (!(element instanceof HTMLSelectElement)) {
      return null;
    }
    return [...element.options].map((option) => option.value);
  }, id);
}

/** Asserts the layer table of a finished run: L + 1 rows, finite values, measured <= bound. */
function checkLayerRows(layerRows, label) {
  assert.notEqual(layerRows, null, `${label}: table#layer-table not found`);
  assert.equal(
    layerRows.length,
    smallRun.layers + 1,
    `${label}: table#layer-table has ${layerRows.length} tr[data-layer] rows, expected ${smallRun.layers + 1} (l = 0..${smallRun.layers})`,
  );

  const layers = layerRows.map((row) => row.layer);
  const expectedLayers = Array.from({ length: smallRun.layers + 1 }, (_, l) => String(l));
  assert.deepEqual(layers, expectedLayers, `${label}: data-layer values are ${JSON.stringify(layers)}, expected ${JSON.stringify(expectedLayers)}`);

  for (const row of layerRows) {
    for (const name of layerAttributes) {
      assert.notEqual(row[name], null, `${label}: layer ${row.layer} has no ${name} attribute`);
      const value = parseNumber(row[name]);
      assert.ok(Number.isFinite(value), `${label}: layer ${row.layer} ${name}="${row[name]}" is not a finite number`);
    }
    for (const [measuredName, boundName] of boundedStatistics) {
      const measured = parseNumber(row[measuredName]);
      const bound = parseNumber(row[boundName]);
      assert.ok(
        measured <= bound * (1 + boundTolerance),
        `${label}: layer ${row.layer} ${measuredName}=${row[measuredName]} exceeds ${boundName}=${row[boundName]}`,
      );
    }
  }
}

/** Asserts the loss table of a finished run: one row per evaluation, finite losses, falling validation loss. */
function checkLossRows(lossRows, label) {
  assert.notEqual(lossRows, null, `${label}: table#loss-table not found`);
  assert.ok(lossRows.length >= 2, `${label}: table#loss-table has ${lossRows.length} tr[data-step] rows, expected one per evaluation (at least 2)`);

  const steps = lossRows.map((row) => Number(row.step));
  for (let i = 0; i < steps.length; i += 1) {
    assert.ok(Number.isInteger(steps[i]), `${label}: loss row ${i} has data-step="${lossRows[i].step}", expected an integer`);
    if (i > 0) {
      assert.ok(steps[i] > steps[i - 1], `${label}: loss rows are not in increasing step order: ${JSON.stringify(steps)}`);
    }
  }
  assert.equal(steps.at(-1), smallRun.steps, `${label}: the last evaluation is at step ${steps.at(-1)}, expected ${smallRun.steps}`);

  for (const row of lossRows) {
    assert.ok(Number.isFinite(parseNumber(row.train)), `${label}: step ${row.step} data-train-loss="${row.train}" is not a finite number`);
    assert.ok(Number.isFinite(parseNumber(row.val)), `${label}: step ${row.step} data-val-loss="${row.val}" is not a finite number`);
  }

  const firstVal = parseNumber(lossRows[0].val);
  const lastVal = parseNumber(lossRows.at(-1).val);
  assert.ok(
    lastVal < firstVal,
    `${label}: validation loss did not fall: ${firstVal} at step ${lossRows[0].step}, ${lastVal} at step ${lossRows.at(-1).step}`,
  );
}

/** Trains the small run with one placement, checks the results and saves a screenshot. */
async function checkPlacementRun(t, browser, placement, screenshotName) {
  const { page, log } = browser;
  const label = `${screenshotName} (${placement})`;

  const before = await readStatus(page);
  assert.equal(before.state, 'idle', `${label}: #status data-state is "${before.state}" before training, expected "idle"`);

  await configureSmallRun(page, placement);
  const started = Date.now();
  const status = await trainToEnd(page, log);
  t.diagnostic(`${label}: ${status.state} after ${((Date.now() - started) / 1000).toFixed(1)} s`);

  // Save the picture before the assertions, so a failing run can be looked at.
  const screenshot = await saveScreenshot(page, screenshotName);
  t.diagnostic(`screenshot: ${screenshot}`);

  assert.equal(status.state, 'finished', `${label}: the run ended as "${status.state}" at step ${status.step}, expected "finished"\n${recentLog(log)}`);
  assert.equal(status.step, String(smallRun.steps), `${label}: #status data-step is "${status.step}" after the run, expected "${smallRun.steps}"`);

  const { layerRows, lossRows } = await readTables(page);
  checkLayerRows(layerRows, label);
  checkLossRows(lossRows, label);
}

/** Registers the controls test, shared by both launches. */
function describeControls(getBrowser) {
  test('controls match the contract', async () => {
    const { page } = getBrowser();

    const missing = await missingIds(page, [...controlIds, ...buttonIds, 'status', 'layer-table', 'loss-table']);
    assert.deepEqual(missing, [], `elements missing by id: ${missing.map((id) => `#${id}`).join(', ')}`);

    const placements = await selectOptions(page, 'placement');
    assert.notEqual(placements, null, '#placement is not a <select>');
    assert.deepEqual([...placements].sort(), [...placementValues].sort(), `#placement options are ${JSON.stringify(placements)}`);

    const data = await selectOptions(page, 'data');
    assert.notEqual(data, null, '#data is not a <select>');
    assert.deepEqual([...data].sort(), [...dataValues].sort(), `#data options are ${JSON.stringify(data)}`);

    for (const id of buttonIds) {
      const tag = await page.evaluate((buttonId) => document.getElementById(buttonId).tagName, id);
      assert.equal(tag, 'BUTTON', `#${id} is a <${tag.toLowerCase()}>, expected a <button>`);
    }

    const status = await readStatus(page);
    assert.ok(runStates.includes(status.state), `#status data-state is "${status.state}", expected one of ${runStates.join(', ')}`);
    assert.ok(/^\d+$/.test(status.step ?? ''), `#status data-step is "${status.step}", expected an integer`);
  });
}

describe('lab page on WebGPU', () => {
  let server;
  let browser;

  before(async () => {
    server = await startStaticServer();
    browser = await launchChromium({ webgpu: true });
    // SwiftShader is a software adapter, which the page passes over for the
    // CPU path unless the link requests WebGPU.
    await openLab(browser, `${server.url}?backend=webgpu`);
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('backend is webgpu', async (t) => {
    const { page } = browser;
    const backend = page.locator('#backend');
    const kind = await backend.getAttribute('data-backend');
    const text = (await backend.innerText()).trim();
    t.diagnostic(`#backend text: ${text}`);

    assert.equal(kind, 'webgpu', `#backend data-backend is "${kind}" with --enable-unsafe-webgpu, expected "webgpu"\n${recentLog(browser.log)}`);
    assert.notEqual(text, '', '#backend has no text; it should name the adapter');
    assert.ok(!text.includes('CPU (WebAssembly)'), `#backend says "${text}" on WebGPU`);
  });

  test('software adapter defaults to the cpu', async () => {
    const page = await browser.context.newPage();
    const log = [];
    watchPage(page, log);
    try {
      await page.goto(server.url);
      await waitForBackend(page, log);
      const kind = await page.locator('#backend').getAttribute('data-backend');
      assert.equal(kind, 'cpu', `#backend data-backend is "${kind}" on SwiftShader without backend=webgpu, expected "cpu"\n${recentLog(log)}`);
      const notice = await page.locator('#notice').innerText();
      assert.match(notice, /software adapter/, `#notice says "${notice}"`);
      assert.match(notice, /backend=webgpu/, `#notice says "${notice}"`);
    } finally {
      await page.close();
    }
  });

  describeControls(() => browser);

  test('pre-LN run stays within bounds', { timeout: runTimeoutMs + 60_000 }, async (t) => {
    await checkPlacementRun(t, browser, 'pre', 'webgpu-pre');
  });

  test('peri-LN run after reset stays within bounds', { timeout: runTimeoutMs + 60_000 }, async (t) => {
    await resetLab(browser.page, browser.log);
    await checkPlacementRun(t, browser, 'peri', 'webgpu-peri');
  });
});

describe('lab page on the CPU fallback', () => {
  let server;
  let browser;

  before(async () => {
    server = await startStaticServer();
    browser = await launchChromium({ webgpu: false });
    await openLab(browser, server.url);
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('backend is cpu with a notice', async (t) => {
    const { page } = browser;
    const backend = page.locator('#backend');
    const kind = await backend.getAttribute('data-backend');
    const text = (await backend.innerText()).trim();
    t.diagnostic(`#backend text: ${text}`);

    assert.equal(kind, 'cpu', `#backend data-backend is "${kind}" without WebGPU, expected "cpu"\n${recentLog(browser.log)}`);
    assert.ok(text.includes('CPU (WebAssembly)'), `#backend says "${text}", expected it to contain "CPU (WebAssembly)"`);

    const notice = page.locator('#notice');
    assert.equal(await notice.count(), 1, '#notice not found on the CPU path');
    assert.ok(await notice.isVisible(), '#notice is not visible on the CPU path');
    const noticeText = await notice.innerText();
    assert.ok(/WebGPU/i.test(noticeText), `#notice says "${noticeText}", expected it to mention WebGPU`);
  });

  test('page without navigator.gpu uses the cpu', async () => {
    // Chromium 156 defines navigator.gpu even when it has no adapter, as the
    // launch above shows. Browsers without WebGPU lack the property, so
    // remove it before the page's scripts run and open the lab again.
    // NOTE: init scripts do not run in workers, so a page that looks for
    // WebGPU inside a worker would still find it there.
    const page = await browser.context.newPage();
    const log = [];
    watchPage(page, log);
    await page.addInitScript(() => {
      delete Navigator.prototype.gpu;
    });
    try {
      await page.goto(server.url);
      assert.equal(await page.evaluate(() => 'gpu' in navigator), false, 'the init script did not remove navigator.gpu');
      await waitForBackend(page, log);
      const kind = await page.locator('#backend').getAttribute('data-backend');
      assert.equal(kind, 'cpu', `#backend data-backend is "${kind}" without navigator.gpu, expected "cpu"\n${recentLog(log)}`);
      assert.ok(await page.locator('#notice').isVisible(), '#notice is not visible without navigator.gpu');
    } finally {
      await page.close();
    }
  });

  test('workers train the CPU path to the same numbers as the page alone', { timeout: 2 * runTimeoutMs + 60_000 }, async (t) => {
    // Each step's batch is split into shards, computed by web workers and
    // combined in shard order, so a browser without workers (removed here
    // before the page's scripts run) must record exactly the same run.
    const trainOnce = async (initScript) => {
      const { page, log } = await openTab(browser, server.url, initScript);
      try {
        await configureSmallRun(page, 'pre');
        const status = await trainToEnd(page, log);
        assert.equal(status.state, 'finished', `the run ended as ${status.state}\n${recentLog(log)}`);
        const label = (await page.locator('#backend').innerText()).trim();
        const runs = await page.evaluate(() => JSON.parse(localStorage.getItem('lnlab.runs')).runs);
        return { label, run: runs.at(-1).run };
      } finally {
        await page.close();
      }
    };
    const withWorkers = await trainOnce();
    const alone = await trainOnce(() => {
      delete globalThis.Worker;
    });
    t.diagnostic(`#backend with workers: ${withWorkers.label}; without: ${alone.label}`);
    assert.match(withWorkers.label, /CPU \(WebAssembly\) in \d+ workers?$/, 'the page did not report training in workers');
    assert.match(alone.label, /CPU \(WebAssembly\) in the page$/, 'the page without workers did not report training in the page');
    assert.equal(withWorkers.run.step_losses.length, smallRun.steps);
    assert.deepEqual(alone.run.step_losses, withWorkers.run.step_losses, 'the step losses differ with and without workers');
    assert.deepEqual(alone.run.evals, withWorkers.run.evals, 'the evaluations differ with and without workers');
  });

  test('pause then train mid-step keeps one run', { timeout: runTimeoutMs + 60_000 }, async () => {
    // A CPU step waits for the workers, so the page handles clicks while a
    // step is in flight. Pause and Train clicked then must resume that run,
    // not start a second one beside it.
    const link = `${server.url}?layers=4&width=64&heads=4&context=64&batch=16&steps=12&eval-every=6&backend=cpu`;
    const { page, log } = await openTab(browser, link);
    try {
      const countRuns = () => page.evaluate(() => JSON.parse(localStorage.getItem('lnlab.runs') ?? '{"runs":[]}').runs.length);
      const before = await countRuns();
      await page.locator('#train').click();
      await page.waitForFunction(() => Number(document.getElementById('status')?.getAttribute('data-step')) >= 2, null, { timeout: runTimeoutMs });
      const resumed = await page.evaluate(async () => {
        document.getElementById('pause').click();
        // Microtasks only, so the training loop cannot move on meanwhile.
        for (let i = 0; i < 1000 && document.getElementById('train').disabled; i += 1) {
          await Promise.resolve();
        }
        const train = document.getElementById('train');
        const enabled = !train.disabled;
        train.click();
        return enabled;
      });
      assert.ok(resumed, 'Train stayed disabled after Pause');
      await page
        .waitForFunction(() => document.getElementById('status')?.getAttribute('data-state') === 'finished', null, { timeout: runTimeoutMs, polling: 250 })
        .catch(async () => assert.fail(`the resumed run did not finish: ${JSON.stringify(await readStatus(page))}\n${recentLog(log)}`));
      assert.equal((await readStatus(page)).step, '12', `the run stopped before its last step\n${recentLog(log)}`);
      assert.equal(await countRuns(), before + 1, `Pause then Train added more than one run\n${recentLog(log)}`);
    } finally {
      await page.close();
    }
  });

  test('train pressed during a step trains on', { timeout: runTimeoutMs + 60_000 }, async () => {
    // Step, then Pause and Train while that one step is in flight: the run
    // trains on to its last step instead of stopping after the one step.
    const link = `${server.url}?layers=4&width=64&heads=4&context=64&batch=16&steps=8&eval-every=4&backend=cpu`;
    const { page, log } = await openTab(browser, link);
    try {
      const clicked = await page.evaluate(async () => {
        const status = document.getElementById('status');
        document.getElementById('step').click();
        for (let i = 0; i < 2000 && status.getAttribute('data-state') !== 'training'; i += 1) {
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
        const during = status.getAttribute('data-state');
        document.getElementById('pause').click();
        for (let i = 0; i < 1000 && document.getElementById('train').disabled; i += 1) {
          await Promise.resolve();
        }
        document.getElementById('train').click();
        return during;
      });
      assert.equal(clicked, 'training', `the step was not in flight when Pause was clicked\n${recentLog(log)}`);
      await page
        .waitForFunction(() => document.getElementById('status')?.getAttribute('data-state') === 'finished', null, { timeout: runTimeoutMs, polling: 250 })
        .catch(async () => assert.fail(`the run did not train on to its end: ${JSON.stringify(await readStatus(page))}\n${recentLog(log)}`));
      assert.equal((await readStatus(page)).step, '8', `the run stopped before its last step\n${recentLog(log)}`);
    } finally {
      await page.close();
    }
  });

  test('missing worker script falls back to the page', { timeout: runTimeoutMs + 60_000 }, async () => {
    const page = await browser.context.newPage();
    const log = [];
    watchPage(page, log);
    await page.route('**/train-worker.js', (route) => route.fulfill({ status: 404, body: 'not found' }));
    try {
      await page.goto(server.url);
      await waitForBackend(page, log);
      await configureSmallRun(page, 'pre');
      const status = await trainToEnd(page, log);
      assert.equal(status.state, 'finished', `the run ended as ${status.state}\n${recentLog(log)}`);
      const label = (await page.locator('#backend').innerText()).trim();
      assert.match(label, /in the page$/, `#backend says "${label}" although the worker script is missing`);
      assert.equal(await page.locator('#crash').count(), 0, `the crash panel appeared\n${recentLog(log)}`);
    } finally {
      await page.close();
    }
  });

  describeControls(() => browser);

  test('pre-LN run stays within bounds', { timeout: runTimeoutMs + 60_000 }, async (t) => {
    await checkPlacementRun(t, browser, 'pre', 'cpu-pre');
  });

  test('peri-LN run after reset stays within bounds', { timeout: runTimeoutMs + 60_000 }, async (t) => {
    await resetLab(browser.page, browser.log);
    await checkPlacementRun(t, browser, 'peri', 'cpu-peri');
  });
});

describe('first chart', () => {
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

  test('chart appears soon after opening', async (t) => {
    const { page, log } = browser;
    const started = Date.now();
    await page.goto(server.url);
    await page
      .waitForFunction(
        () => {
          const canvas = document.querySelector('canvas#metric-chart');
          if (!canvas) {
            return false;
          }
          const box = canvas.getBoundingClientRect();
          return canvas.width > 0 && canvas.height > 0 && box.width > 0 && box.height > 0;
        },
        null,
        { timeout: firstChartTimeoutMs, polling: 100 },
      )
      .catch((error) => {
        assert.fail(`canvas#metric-chart with a non-zero size did not appear within ${firstChartTimeoutMs / 1000} s: ${error.message}\n${recentLog(log)}`);
      });
    t.diagnostic(`first chart after ${Date.now() - started} ms (navigation start to a sized canvas#metric-chart)`);
    await saveScreenshot(page, 'first-chart');
  });
});
