// The page's safety net, in headless Chromium on the CPU path: the
// Content-Security-Policy that scripts/build-web.sh adds, requests that stay
// on the page's own origin, user text (link values, file names) that never
// becomes markup, and the crash panel of src/web/crash.rs.
//
// The crash tests reach the panic through the test hook lnlabForcePanic,
// which Trunk's loader exposes with the other wasm-bindgen exports on
// window.wasmBindings.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { artifactsDir, launchChromium, recentLog, saveScreenshot, startStaticServer, watchPage } from './harness.mjs';
import { configureSmallRun, trainToEnd, waitForBackend } from './lab.mjs';

const runsKey = 'lnlab.runs';
const panelTimeoutMs = 10_000;

// Directives the policy must contain, each with its exact source list.
// script-src is checked separately, because its hashes change per build.
const expectedDirectives = {
  'default-src': ["'self'"],
  'style-src': ["'self'"],
  // Only style attributes, which plotters sets to measure chart labels.
  'style-src-attr': ["'unsafe-inline'"],
  'img-src': ["'self'", 'data:', 'blob:'],
  'connect-src': ["'self'"],
  'object-src': ["'none'"],
  'base-uri': ["'none'"],
  'form-action': ["'none'"],
};

/** Extracts the content of the Content-Security-Policy meta tag, or null. */
function policyOf(html) {
  const match = html.match(/<meta\s+http-equiv="Content-Security-Policy"\s+content="([^"]*)"/i);
  return match ? match[1] : null;
}

/** Splits a policy into a Map from directive name to its source list. */
function parsePolicy(policy) {
  const directives = new Map();
  for (const part of policy.split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) {
      directives.set(name.toLowerCase(), sources);
    }
  }
  return directives;
}

/** Returns the CSP source for each inline script of `html`, as a browser hashes it. */
function inlineScriptHashes(html) {
  const hashes = [];
  for (const match of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script\s*>/gi)) {
    if (/\bsrc\s*=/i.test(match[1])) {
      continue;
    }
    const digest = createHash('sha256').update(match[2], 'utf8').digest('base64');
    hashes.push(`'sha256-${digest}'`);
  }
  return hashes;
}

/**
 * Opens `url` in a new tab that records CSP violations (in the page, as
 * window.__cspViolations), every request URL and the console, then waits
 * for the backend.
 */
async function openWatchedTab(browser, url) {
  const page = await browser.context.newPage();
  const log = [];
  const requests = [];
  watchPage(page, log);
  page.on('request', (request) => requests.push(request.url()));
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener(
      'securitypolicyviolation',
      (event) => window.__cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI || event.sample || '(inline)'}`),
      true,
    );
  });
  await page.goto(url);
  await waitForBackend(page, log);
  return { page, log, requests };
}

/** Returns the console lines that report a Content-Security-Policy violation. */
function cspConsoleErrors(log) {
  return log.filter((line) => /Content Security Policy/i.test(line));
}

/** Waits for the crash panel and returns its role, position and texts. */
async function waitForCrashPanel(page, log) {
  await page.locator('#crash').waitFor({ state: 'visible', timeout: panelTimeoutMs }).catch(() => {
    assert.fail(`the crash panel #crash did not appear within ${panelTimeoutMs / 1000} s\n${recentLog(log)}`);
  });
  return page.evaluate(() => {
    const panel = document.getElementById('crash');
    return {
      role: panel.getAttribute('role'),
      isFirstInBody: document.body.firstElementChild === panel,
      heading: panel.querySelector('h2')?.textContent ?? null,
      message: panel.querySelector('.crash-message')?.textContent ?? null,
      location: panel.querySelector('.crash-location')?.textContent ?? null,
      details: document.getElementById('crash-details')?.textContent ?? null,
      panelCount: document.querySelectorAll('#crash').length,
    };
  });
}

/** Clicks Copy details and returns the data-copy state it reports: "copied" or "selected". */
async function clickCopyDetails(page, log) {
  await page.evaluate(() => document.getElementById('crash-copy-status')?.removeAttribute('data-copy'));
  await page.locator('#crash-copy').click();
  const handle = await page
    .waitForFunction(() => document.getElementById('crash-copy-status')?.getAttribute('data-copy'), null, { timeout: panelTimeoutMs })
    .catch(() => assert.fail(`Copy details reported neither "copied" nor "selected" in #crash-copy-status\n${recentLog(log)}`));
  const state = await handle.jsonValue();
  await handle.dispose();
  return state;
}

describe('page safety', () => {
  let server;
  let browser;

  before(async () => {
    mkdirSync(artifactsDir, { recursive: true });
    server = await startStaticServer();
    browser = await launchChromium({ webgpu: false });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('served page carries the policy', async () => {
    const response = await fetch(server.url);
    assert.equal(response.status, 200, `GET ${server.url} returned ${response.status}`);
    const html = await response.text();

    assert.match(
      html,
      /<head>\s*<meta http-equiv="Content-Security-Policy"/i,
      'the Content-Security-Policy meta tag is not the first element of <head>; rebuild with scripts/build-web.sh',
    );
    const policy = policyOf(html);
    assert.ok(policy, 'index.html has no Content-Security-Policy meta tag');
    const directives = parsePolicy(policy);

    for (const [name, sources] of Object.entries(expectedDirectives)) {
      assert.deepEqual(directives.get(name), sources, `${name} in the policy "${policy}"`);
    }

    const scriptSources = directives.get('script-src') ?? [];
    assert.ok(scriptSources.includes("'self'"), `script-src lacks 'self': ${scriptSources.join(' ')}`);
    assert.ok(scriptSources.includes("'wasm-unsafe-eval'"), `script-src lacks 'wasm-unsafe-eval': ${scriptSources.join(' ')}`);
    assert.ok(!scriptSources.includes("'unsafe-inline'"), "script-src allows 'unsafe-inline'");
    assert.ok(!scriptSources.includes("'unsafe-eval'"), "script-src allows 'unsafe-eval'");

    // Every inline script is allowed by its hash, and no hash is left over.
    const hashes = inlineScriptHashes(html);
    assert.ok(hashes.length >= 2, `expected Trunk's loader and the loading-line script inline, found ${hashes.length} inline scripts`);
    assert.deepEqual(
      scriptSources.filter((source) => source.startsWith("'sha256-")).sort(),
      [...hashes].sort(),
      'the script-src hashes do not match the inline scripts of the served page',
    );

    for (const [name, sources] of directives) {
      for (const source of sources) {
        assert.ok(!source.includes('*'), `${name} names a wildcard source: ${source}`);
        assert.ok(!/^[a-z][a-z0-9+.-]*:\/\//i.test(source), `${name} names a remote origin: ${source}`);
      }
    }
    // frame-ancestors has no effect in a meta tag, and embedding is allowed.
    assert.ok(!directives.has('frame-ancestors'), 'the policy sets frame-ancestors, which a meta tag cannot enforce');
  });

  test('tiny run and downloads obey policy', { timeout: 180_000 }, async () => {
    const { page, log, requests } = await openWatchedTab(browser, server.url);
    try {
      await configureSmallRun(page, 'pre');
      const status = await trainToEnd(page, log);
      assert.equal(status.state, 'finished', `the run ended as "${status.state}" at step ${status.step}\n${recentLog(log)}`);

      // Chart downloads go through data: and blob: addresses, which the policy allows.
      for (const format of ['png', 'svg']) {
        const [download] = await Promise.all([
          page.waitForEvent('download', { timeout: 15_000 }),
          page.locator(`[data-save="metric-chart-${format}"]`).click(),
        ]);
        assert.match(download.suggestedFilename(), new RegExp(`\\.${format}$`), `the ${format} download has the name "${download.suggestedFilename()}"`);
      }

      const violations = await page.evaluate(() => window.__cspViolations);
      assert.deepEqual(violations, [], `securitypolicyviolation events while loading and training\n${recentLog(log)}`);
      assert.deepEqual(cspConsoleErrors(log), [], 'the console reported Content-Security-Policy errors');
      assert.equal(await page.locator('#crash').count(), 0, `the crash panel appeared during a normal run\n${recentLog(log)}`);

      const origin = new URL(server.url).origin;
      assert.ok(requests.length > 0, 'no requests were recorded');
      const foreign = requests.filter((url) => !url.startsWith('data:') && !url.startsWith('blob:') && new URL(url).origin !== origin);
      assert.deepEqual(foreign, [], `the page requested addresses outside ${origin}`);
      for (const file of ['index.html', '.wasm', 'moby-dick.txt']) {
        const path = file === 'index.html' ? server.url : file;
        assert.ok(requests.some((url) => url === path || url.endsWith(path)), `no request for ${file} was recorded: ${requests.join(', ')}`);
      }
    } finally {
      await page.close();
    }
  });

  test('link values stay text', async () => {
    const imageValue = '<img src=x onerror="window.__pwned=1">';
    const boldValue = '<b>x</b>';
    const query = `?bogus=${encodeURIComponent(imageValue)}&placement=${encodeURIComponent(boldValue)}`;
    const { page, log } = await openWatchedTab(browser, `${server.url}${query}`);
    try {
      const notice = await page.locator('#notice').textContent();
      assert.ok(notice.includes('<img src=x onerror='), `#notice does not show the bogus value as text: "${notice}"\n${recentLog(log)}`);
      assert.ok(notice.includes(boldValue), `#notice does not show the placement value as text: "${notice}"`);
      assert.equal(await page.locator('#notice').evaluate((element) => element.childElementCount), 0, '#notice contains elements, so link text became markup');
      assert.equal(await page.locator('img[src="x"]').count(), 0, 'the link value created an <img src="x"> element');

      // An image error handler would run after the failed load, so give it time.
      await page.waitForTimeout(500);
      assert.equal(await page.evaluate(() => typeof window.__pwned), 'undefined', 'a link value ran script');
      assert.deepEqual(await page.evaluate(() => window.__cspViolations), [], 'the link value triggered policy violations');
    } finally {
      await page.close();
    }
  });

  test('file names stay text', async () => {
    const { page, log } = await openWatchedTab(browser, server.url);
    const text = 'Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail about a little. '.repeat(20);
    try {
      const pickedName = '<img src=x onerror="window.__pwned=2">.txt';
      await page.locator('#data-file').setInputFiles({ name: pickedName, mimeType: 'text/plain', buffer: Buffer.from(text) });
      await page.waitForFunction((name) => document.getElementById('notice')?.textContent.includes(name), pickedName, { timeout: 10_000 }).catch(async () => {
        const notice = await page.locator('#notice').textContent().catch(() => null);
        assert.fail(`#notice does not name the picked file "${pickedName}" as text (it shows "${notice}")\n${recentLog(log)}`);
      });

      // The same through a drop on the page.
      const droppedName = '<b>dropped</b>.txt';
      await page.evaluate(
        ({ name, body }) => {
          const transfer = new DataTransfer();
          transfer.items.add(new File([body], name, { type: 'text/plain' }));
          document.querySelector('main').dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
        },
        { name: droppedName, body: text },
      );
      await page.waitForFunction((name) => document.getElementById('notice')?.textContent.includes(name), droppedName, { timeout: 10_000 }).catch(async () => {
        const notice = await page.locator('#notice').textContent().catch(() => null);
        assert.fail(`#notice does not name the dropped file "${droppedName}" as text (it shows "${notice}")\n${recentLog(log)}`);
      });

      assert.equal(await page.locator('img[src="x"]').count(), 0, 'a file name created an <img src="x"> element');
      const boldElements = await page.evaluate(() => [...document.querySelectorAll('b')].filter((element) => element.textContent === 'dropped').length);
      assert.equal(boldElements, 0, 'a file name created a <b> element');
      await page.waitForTimeout(500);
      assert.equal(await page.evaluate(() => typeof window.__pwned), 'undefined', 'a file name ran script');
    } finally {
      await page.close();
    }
  });

  test('panic shows the crash panel', { timeout: 180_000 }, async () => {
    const { page, log } = await openWatchedTab(browser, server.url);
    try {
      // The panel must leave the saved runs alone, so make sure there is one.
      let saved = await page.evaluate((key) => localStorage.getItem(key), runsKey);
      if (saved === null) {
        await configureSmallRun(page, 'pre');
        await trainToEnd(page, log);
        saved = await page.evaluate((key) => localStorage.getItem(key), runsKey);
      }
      assert.ok(saved, `no saved runs under ${runsKey} after a finished run`);

      const hook = await page.evaluate(() => typeof window.wasmBindings?.lnlabForcePanic);
      assert.equal(hook, 'function', 'window.wasmBindings.lnlabForcePanic is missing; Trunk\'s loader should expose the wasm-bindgen exports there');
      // From a timer, as a panic in an event handler would happen: the panic
      // ends in a WebAssembly trap that reaches the page as an uncaught error.
      await page.evaluate(() => setTimeout(() => window.wasmBindings.lnlabForcePanic(), 0));

      const panel = await waitForCrashPanel(page, log);
      await saveScreenshot(page, 'crash-panel');
      assert.equal(panel.role, 'alert', '#crash lacks role="alert"');
      assert.ok(panel.isFirstInBody, '#crash is not the first element of <body>');
      assert.equal(panel.heading, 'The lab hit an internal error');
      assert.match(panel.message ?? '', /lnlabForcePanic was called/, 'the panel does not show the panic message');
      assert.match(panel.location ?? '', /crash\.rs:\d+:\d+/, 'the panel does not show the panic location');
      assert.equal(panel.panelCount, 1, 'the trap after the panic added a second panel');
      for (const field of ['message: lnlabForcePanic was called', 'location: ', `page: ${server.url}`, 'user agent: ']) {
        assert.ok(panel.details?.includes(field), `the details lack "${field}": ${panel.details}`);
      }

      // Copy details, with clipboard access granted.
      await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(server.url).origin });
      const copied = await clickCopyDetails(page, log);
      assert.equal(copied, 'copied', `Copy details did not copy with clipboard access granted\n${recentLog(log)}`);
      const clipboard = await page.evaluate(() => navigator.clipboard.readText());
      assert.equal(clipboard, panel.details, 'the clipboard does not hold the details shown in the panel');

      // Copy details when the browser rejects the write: the details get selected.
      await page.evaluate(() => {
        navigator.clipboard.writeText = () => Promise.reject(new DOMException('Write permission denied.', 'NotAllowedError'));
      });
      const fallback = await clickCopyDetails(page, log);
      assert.equal(fallback, 'selected', 'Copy details did not fall back to selecting the details');
      const selection = await page.evaluate(() => window.getSelection().toString());
      assert.ok(selection.includes('lnlabForcePanic was called'), `the selection does not hold the details: "${selection}"`);
      const status = await page.locator('#crash-copy-status').textContent();
      assert.match(status, /Ctrl\+C/, `the fallback does not say how to copy: "${status}"`);

      assert.equal(await page.evaluate((key) => localStorage.getItem(key), runsKey), saved, `the crash changed ${runsKey}`);

      // Reload brings the saved runs back, without the panel.
      await Promise.all([page.waitForEvent('load'), page.locator('#crash-reload').click()]);
      await waitForBackend(page, log);
      assert.equal(await page.locator('#crash').count(), 0, 'the crash panel is still shown after the reload');
      assert.ok((await page.locator('#run-list tr[data-run-id]').count()) > 0, 'the saved runs did not come back after the reload');
      assert.equal(await page.evaluate((key) => localStorage.getItem(key), runsKey), saved, `the reload changed ${runsKey}`);
    } finally {
      await page.close();
    }
  });

  test('uncaught error shows the crash panel', async () => {
    const { page, log } = await openWatchedTab(browser, server.url);
    try {
      await page.evaluate(() => setTimeout(() => {
        throw new Error('thrown on purpose by the test');
      }, 0));
      const panel = await waitForCrashPanel(page, log);
      assert.match(panel.message ?? '', /thrown on purpose by the test/, 'the panel does not show the error message');
      assert.match(panel.details ?? '', /kind: uncaught JavaScript error/, `the details do not name the kind: ${panel.details}`);
    } finally {
      await page.close();
    }
  });

  test('unhandled rejection shows the crash panel', async () => {
    const { page, log } = await openWatchedTab(browser, server.url);
    try {
      await page.evaluate(() => {
        Promise.reject(new Error('rejected on purpose by the test'));
      });
      const panel = await waitForCrashPanel(page, log);
      assert.equal(panel.message, 'Error: rejected on purpose by the test', 'the panel does not show the rejection reason');
      assert.match(panel.details ?? '', /kind: unhandled promise rejection/, `the details do not name the kind: ${panel.details}`);
    } finally {
      await page.close();
    }
  });

  test('crash text stays text', async () => {
    const { page, log } = await openWatchedTab(browser, server.url);
    try {
      await page.evaluate(() => {
        Promise.reject(new Error('<img src=x onerror="window.__pwned=3">'));
      });
      const panel = await waitForCrashPanel(page, log);
      assert.ok(panel.message?.includes('<img src=x onerror='), `the panel does not show the error as text: "${panel.message}"`);
      assert.equal(await page.locator('#crash img').count(), 0, 'the error message became an <img> element');
      await page.waitForTimeout(500);
      assert.equal(await page.evaluate(() => typeof window.__pwned), 'undefined', 'the error message ran script');
    } finally {
      await page.close();
    }
  });
});
