// Trains every preset in the built page (dist/) in headless Chromium on
// the CPU path, saves a screenshot of its charts as
// docs/images/preset-<id>.png, and prints the numbers behind each one as
// Markdown for docs/presets.md. Run by hand after scripts/build-web.sh:
//
//   node scripts/preset-shots.mjs [preset-id ...]
//
// Each preset trains in full, so this takes minutes.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium, repoRoot, startStaticServer } from '../tests/e2e/harness.mjs';

const presetTimeoutMs = 15 * 60_000;
const imagesDir = join(repoRoot, 'docs', 'images');

/** Returns the ids offered by the page's preset picker. */
async function presetIds(page) {
  return page.evaluate(() => [...document.querySelectorAll('#preset option')].map((o) => o.value).filter((v) => v));
}

/** Formats a number for a table. */
function show(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return 'NaN';
  }
  return Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3) ? value.toExponential(3) : value.toFixed(4);
}

/** Prints the last measurement of each shown run for the chosen metric. */
function describeRuns(id, metric, seconds, saved) {
  const runs = saved.runs.filter((r) => r.shown);
  const lines = [`### ${id}`, '', `Trained in ${seconds.toFixed(0)} s on the page's CPU path (headless Chromium).`, ''];
  lines.push(`| run | layers | Δt | final validation loss | ${metric} at layer 1 | at the last layer | bound at the last layer | gradient rms at layer 1 / last |`);
  lines.push('|---|---|---|---|---|---|---|---|');
  for (const entry of runs) {
    const run = entry.run;
    const last = run.evals.at(-1);
    if (!last) {
      continue;
    }
    const first = last.layers[1] ?? last.layers[0];
    const top = last.layers.at(-1);
    const boundKey = { max_token_norm: 'bound_max_token_norm', mean_abs: 'bound_mean_abs', rms: 'bound_mean_abs', entry_var: 'bound_entry_var', data_var: 'bound_entry_var' }[metric];
    lines.push(
      `| ${entry.label ?? run.model.placement} | ${run.model.layers} | ${run.model.dt} | ${show(last.val_loss)} | ${show(first[metric])} | ${show(top[metric])} | ${show(top[boundKey])} | ${show(first.grad_rms)} / ${show(last.layers.at(-2)?.grad_rms)} |`,
    );
  }
  return lines.join('\n');
}

const server = await startStaticServer();
const browser = await launchChromium({ webgpu: false });
try {
  mkdirSync(imagesDir, { recursive: true });
  const { page } = browser;
  await page.setViewportSize({ width: 1280, height: 1000 });
  await page.goto(server.url);
  const requested = process.argv.slice(2);
  const ids = requested.length > 0 ? requested : await presetIds(page);
  for (const id of ids) {
    await page.evaluate(() => localStorage.clear());
    await page.goto(`${server.url}?preset=${id}&backend=cpu&run=1`);
    const started = Date.now();
    await page.waitForFunction(
      () => {
        const status = document.getElementById('status');
        const state = status?.getAttribute('data-state');
        return (state === 'finished' || state === 'diverged') && status?.getAttribute('data-queued') === '0';
      },
      null,
      { timeout: presetTimeoutMs, polling: 500 },
    );
    const seconds = (Date.now() - started) / 1000;
    // Let the last redraw land.
    await page.waitForTimeout(500);
    const metric = await page.locator('#metric').inputValue();
    const top = await page.locator('#metric-chart').boundingBox();
    const bottom = await page.locator('#gradient-chart').boundingBox();
    const path = join(imagesDir, `preset-${id}.png`);
    await page.screenshot({ path, fullPage: true, clip: { x: top.x - 8, y: top.y - 8, width: top.width + 16, height: bottom.y + bottom.height - top.y + 16 } });
    const saved = await page.evaluate(() => JSON.parse(localStorage.getItem('lnlab.runs')));
    console.log(`${describeRuns(id, metric, seconds, saved)}\n\n![${id}](images/preset-${id}.png)\n`);
  }
} finally {
  await browser.close();
  await server.close();
}
