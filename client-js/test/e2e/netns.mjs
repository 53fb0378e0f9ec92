// A network namespace of the test's own, joined to the host by a veth pair, for tests that
// need the server on a non-loopback address (Firefox gathers no loopback candidates) or a
// shaped or filtered path. Everything is named after the test process and removed by
// `remove()`; only addresses inside the namespace and the veth's host end are ever used.

import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import path from 'node:path';
import { artifactsDir, clientDir, waitFor } from './harness.mjs';

function ip(...args) {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Whether this process may create namespaces (root with `ip netns`). */
export function canCreateNamespaces() {
  return process.getuid?.() === 0;
}

/**
 * Creates namespace `sluice-<label>-<pid>` with the address 10.213.N.2/24 on its end of a
 * veth pair whose host end has 10.213.N.1/24.
 * @param {string} label
 * @param {number} subnet N, 1..254, distinct per namespace of one test process
 */
export function createNamespace(label, subnet) {
  const name = `sluice-${label}-${process.pid}`;
  const tag = `${process.pid % 100000}${subnet % 10}`;
  const hostEnd = `slh${tag}`;
  const nsEnd = `sln${tag}`;
  const hostAddress = `10.213.${subnet}.1`;
  const address = `10.213.${subnet}.2`;
  try {
    ip('netns', 'del', name);
  } catch {
    // Not there: the usual case.
  }
  ip('netns', 'add', name);
  try {
    ip('link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', nsEnd);
    ip('link', 'set', nsEnd, 'netns', name);
    ip('addr', 'add', `${hostAddress}/24`, 'dev', hostEnd);
    ip('link', 'set', hostEnd, 'up');
    ip('netns', 'exec', name, 'ip', 'addr', 'add', `${address}/24`, 'dev', nsEnd);
    ip('netns', 'exec', name, 'ip', 'link', 'set', nsEnd, 'up');
    ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  } catch (error) {
    ip('netns', 'del', name);
    throw error;
  }
  return {
    name,
    address,
    hostAddress,
    hostEnd,
    nsEnd,
    /** Runs a command inside the namespace. */
    exec(...args) {
      return execFileSync('ip', ['netns', 'exec', name, ...args], { encoding: 'utf8' });
    },
    remove() {
      try {
        ip('netns', 'del', name);
      } catch {
        // Already gone.
      }
      try {
        ip('link', 'del', hostEnd);
      } catch {
        // Went with the namespace, as a veth does.
      }
    },
  };
}

/**
 * Starts `sluice` inside `ns` with exactly `args` (none: the defaults, HTTP on 0.0.0.0:8080
 * and media on 0.0.0.0:3478) and waits for /healthz on the namespace's address.
 */
export async function startServerIn(ns, label, args = [], httpPort = 8080) {
  const bin = process.env.SLUICE_BIN ?? path.resolve(clientDir, '..', 'target', 'debug', 'sluice');
  if (!existsSync(bin)) throw new Error(`no server binary at ${bin} (cargo build -p server --bin sluice)`);
  const logPath = path.join(artifactsDir, `${label}-server.log`);
  const log = createWriteStream(logPath);
  // No SLUICE_* variable from the caller leaks in: this is the server as a new user runs it.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SLUICE_')));
  const child = spawn('ip', ['netns', 'exec', ns.name, bin, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = null;
  child.once('exit', (code, signal) => {
    exited = `exited with ${code ?? signal}`;
  });
  const base = `http://${ns.address}:${httpPort}`;
  try {
    await waitFor(`GET ${base}/healthz`, async () => {
      if (exited) throw new Error(`sluice ${exited}, see ${logPath}`);
      const response = await fetch(`${base}/healthz`).catch(() => null);
      return Boolean(response?.ok);
    }, { timeoutMs: 20000, intervalMs: 100 });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    base,
    logPath,
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
