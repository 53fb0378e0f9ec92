// What a publisher's viewers get depends first on what the publisher dares to send: a
// browser's send-side estimator ramps up only when its packets are acknowledged with
// transport-wide congestion-control feedback. A Chromium publishing its fake camera at
// 1280x720 over WHIP must reach an available outgoing bitrate of 2 Mbit/s (measured: after
// 1 to 7 s; without feedback it falls to about 30 kbit/s at 320 px; the bound is 15 s so that
// a loaded machine does not fail it), then send 1280 px wide: Chromium raises the resolution
// in its own steps (320, 480, 640, 960, 1280 px, about 23 s on the test machine, as with a
// basic Pion fan-out SFU; the bound is 60 s). A WHEP viewer then decodes it at that size.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { inboundStats, launchBrowser, startServer, waitFor, waitForGrowth } from './harness.mjs';
import { openWhepPlayer } from './peers.mjs';

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
const browsers = [];

before(async () => {
  server = await startServer('publisher-quality');
});

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  await server?.stop();
});

/** Publishes the page's fake camera at 1280x720 and its microphone over WHIP into `room`. */
function publishCamera(page, room) {
  return page.evaluate(async (url) => {
    const { whipPublish } = await import('/lib/whip.js');
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: 1280, height: 720, frameRate: 30 },
    });
    const session = await whipPublish(url, stream);
    window.publisher = session.pc;
  }, `/whip/${room}`);
}

/** The publisher's estimate and what it sends of its video. */
function sending(page) {
  return page.evaluate(async () => {
    const stats = await window.publisher.getStats();
    const out = { availableOutgoingBitrate: 0, frameWidth: 0, bytesSent: 0, limitation: '' };
    stats.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) {
        out.availableOutgoingBitrate = s.availableOutgoingBitrate;
      }
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        out.frameWidth = s.frameWidth ?? 0;
        out.bytesSent = s.bytesSent;
        out.limitation = s.qualityLimitationReason;
      }
    });
    return out;
  });
}

test('a Chromium WHIP publisher gets 2 Mbit/s and sends 1280 px', { timeout: 120_000 }, async () => {
  const room = `quality-${process.pid}`;
  const publisher = await launchBrowser('quality-publisher');
  browsers.push(publisher);
  // A page of the server that publishes nothing itself (the WHIP page would add a stream).
  await publisher.page.goto(`${server.base}/healthz`);
  const started = Date.now();
  await publishCamera(publisher.page, room);
  let last;
  const timeline = [];
  const sample = async () => {
    last = await sending(publisher.page);
    timeline.push([Date.now() - started, Math.round(last.availableOutgoingBitrate / 1000), last.frameWidth]);
    return last;
  };
  const failWith = (error) => {
    throw new Error(`${error.message}; [ms, kbit/s available, width sent]: ${JSON.stringify(timeline)}`);
  };
  await waitFor('2 Mbit/s available', async () => (await sample()).availableOutgoingBitrate >= 2_000_000,
    { timeoutMs: 15_000, intervalMs: 500 }).catch(failWith);
  const available = Date.now() - started;
  const reached = await waitFor('1280 px sent', async () => ((await sample()).frameWidth === 1280 ? last : null),
    { timeoutMs: 60_000, intervalMs: 1000 }).catch(failWith);
  console.log(`2 Mbit/s available after ${available} ms; 1280 px after ${Date.now() - started} ms`);
  console.log(JSON.stringify(timeline));
  const before = await sending(publisher.page);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const after = await sending(publisher.page);
  const kbps = ((after.bytesSent - before.bytesSent) * 8) / 2000;
  console.log(`after ${Date.now() - started} ms:`, reached, `; sending ${kbps.toFixed(0)} kbit/s of video`);

  const viewer = await launchBrowser('quality-viewer');
  browsers.push(viewer);
  await openWhepPlayer(viewer.page, server.base, room);
  await waitForGrowth('the viewer decoding 1280x720', () => inboundStats(viewer.page, 'window.whep.pc'), (b, a) => {
    const video = Object.entries(a).find(([, s]) => s.kind === 'video');
    if (!video) return 'no video yet';
    const [mid, v] = video;
    if (!(v.framesDecoded > (b[mid]?.framesDecoded ?? 0))) return 'not decoding';
    return v.frameWidth === 1280 && v.frameHeight === 720 ? null : `decoding ${v.frameWidth}x${v.frameHeight}`;
  });
  assert.deepEqual(publisher.problems, []);
});

test('with --max-publish-bitrate the publisher stays under the cap (REMB)', { timeout: 120_000 }, async () => {
  const capped = await startServer('publisher-quality-capped', { args: ['--max-publish-bitrate', '600000'] });
  try {
    const room = `capped-${process.pid}`;
    const publisher = await launchBrowser('capped-publisher');
    browsers.push(publisher);
    await publisher.page.goto(`${capped.base}/healthz`);
    await publishCamera(publisher.page, room);
    // Long enough for an uncapped publisher to reach 2 Mbit/s (the test above: 1 to 7 s).
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    const before = await sending(publisher.page);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const after = await sending(publisher.page);
    const kbps = ((after.bytesSent - before.bytesSent) * 8) / 3000;
    console.log(`capped at 600 kbit/s: ${Math.round(after.availableOutgoingBitrate / 1000)} kbit/s available, sending ${kbps.toFixed(0)} kbit/s of video at ${after.frameWidth} px`);
    assert.ok(after.availableOutgoingBitrate <= 600_000, `${after.availableOutgoingBitrate} bit/s available`);
    assert.ok(kbps <= 660, `${kbps} kbit/s of video sent`);
    assert.ok(kbps > 100, `${kbps} kbit/s: the publisher still sends`);
    assert.deepEqual(publisher.problems, []);
  } finally {
    await capped.stop();
  }
});

test('a room limit set through the admin API caps a publisher already sending, and lifting it frees it', { timeout: 120_000 }, async () => {
  const room = `limited-${process.pid}`;
  const publisher = await launchBrowser('limited-publisher');
  browsers.push(publisher);
  await publisher.page.goto(`${server.base}/healthz`);
  await publishCamera(publisher.page, room);
  await waitFor('1.5 Mbit/s available before the limit', async () =>
    (await sending(publisher.page)).availableOutgoingBitrate >= 1_500_000, { timeoutMs: 15_000, intervalMs: 500 });
  const limit = async (maxPublishBitrate) => {
    const response = await fetch(`${server.base}/api/rooms/${room}/limits`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ maxPublishBitrate }),
    });
    assert.equal(response.status, 200, await response.text());
  };
  const asked = Date.now();
  await limit(400_000);
  await waitFor('at most 400 kbit/s available', async () =>
    (await sending(publisher.page)).availableOutgoingBitrate <= 400_000, { timeoutMs: 5000, intervalMs: 250 });
  const cappedAfter = Date.now() - asked;
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const before = await sending(publisher.page);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const after = await sending(publisher.page);
  const kbps = ((after.bytesSent - before.bytesSent) * 8) / 3000;
  console.log(`room limit 400 kbit/s: applied after ${cappedAfter} ms; ${Math.round(after.availableOutgoingBitrate / 1000)} kbit/s available, sending ${kbps.toFixed(0)} kbit/s of video at ${after.frameWidth} px`);
  assert.ok(after.availableOutgoingBitrate <= 400_000, `${after.availableOutgoingBitrate} bit/s available`);
  assert.ok(kbps <= 440, `${kbps} kbit/s of video sent under a 400 kbit/s limit`);
  assert.ok(kbps > 100, `${kbps} kbit/s: the publisher still sends`);

  const lifted = Date.now();
  await limit(null);
  await waitFor('over 1 Mbit/s available once lifted', async () =>
    (await sending(publisher.page)).availableOutgoingBitrate > 1_000_000, { timeoutMs: 20_000, intervalMs: 500 });
  console.log(`limit lifted: over 1 Mbit/s available after ${Date.now() - lifted} ms`);
  assert.deepEqual(publisher.problems, []);
});
