// Shared pieces of the browser tests: a static server for dist/ on
// 127.0.0.1 and headless Chromium launches with and without WebGPU.
//
// Every server and browser started here is closed by the caller's `after`
// hook through the returned close function, so nothing outlives a failed test.

import { createServer } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const distDir = join(repoRoot, 'dist');
export const artifactsDir = join(repoRoot, 'test-artifacts');
export const chromiumPath = process.env.LNLAB_CHROMIUM ?? '/usr/bin/chromium';

// Flags for every launch: headless, no sandbox (the tests run as root), and
// no background traffic, since only package registries are reachable.
const baseChromiumArgs = [
  '--headless=new',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// Headless Chromium hands out a WebGPU adapter (SwiftShader, a CPU
// implementation of Vulkan) only with this flag. Without it, Chromium 156
// still defines navigator.gpu, but requestAdapter() resolves to null.
const webgpuChromiumArgs = ['--enable-unsafe-webgpu'];

const contentTypes = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/**
 * Starts a static file server for `root` on 127.0.0.1 at a free port.
 * Resolves to { url, close }, and close() also ends open connections.
 */
export async function startStaticServer(root = distDir) {
  const index = join(root, 'index.html');
  if (!existsSync(index)) {
    throw new Error(`${index} not found; build the page first with scripts/build-web.sh`);
  }

  const server = createServer(async (request, response) => {
    let file;
    try {
      const path = decodeURIComponent(new URL(request.url, 'http://127.0.0.1').pathname);
      file = join(root, normalize(path === '/' ? '/index.html' : path));
    } catch {
      response.writeHead(400).end();
      return;
    }
    if (!file.startsWith(root + sep)) {
      response.writeHead(403).end();
      return;
    }
    try {
      const info = await stat(file);
      if (!info.isFile()) {
        response.writeHead(404).end();
        return;
      }
      const body = await readFile(file);
      response.writeHead(200, {
        'Content-Type': contentTypes[extname(file)] ?? 'application/octet-stream',
        'Content-Length': body.length,
        'Cache-Control': 'no-store',
      });
      response.end(request.method === 'HEAD' ? undefined : body);
    } catch {
      response.writeHead(404).end();
    }
  });

  await new Promise((resolveListen, rejectListen) => {
    server.once('error', rejectListen);
    server.listen(0, '127.0.0.1', resolveListen);
  });
  const { port } = server.address();

  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise((resolveClose) => {
        server.closeAllConnections();
        server.close(() => resolveClose());
      }),
  };
}

/**
 * Launches headless Chromium with a fresh profile, WebGPU on or off.
 * Resolves to { context, page, log, close }. `log` collects the page's
 * console messages and uncaught errors, for failure messages.
 */
export async function launchChromium({ webgpu }) {
  if (!existsSync(chromiumPath)) {
    throw new Error(`Chromium not found at ${chromiumPath}; install it with scripts/setup.sh or set LNLAB_CHROMIUM`);
  }

  const profile = mkdtempSync(join(tmpdir(), 'lnlab-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      args: [...baseChromiumArgs, ...(webgpu ? webgpuChromiumArgs : [])],
      viewport: { width: 1280, height: 900 },
    });
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }

  const page = context.pages()[0] ?? (await context.newPage());
  const log = [];
  watchPage(page, log);

  return {
    context,
    page,
    log,
    close: async () => {
      try {
        await context.close();
      } finally {
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}

/** Records a page's console output and uncaught errors into `log`. */
export function watchPage(page, log) {
  page.on('console', (message) => log.push(`console.${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => log.push(`page error: ${error.message}`));
}

/** Returns the last `count` console lines, for appending to an assertion message. */
export function recentLog(log, count = 15) {
  if (log.length === 0) {
    return '(the page logged nothing)';
  }
  return log.slice(-count).join('\n');
}

/** Saves a full-page screenshot as test-artifacts/NAME.png and returns its path. */
export async function saveScreenshot(page, name) {
  mkdirSync(artifactsDir, { recursive: true });
  const path = join(artifactsDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
