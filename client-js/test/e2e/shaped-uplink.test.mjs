// A publisher on a slow uplink: a default `sluice` runs in a network namespace of the test's
// own, and the host end of the veth into it is shaped to 1 Mbit/s with `tbf` (netem does not
// exist on the test machine), so everything Chromium on the host sends to the server goes
// through a 1 Mbit/s bottleneck with a 100 ms queue; the way back is not shaped. Chromium
// publishes its fake camera at 1280x720 as three simulcast layers over WHIP. Its congestion
// controller only sees the bottleneck through Sluice's transport-wide feedback (losses and
// growing delays), so what it sends must settle at or below 1.1 Mbit/s within 15 s instead
// of overflowing the queue; a WHEP viewer keeps decoding throughout.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { inboundStats, launchBrowser, waitFor } from './harness.mjs';
import { canCreateNamespaces, createNamespace, startServerIn } from './netns.mjs';

const ROOM = `shaped-${process.pid}`;
const RATE_BITS = 1_000_000;
let ns;
/** @type {Awaited<ReturnType<typeof startServerIn>>} */
let server;
const browsers = [];

before(async () => {
  if (!canCreateNamespaces()) throw new Error('this test creates a network namespace: run it as root');
  ns = createNamespace('shaped', 31);
  server = await startServerIn(ns, 'shaped-uplink');
  // Egress of the host end: everything from the host towards the server.
  execFileSync('tc', ['qdisc', 'add', 'dev', ns.hostEnd, 'root', 'tbf', 'rate', '1mbit', 'burst', '32kbit', 'latency', '100ms']);
});

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  await server?.stop();
  ns?.remove();
});

async function chromium(label) {
  const browser = await launchBrowser(label, {
    args: [`--unsafely-treat-insecure-origin-as-secure=${server.base}`],
  });
  browsers.push(browser);
  return browser;
}

/** What the publisher has sent so far (all RTP streams) and its estimate. */
function sent(page) {
  return page.evaluate(async () => {
    const stats = await window.publisher.getStats();
    const out = { bytes: 0, available: 0, widths: [], limitation: '' };
    stats.forEach((s) => {
      if (s.type === 'outbound-rtp') {
        out.bytes += s.bytesSent + (s.headerBytesSent ?? 0);
        if (s.kind === 'video' && s.frameWidth) out.widths.push(s.frameWidth);
        if (s.kind === 'video' && s.qualityLimitationReason) out.limitation = s.qualityLimitationReason;
      }
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) out.available = s.availableOutgoingBitrate;
    });
    return out;
  });
}

test('a publisher behind a 1 Mbit/s uplink settles under it and its viewer keeps decoding', { timeout: 120_000 }, async () => {
  const publisher = await chromium('shaped-publisher');
  await publisher.page.goto(`${server.base}/healthz`);
  await publisher.page.evaluate(async (url) => {
    const { whipPublish } = await import('/lib/whip.js');
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: 1280, height: 720, frameRate: 30 },
    });
    const session = await whipPublish(url, stream, {}, { simulcast: true });
    window.publisher = session.pc;
  }, `/whip/${ROOM}`);
  await waitFor('the WHIP connection', () => publisher.page.evaluate(() => window.publisher.connectionState === 'connected'),
    { timeoutMs: 20_000 });
  const connected = Date.now();

  const viewer = await chromium('shaped-viewer');
  await viewer.page.goto(`${server.base}/app/whep.html?room=${ROOM}`);
  await waitFor('the WHEP session', () => viewer.page.evaluate(() => {
    if (window.whep?.error) throw new Error(window.whep.error);
    return Boolean(window.whep?.pc);
  }));

  // One sample a second: [s since connected, kbit/s sent in that second (headers included),
  // kbit/s available, widths sent, limitation, frames the viewer decoded so far].
  const timeline = [];
  let previous = await sent(publisher.page);
  let previousAt = Date.now();
  for (let i = 0; i < 25; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const now = await sent(publisher.page);
    const at = Date.now();
    const kbps = ((now.bytes - previous.bytes) * 8) / (at - previousAt);
    const inbound = Object.values(await inboundStats(viewer.page, 'window.whep.pc')).find((s) => s.kind === 'video');
    timeline.push({
      s: Math.round((at - connected) / 1000),
      kbps: Math.round(kbps),
      available: Math.round(now.available / 1000),
      widths: now.widths,
      limitation: now.limitation,
      decoded: inbound?.framesDecoded ?? 0,
      width: inbound?.frameWidth ?? 0,
    });
    previous = now;
    previousAt = at;
  }
  console.log(`behind ${RATE_BITS / 1000} kbit/s: ${JSON.stringify(timeline)}`);
  // Settled within 15 s: every 5-s window from then on at or below 1.1 Mbit/s.
  const settled = timeline.filter((t) => t.s >= 15);
  assert.ok(settled.length >= 8, 'samples after 15 s');
  for (let i = 0; i + 5 <= settled.length; i += 1) {
    const window5 = settled.slice(i, i + 5);
    const mean = window5.reduce((sum, t) => sum + t.kbps, 0) / window5.length;
    assert.ok(mean <= 1100, `the publisher sends ${mean.toFixed(0)} kbit/s from ${window5[0].s} s: ${JSON.stringify(timeline)}`);
  }
  // The viewer decodes throughout the last 10 s, at least every 2 s.
  const last = timeline.slice(-10);
  for (let i = 2; i < last.length; i += 2) {
    assert.ok(last[i].decoded > last[i - 2].decoded, `the viewer stopped decoding at ${last[i].s} s: ${JSON.stringify(timeline)}`);
  }
  const fps = (last[last.length - 1].decoded - last[0].decoded) / (last[last.length - 1].s - last[0].s);
  console.log(`the viewer decodes ${last[last.length - 1].width} px wide at ${fps.toFixed(1)} frames/s`);
  assert.deepEqual(publisher.problems, []);
  assert.deepEqual(viewer.problems, []);
});
