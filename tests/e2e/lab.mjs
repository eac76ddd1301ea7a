// Shared steps of the page tests: open the lab, enter settings, train, and
// read the status and result tables through the page's contract.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { recentLog, repoRoot, watchPage } from './harness.mjs';

// A model small enough for SwiftShader: 6 updates, evaluated at steps 0, 3 and 6.
// The data is Moby-Dick because 6 updates reliably lower its validation loss
// (the character frequencies are learnt first): with the command line
// (`lnlab train` with these settings, seeds 1 to 3, both placements) it fell
// by 0.23 to 0.35 nats. On the synthetic tasks (sort, copy), whose tokens are
// uniform, Peri-LN's validation loss rose over 6 and even 12 updates.
// Warm-up is one step so the learning rate is at full size from the start.
export const smallRun = {
  layers: 2,
  width: 16,
  heads: 2,
  context: 16,
  batch: 4,
  steps: 6,
  'eval-every': 3,
  warmup: 1,
  seed: 1,
};
export const smallRunData = 'moby-dick';

export const backendTimeoutMs = 60_000;
export const runTimeoutMs = 120_000;

export const layerAttributes = [
  'data-mean-abs', 'data-entry-var', 'data-data-var', 'data-max-token-norm',
  'data-bound-mean-abs', 'data-bound-entry-var', 'data-bound-max-token-norm', 'data-grad-rms',
];

/** Parses a contract number: decimal text, or "NaN" for a non-finite value. */
export function parseNumber(text) {
  if (text === null || text.trim() === '') {
    return Number.NaN;
  }
  return Number(text);
}

/**
 * Waits until #backend's data-backend is "webgpu" or "cpu". The page may show
 * another value (such as "detecting") while it requests an adapter.
 */
export async function waitForBackend(page, log) {
  await page
    .waitForFunction(
      () => ['webgpu', 'cpu'].includes(document.getElementById('backend')?.getAttribute('data-backend')),
      null,
      { timeout: backendTimeoutMs, polling: 100 },
    )
    .catch(async (error) => {
      const current = await page.evaluate(() => document.getElementById('backend')?.getAttribute('data-backend') ?? null);
      const lastSeen = current === null ? 'no #backend[data-backend]' : `data-backend="${current}"`;
      assert.fail(
        `#backend did not settle on data-backend="webgpu" or "cpu" within ${backendTimeoutMs / 1000} s (${lastSeen}): ${error.message}\n${recentLog(log)}`,
      );
    });
}

/** Opens the lab and waits for the page to choose a backend. */
export async function openLab(browser, url) {
  const { page, log } = browser;
  await page.goto(url);
  await waitForBackend(page, log);
}

/** Reads #status as { state, step }. */
export async function readStatus(page) {
  return page.evaluate(() => {
    const status = document.getElementById('status');
    return {
      state: status?.getAttribute('data-state') ?? null,
      step: status?.getAttribute('data-step') ?? null,
    };
  });
}

/** Sets one input the way a person would: type the value, then commit it. */
export async function setInput(page, id, value) {
  const input = page.locator(`#${id}`);
  await input.fill(String(value));
  await input.dispatchEvent('change');
}

/** Enters the small run's settings and the placement. */
export async function configureSmallRun(page, placement) {
  for (const [id, value] of Object.entries(smallRun)) {
    await setInput(page, id, value);
  }
  await page.locator('#data').selectOption(smallRunData);
  await page.locator('#placement').selectOption(placement);
}

/** Clicks #train, waits for the run to finish or diverge, and returns the final status. */
export async function trainToEnd(page, log) {
  await page.locator('#train').click();
  const handle = await page
    .waitForFunction(
      () => {
        const state = document.getElementById('status')?.getAttribute('data-state');
        return state === 'finished' || state === 'diverged' ? state : null;
      },
      null,
      { timeout: runTimeoutMs, polling: 250 },
    )
    .catch(async (error) => {
      const status = await readStatus(page);
      assert.fail(
        `the run did not finish within ${runTimeoutMs / 1000} s (last #status data-state=${status.state}, data-step=${status.step}): ${error.message}\n${recentLog(log)}`,
      );
    });
  await handle.dispose();
  return readStatus(page);
}

/** Reads both result tables, attributes as text. */
export async function readTables(page) {
  return page.evaluate((attributes) => {
    const layerTable = document.querySelector('table#layer-table');
    const lossTable = document.querySelector('table#loss-table');
    const layerRows = layerTable
      ? [...layerTable.querySelectorAll('tr[data-layer]')].map((row) => {
          const values = { layer: row.getAttribute('data-layer') };
          for (const name of attributes) {
            values[name] = row.getAttribute(name);
          }
          return values;
        })
      : null;
    const lossRows = lossTable
      ? [...lossTable.querySelectorAll('tr[data-step]')].map((row) => ({
          step: row.getAttribute('data-step'),
          train: row.getAttribute('data-train-loss'),
          val: row.getAttribute('data-val-loss'),
        }))
      : null;
    return { layerRows, lossRows };
  }, layerAttributes);
}

/** Clicks #reset and waits for the idle state at step 0. */
export async function resetLab(page, log) {
  await page.locator('#reset').click();
  await page
    .waitForFunction(
      () => {
        const status = document.getElementById('status');
        return status?.getAttribute('data-state') === 'idle' && status?.getAttribute('data-step') === '0';
      },
      null,
      { timeout: 10_000 },
    )
    .catch(async () => {
      const status = await readStatus(page);
      assert.fail(`#reset did not return #status to data-state="idle" data-step="0" within 10 s (it is "${status.state}", step ${status.step})\n${recentLog(log)}`);
    });
}

/** Builds the command line (a no-op when `cargo test` built it) and returns its path. */
export function lnlabBinary() {
  const build = spawnSync('cargo', ['build', '--quiet', '--profile', 'test', '--bin', 'lnlab'], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(build.status, 0, `cargo build --profile test --bin lnlab failed:\n${build.stderr}`);
  return join(repoRoot, 'target', 'debug', 'lnlab');
}

/** Runs the command line and asserts that it succeeded. */
export function runLnlab(args) {
  const result = spawnSync(lnlabBinary(), args, { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, LNLAB_DATA_DIR: join(repoRoot, 'data') } });
  assert.equal(result.status, 0, `lnlab ${args.join(' ')} failed (exit ${result.status}):\n${result.stderr}`);
  return result;
}

/**
 * Opens `url` in a new tab of the launch, after running `initScript` (if
 * given) before the page's own scripts, and waits for the backend.
 */
export async function openTab(browser, url, initScript) {
  const page = await browser.context.newPage();
  const log = [];
  watchPage(page, log);
  if (initScript) {
    await page.addInitScript(initScript);
  }
  await page.goto(url);
  await waitForBackend(page, log);
  return { page, log };
}
