// What the browser end-to-end tests share: start the `sluice` binary on free loopback
// ports and wait for /healthz, launch Debian's Chromium (each with its own fresh profile,
// a fake camera and microphone) through playwright-core, read WebRTC stats, and wait for
// conditions with a bound on every wait.

import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const clientDir = path.resolve(here, '../..');
export const artifactsDir = path.join(clientDir, 'test', 'artifacts');
mkdirSync(artifactsDir, { recursive: true });

export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
];

/** A TCP port nobody listens on right now. */
export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/** A UDP port nobody is bound to right now. */
export function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/**
 * Polls `check` until it returns a truthy value, which is returned; throws with `what` and
 * the last error after `timeoutMs`.
 * @template T
 * @param {string} what
 * @param {() => Promise<T> | T} check
 * @param {{timeoutMs?: number, intervalMs?: number}} [options]
 * @returns {Promise<T>}
 */
export async function waitFor(what, check, { timeoutMs = 15000, intervalMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * GET over HTTPS that accepts any certificate (the server's self-signed one); resolves to
 * the status code.
 * @param {string} url
 * @returns {Promise<number>}
 */
export function insecureHttpsStatus(url) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { rejectUnauthorized: false, timeout: 5000 }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', reject);
    req.end();
  });
}

/**
 * Starts `sluice` (SLUICE_BIN, or ../target/debug/sluice) on free loopback ports and
 * waits until GET /healthz answers 200. Its output goes to artifacts/<label>-server.log.
 * With `tls`, it serves HTTPS with `--tls-self-signed` and `base` is https://localhost:PORT.
 * `httpPort` and `udpPort` reuse the ports of a server that was stopped (a restart).
 * @param {string} label
 * @param {{tls?: boolean, args?: string[], httpPort?: number, udpPort?: number}} [options]
 *   extra flags in `args`
 */
export async function startServer(label, { tls = false, args = [], ...ports } = {}) {
  const bin = process.env.SLUICE_BIN ?? path.resolve(clientDir, '..', 'target', 'debug', 'sluice');
  if (!existsSync(bin)) throw new Error(`no server binary at ${bin} (cargo build -p server --bin sluice)`);
  const httpPort = ports.httpPort ?? (await freeTcpPort());
  const udpPort = ports.udpPort ?? (await freeUdpPort());
  const logPath = path.join(artifactsDir, `${label}-server.log`);
  const log = createWriteStream(logPath);
  const flags = ['--http', `127.0.0.1:${httpPort}`, '--udp', `127.0.0.1:${udpPort}`, ...args];
  if (tls) flags.push('--tls-self-signed');
  const child = spawn(bin, flags, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { RUST_LOG: 'info', ...process.env },
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = null;
  child.once('exit', (code, signal) => {
    exited = `exited with ${code ?? signal}`;
  });
  const base = tls ? `https://localhost:${httpPort}` : `http://127.0.0.1:${httpPort}`;
  try {
    await waitFor('GET /healthz', async () => {
      if (exited) throw new Error(`sluice ${exited}, see ${logPath}`);
      if (tls) return (await insecureHttpsStatus(`https://127.0.0.1:${httpPort}/healthz`)) === 200;
      const response = await fetch(`${base}/healthz`);
      return response.ok;
    }, { timeoutMs: 20000, intervalMs: 100 });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    base,
    httpPort,
    udpPort,
    logPath,
    /** Sends `signal` to the server (SIGSTOP freezes it, SIGCONT thaws it). */
    signal(signal) {
      if (!exited) child.kill(signal);
    },
    /** Kills the server with SIGKILL: no goodbye to anyone, everything it knew is lost. */
    async kill() {
      if (exited) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
    },
    async stop() {
      if (exited) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    },
  };
}

/**
 * Launches one Chromium with its own fresh profile and returns its first page. Console
 * errors and page errors are collected in `problems`, dialogs (alert) in `dialogs`.
 * @param {string} label for the console log file in artifacts/
 * @param {{args?: string[]}} [options] Chromium flags beyond CHROMIUM_FLAGS
 */
export async function launchBrowser(label, { args = [] } = {}) {
  const userDataDir = await mkdtemp(path.join(tmpdir(), `sluice-e2e-${label}-`));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_FLAGS, ...args],
    viewport: { width: 1280, height: 720 },
    timeout: 30000,
  });
  context.setDefaultTimeout(15000);
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleLog = createWriteStream(path.join(artifactsDir, `${label}-console.log`));
  /** @type {string[]} */
  const problems = [];
  /** @type {string[]} */
  const dialogs = [];
  page.on('console', (message) => consoleLog.write(`${message.type()}: ${message.text()}\n`));
  page.on('pageerror', (error) => {
    problems.push(String(error));
    consoleLog.write(`pageerror: ${error}\n`);
  });
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  return {
    page,
    problems,
    dialogs,
    /** Kills this Chromium's processes with SIGKILL: a browser that vanishes without a goodbye. */
    kill() {
      try {
        execFileSync('pkill', ['-KILL', '-f', userDataDir]);
      } catch {
        // pkill exits 1 when nothing matched: already gone.
      }
    },
    async close() {
      await context.close().catch(() => {});
      consoleLog.end();
      await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/**
 * Inbound RTP counters of `pc`, keyed by mid: kind, framesDecoded, packetsReceived and the
 * decoded frame size.
 * Runs in the page; `pcExpression` names the connection there (e.g. `window.whep.pc`).
 * @param {import('playwright-core').Page} page
 * @param {string} pcExpression
 */
export function inboundStats(page, pcExpression) {
  return page.evaluate(async (expression) => {
    // eslint-disable-next-line no-new-func
    const pc = new Function(`return ${expression}`)();
    const stats = await pc.getStats();
    const byMid = {};
    stats.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      byMid[s.mid ?? s.trackIdentifier] = {
        kind: s.kind,
        trackIdentifier: s.trackIdentifier,
        framesDecoded: s.framesDecoded ?? 0,
        packetsReceived: s.packetsReceived ?? 0,
        frameWidth: s.frameWidth ?? 0,
        frameHeight: s.frameHeight ?? 0,
        freezeCount: s.freezeCount ?? 0,
      };
    });
    return byMid;
  }, pcExpression);
}

/**
 * Waits until two samples `spanMs` apart show every expected stream growing, i.e. media
 * is arriving and video is decoding now, not only at some point in the past.
 * @param {string} what
 * @param {() => Promise<Record<string, {framesDecoded: number, packetsReceived: number}>>} sample
 * @param {(before: any, after: any) => string | null} problem returns why not yet, or null
 */
export async function waitForGrowth(what, sample, problem, { timeoutMs = 30000, spanMs = 2000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no sample';
  while (Date.now() < deadline) {
    const before = await sample();
    await sleep(spanMs);
    const after = await sample();
    const why = problem(before, after);
    if (!why) return after;
    last = why;
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${last}`);
}
