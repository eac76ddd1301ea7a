// Links, presets, the run list and exports, in headless Chromium on the
// CPU path. A bad link gives a notice and a preset link locks controls. A
// copied link reproduces the same numbers. A page export draws with
// `lnlab plot`, and a run file from `lnlab train` imports. The runs survive
// a reload, and full storage is reported without losing the saved list.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { artifactsDir, launchChromium, recentLog, saveScreenshot, startStaticServer } from './harness.mjs';
import { configureSmallRun, openLab, openTab, readTables, runLnlab, runTimeoutMs, smallRun, smallRunData, trainToEnd, waitForBackend } from './lab.mjs';

/** Reads the run list as [{ id, shown, steps }]. */
async function readRunList(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('#run-list tr[data-run-id]')].map((row) => ({
      id: row.getAttribute('data-run-id'),
      shown: row.getAttribute('data-shown'),
      steps: row.getAttribute('data-steps'),
    })),
  );
}

describe('links, presets and the run list', () => {
  let server;
  let browser;

  before(async () => {
    mkdirSync(artifactsDir, { recursive: true });
    server = await startStaticServer();
    browser = await launchChromium({ webgpu: false });
    await openLab(browser, server.url);
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('bad link parameters give a notice', async () => {
    const { page, log } = await openTab(browser, `${server.url}?layers=abc&bogus=1&placement=peri`);
    try {
      const notice = await page.locator('#notice').innerText();
      assert.match(notice, /layers/, `#notice does not name the bad parameter "layers": "${notice}"\n${recentLog(log)}`);
      assert.match(notice, /bogus/, `#notice does not name the unknown parameter "bogus": "${notice}"`);
      assert.equal(await page.locator('#layers').inputValue(), '8', '#layers did not fall back to its default');
      assert.equal(await page.locator('#placement').inputValue(), 'peri', 'the valid parameter placement=peri was not applied');
    } finally {
      await page.close();
    }
  });

  test('preset link locks controls', async () => {
    const { page, log } = await openTab(browser, `${server.url}?preset=pre-vs-peri&hide=lr,layers`);
    try {
      assert.equal(await page.locator('#preset').inputValue(), 'pre-vs-peri', `#preset does not show the preset\n${recentLog(log)}`);
      const story = await page.locator('#preset-story').innerText();
      assert.ok(story.length > 40, `#preset-story is "${story}", expected the preset's text`);
      assert.ok(await page.locator('#lr').isDisabled(), '#lr is not locked by hide=lr');
      assert.ok(await page.locator('#layers').isDisabled(), '#layers is not locked by hide=layers');
      assert.ok(await page.locator('#width').isEnabled(), '#width is locked but hide= does not name it');
      const queued = Number(await page.locator('#status').getAttribute('data-queued'));
      assert.ok(queued >= 1, `#status data-queued is ${queued}, expected the preset's further runs`);
      const statusLine = await page.locator('p.status').innerText();
      assert.ok(statusLine.includes("Train runs this preset's 2 runs"), `the idle status line is "${statusLine}", expected it to count both runs`);
      assert.equal(await page.locator('#placement').inputValue(), 'pre', 'the first run of pre-vs-peri is not Pre-LN');
    } finally {
      await page.close();
    }
  });

  test('preset link names ignored settings', async () => {
    const { page, log } = await openTab(browser, `${server.url}?preset=pre-vs-peri&lr=0.1&layers=4`);
    try {
      const notice = await page.locator('#notice').innerText();
      assert.ok(notice.includes("the link's lr, layers were not used"), `#notice is "${notice}", expected it to name lr and layers\n${recentLog(log)}`);
      assert.notEqual(await page.locator('#lr').inputValue(), '0.1', "the link's lr replaced the preset's");
    } finally {
      await page.close();
    }
  });

  test('preset link trains its runs and keeps them', { timeout: 300_000 }, async () => {
    const { page, log } = await openTab(browser, `${server.url}?preset=pre-vs-peri&run=1`);
    try {
      const finished = () => {
        const status = document.getElementById('status');
        return status?.getAttribute('data-state') === 'finished' && status?.getAttribute('data-queued') === '0';
      };
      await page.waitForFunction(finished, null, { timeout: 240_000, polling: 500 }).catch(() => {
        assert.fail(`the preset's runs did not all finish\n${recentLog(log)}`);
      });
      const names = () => page.evaluate(() => [...document.querySelectorAll('#run-list tr[data-shown="true"] th')].map((cell) => cell.textContent.trim()));
      assert.deepEqual(await names(), ['Pre-LN', 'Peri-LN'], "the preset's runs are not the ones shown");

      // Reloading the preset link shows the finished runs instead of training them again.
      await page.reload();
      await waitForBackend(page, log);
      assert.deepEqual(await names(), ['Pre-LN', 'Peri-LN'], 'the reload lost the preset runs');
      assert.equal(await page.locator('#status').getAttribute('data-queued'), '0', 'the reload queued the preset runs again');
    } finally {
      await page.evaluate(() => localStorage.clear());
      await page.close();
    }
  });

  test('embedded page shows charts and open controls', async () => {
    const { page } = await openTab(browser, `${server.url}?preset=pre-vs-peri&hide=lr&embed=1`);
    try {
      await saveScreenshot(page, 'embedded');
      assert.equal(await page.locator('h1').count(), 0, 'the embedded page shows the title');
      assert.equal(await page.locator('#run-list').count(), 0, 'the embedded page shows the run list');
      assert.ok(!(await page.locator('#lr').isVisible()), '#lr is visible although hide=lr');
      assert.ok(await page.locator('#placement').isVisible(), '#placement is hidden although not locked');
      assert.ok(await page.locator('#metric-chart').isVisible(), '#metric-chart is not visible');
      assert.ok(await page.locator('#preset-story').isVisible(), "the preset's text is not visible");
    } finally {
      await page.close();
    }
  });

  test('copied link reproduces the numbers', { timeout: 2 * runTimeoutMs + 30_000 }, async () => {
    const { page, log } = browser;
    await configureSmallRun(page, 'pre');
    const status = await trainToEnd(page, log);
    assert.equal(status.state, 'finished', `the run ended as "${status.state}"\n${recentLog(log)}`);
    const original = await readTables(page);

    const link = await page.locator('#share-link').inputValue();
    assert.match(link, /backend=cpu/, `the link "${link}" does not name the backend that ran`);
    const copy = await openTab(browser, link);
    try {
      assert.equal(await copy.page.locator('#layers').inputValue(), String(smallRun.layers), 'the link did not carry the layer count');
      const again = await trainToEnd(copy.page, copy.log);
      assert.equal(again.state, 'finished', `the copy ended as "${again.state}"\n${recentLog(copy.log)}`);
      const reproduced = await readTables(copy.page);
      assert.deepEqual(reproduced.lossRows, original.lossRows, 'the linked run has different losses');
      assert.deepEqual(reproduced.layerRows, original.layerRows, 'the linked run has different layer statistics');
    } finally {
      await copy.page.close();
    }
  });

  test('exported JSON draws with lnlab plot', { timeout: 120_000 }, async () => {
    const { page } = browser;
    const rows = await readRunList(page);
    assert.ok(rows.length >= 1, 'the run list is empty after a run');
    const last = rows.at(-1);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator(`#run-list tr[data-run-id="${last.id}"] button[data-export="json"]`).click(),
    ]);
    const runPath = join(artifactsDir, 'page-run.json');
    await download.saveAs(runPath);
    const run = JSON.parse(readFileSync(runPath, 'utf8'));
    const { lossRows } = await readTables(page);
    assert.equal(run.evals.at(-1).val_loss, Number(lossRows.at(-1).val), 'the exported validation loss differs from the page');

    const figure = join(artifactsDir, 'page-run.svg');
    runLnlab(['plot', runPath, '--out', figure]);
    assert.ok(statSync(figure).size > 1000, `${figure} is nearly empty`);
  });

  test('report and model downloads open elsewhere', { timeout: 120_000 }, async () => {
    const { page } = browser;
    const [report] = await Promise.all([page.waitForEvent('download'), page.locator('#export-report').click()]);
    const reportPath = join(artifactsDir, 'page-report.html');
    await report.saveAs(reportPath);
    const html = readFileSync(reportPath, 'utf8');
    assert.match(html, /<svg/, 'the report has no SVG chart');
    assert.match(html, /Pre-LN/, 'the report does not name the run');
    assert.doesNotMatch(html, /<script/i, 'the report contains a script');

    const [model] = await Promise.all([page.waitForEvent('download'), page.locator('#export-checkpoint').click()]);
    const modelPath = join(artifactsDir, 'page-model.safetensors');
    await model.saveAs(modelPath);
    const evalPath = join(artifactsDir, 'page-model-eval.json');
    // The page measures 2 evaluation batches. With the run's batch size and
    // seed, lnlab eval draws the same ones, so it must find the page's last loss.
    runLnlab([
      'eval', '--load', modelPath, '--data', smallRunData, '--batch', String(smallRun.batch), '--eval-batches', '2',
      '--seed', String(smallRun.seed), '--out', evalPath,
    ]);
    const measured = JSON.parse(readFileSync(evalPath, 'utf8'));
    assert.equal(measured.model.layers, smallRun.layers, 'lnlab eval read a model of another depth');
    const { lossRows } = await readTables(page);
    const pageLoss = Number(lossRows.at(-1).val);
    assert.ok(
      Math.abs(measured.record.val_loss - pageLoss) < 1e-4,
      `lnlab eval gives validation loss ${measured.record.val_loss} for the saved model, the page ${pageLoss}`,
    );
  });

  test('run file from lnlab train imports', { timeout: 180_000 }, async () => {
    const { page, log } = browser;
    const runPath = join(artifactsDir, 'cli-run.json');
    runLnlab([
      'train', '--layers', '2', '--width', '16', '--heads', '2', '--context', '16', '--batch', '4',
      '--steps', '4', '--eval-every', '2', '--data', smallRunData, '--out', runPath,
    ]);
    const before = await readRunList(page);
    await page.locator('#import-run').setInputFiles(runPath);
    await page.waitForFunction((count) => document.querySelectorAll('#run-list tr[data-run-id]').length > count, before.length, { timeout: 10_000 }).catch(() => {
      assert.fail(`the imported run did not join the run list\n${recentLog(log)}`);
    });
    const after = await readRunList(page);
    assert.equal(after.at(-1).steps, '4', `the imported run shows ${after.at(-1).steps} steps, expected 4`);
    assert.equal(after.at(-1).shown, 'true', 'the imported run is not on the charts');
  });

  test('runs survive a reload and deletion', async () => {
    const { page, log } = browser;
    const before = await readRunList(page);
    await page.reload();
    await waitForBackend(page, log);
    const after = await readRunList(page);
    assert.deepEqual(after, before, 'the run list changed across a reload');

    const deleteButton = page.locator(`#run-list button[data-delete="${after.at(-1).id}"]`);
    const rowName = await page.locator(`#run-list tr[data-run-id="${after.at(-1).id}"] th`).innerText();
    assert.equal(await deleteButton.getAttribute('aria-label'), `Delete ${rowName}`, 'the Delete button does not name its run for screen readers');
    await deleteButton.click();
    assert.deepEqual(await readRunList(page), after.slice(0, -1), 'Delete left the run in the list');
    await page.locator('#undo-delete').click();
    assert.deepEqual(await readRunList(page), after, 'Undo did not put the deleted run back in its place');
    await page.locator(`#run-list button[data-delete="${after.at(-1).id}"]`).click();
    await page.reload();
    await waitForBackend(page, log);
    assert.deepEqual(await readRunList(page), after.slice(0, -1), 'a deleted run came back after a reload');
  });

  test('full storage is reported and the saved list kept', async () => {
    const { page } = browser;
    const saved = await page.evaluate(() => localStorage.getItem('lnlab.runs'));
    assert.ok(saved, 'nothing was saved in local storage');
    // Fill the rest of the quota, as other pages of the same origin might.
    await page.evaluate(() => {
      let chunk = 'x'.repeat(1 << 20);
      for (let index = 0; chunk.length > 16; index += 1) {
        try {
          localStorage.setItem(`filler-${index}`, chunk);
        } catch {
          chunk = chunk.slice(0, chunk.length / 2);
        }
      }
    });
    try {
      // Importing a run again needs tens of kilobytes more.
      await page.locator('#import-run').setInputFiles(join(artifactsDir, 'cli-run.json'));
      await page.locator('#error').waitFor({ timeout: 10_000 });
      const error = await page.locator('#error').innerText();
      assert.match(error, /storage is full/, `#error says "${error}"`);
      assert.equal(await page.evaluate(() => localStorage.getItem('lnlab.runs')), saved, 'the saved list changed although the write failed');
    } finally {
      await page.evaluate(() => {
        for (const key of Object.keys(localStorage)) {
          if (key.startsWith('filler-')) {
            localStorage.removeItem(key);
          }
        }
      });
    }
  });
});
