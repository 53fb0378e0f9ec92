// Simulcast from a real browser: a Chromium page publishing its fake camera at 1280x720 over
// WHIP with three rid layers (320, 640 and 1280 px wide) must end up as one video track on
// the server with its layers bound by mid and rid, every layer active (the server's
// transport-wide feedback lets the browser's estimator afford all three), and a WHEP viewer
// must decode one continuous stream of the highest layer, 1280x720; one that asks for
// `?layer=0` decodes the lowest, 320x180.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { inboundStats, launchBrowser, startServer, waitFor, waitForGrowth } from './harness.mjs';
import { openWhepPlayer } from './peers.mjs';

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
const browsers = [];

before(async () => {
  server = await startServer('simulcast');
});

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  await server?.stop();
});

/** Width and bytes sent of each simulcast layer, by rid. */
function layers(page) {
  return page.evaluate(async () => {
    const stats = await window.publisher.getStats();
    const out = {};
    stats.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) {
        out[s.rid] = { width: s.frameWidth ?? 0, bytesSent: s.bytesSent, active: s.active };
      }
    });
    return out;
  });
}

test('a Chromium simulcast publisher is one track with three layers, viewed at 1280x720', { timeout: 120_000 }, async () => {
  const room = `simulcast-${process.pid}`;
  const publisher = await launchBrowser('simulcast-publisher');
  browsers.push(publisher);
  await publisher.page.goto(`${server.base}/healthz`);
  const started = Date.now();
  const offer = await publisher.page.evaluate(async (url) => {
    const { whipPublish } = await import('/lib/whip.js');
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: 1280, height: 720, frameRate: 30 },
    });
    const session = await whipPublish(url, stream, {}, { simulcast: true });
    window.publisher = session.pc;
    return session.pc.localDescription.sdp;
  }, `/whip/${room}`);
  assert.match(offer, /a=simulcast:send q;h;f/, 'the offer is rid simulcast');

  const timeline = [];
  const widths = { q: 320, h: 640, f: 1280 };
  let before = {};
  await waitFor('all three layers active at 320, 640 and 1280 px', async () => {
    const now = await layers(publisher.page);
    timeline.push([Date.now() - started, Object.fromEntries(Object.entries(now).map(([rid, l]) => [rid, l.width]))]);
    const ready = Object.entries(widths).every(([rid, width]) =>
      now[rid]?.width === width && now[rid].bytesSent > (before[rid]?.bytesSent ?? 0));
    before = now;
    return ready;
  }, { timeoutMs: 60_000, intervalMs: 1000 }).catch((error) => {
    throw new Error(`${error.message}; [ms, width by rid]: ${JSON.stringify(timeline)}`);
  });
  console.log(`three layers active after ${Date.now() - started} ms: ${JSON.stringify(timeline)}`);

  const viewer = await launchBrowser('simulcast-viewer');
  browsers.push(viewer);
  await openWhepPlayer(viewer.page, server.base, room);
  // One video m-line only: the three layers are one track.
  const videoLines = await viewer.page.evaluate(
    () => window.whep.pc.remoteDescription.sdp.split('\r\n').filter((l) => l.startsWith('m=video')).length);
  assert.equal(videoLines, 1);
  const viewStarted = Date.now();
  await waitForGrowth('the viewer decoding the highest layer, 1280x720', () => inboundStats(viewer.page, 'window.whep.pc'), (b, a) => {
    const video = Object.entries(a).find(([, s]) => s.kind === 'video');
    if (!video) return 'no video yet';
    const [mid, v] = video;
    if (!(v.framesDecoded > (b[mid]?.framesDecoded ?? 0))) return 'not decoding';
    return v.frameWidth === 1280 && v.frameHeight === 720 ? null : `decoding ${v.frameWidth}x${v.frameHeight}`;
  });
  console.log(`viewer decoding 1280x720 after ${Date.now() - viewStarted} ms`);
  // The one stream keeps decoding without a freeze of its own making.
  const first = await inboundStats(viewer.page, 'window.whep.pc');
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const second = await inboundStats(viewer.page, 'window.whep.pc');
  const [mid, v] = Object.entries(second).find(([, s]) => s.kind === 'video');
  const decoded = v.framesDecoded - first[mid].framesDecoded;
  console.log(`decoded ${decoded} frames in 3 s; freezes ${v.freezeCount ?? 'n/a'}`);
  assert.ok(decoded >= 45, `only ${decoded} frames decoded in 3 s`);

  // A WHEP player may ask for a lower layer with `?layer=` (0: the lowest): it decodes that.
  const small = await launchBrowser('simulcast-viewer-layer0');
  browsers.push(small);
  await small.page.goto(`${server.base}/healthz`);
  await small.page.evaluate(async (url) => {
    const { whepPlay } = await import('/lib/whip.js');
    const session = await whepPlay(url);
    window.whep = { pc: session.pc };
  }, `/whep/${room}?layer=0`);
  await waitForGrowth('the ?layer=0 viewer decoding the lowest layer, 320x180', () => inboundStats(small.page, 'window.whep.pc'), (b, a) => {
    const video = Object.entries(a).find(([, s]) => s.kind === 'video');
    if (!video) return 'no video yet';
    const [mid, v] = video;
    if (!(v.framesDecoded > (b[mid]?.framesDecoded ?? 0))) return 'not decoding';
    return v.frameWidth === 320 && v.frameHeight === 180 ? null : `decoding ${v.frameWidth}x${v.frameHeight}`;
  });
  assert.deepEqual(publisher.problems, []);
});
