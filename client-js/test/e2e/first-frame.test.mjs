// How fast a joiner sees video: a WHEP viewer joins a running Chromium publisher (1280x720
// fake camera, with and without simulcast) five times in a row, and each time the time from
// its connection completing (ICE and DTLS: `connectionState` `connected`) to its first
// decoded video frame is measured, with the time from its POST to that frame. The server
// asks the publisher for a keyframe when a subscription starts (throttled per layer), so a
// joiner waits about one round trip plus a keyframe's encoding and sending, not for the
// publisher's next periodic keyframe. The bound asserted is generous (5 s); the figures
// are printed and kept in docs/benchmarks.md.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, startServer, waitFor } from './harness.mjs';

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
const browsers = [];

before(async () => {
  server = await startServer('first-frame');
});

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  await server?.stop();
});

async function publish(room, simulcast) {
  const publisher = await launchBrowser(`first-frame-publisher-${simulcast ? 'simulcast' : 'single'}`);
  browsers.push(publisher);
  await publisher.page.goto(`${server.base}/healthz`);
  await publisher.page.evaluate(async ([url, simulcast]) => {
    const { whipPublish } = await import('/lib/whip.js');
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: 1280, height: 720, frameRate: 30 },
    });
    const session = await whipPublish(url, stream, {}, { simulcast });
    window.publisher = session.pc;
  }, [`/whip/${room}`, simulcast]);
  await waitFor('the publisher connected', () => publisher.page.evaluate(() => window.publisher.connectionState === 'connected'));
  // Past the publisher's start-up, as a joiner of a running call finds it.
  await new Promise((resolve) => setTimeout(resolve, 5000));
  return publisher;
}

/** One WHEP join on `page`: ms from POST to connected, from connected to the first decoded frame. */
function joinOnce(page, room) {
  return page.evaluate(async (url) => {
    const { whepPlay } = await import('/lib/whip.js');
    const posted = performance.now();
    const session = await whepPlay(url);
    const { pc } = session;
    const connectedAt = await new Promise((resolve, reject) => {
      const check = () => {
        if (pc.connectionState === 'connected') resolve(performance.now());
        if (pc.connectionState === 'failed') reject(new Error('the connection failed'));
      };
      pc.addEventListener('connectionstatechange', check);
      check();
    });
    let decodedAt = null;
    let width = 0;
    for (let i = 0; i < 500 && decodedAt === null; i += 1) {
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video' && (s.framesDecoded ?? 0) > 0) {
          decodedAt = performance.now();
          width = s.frameWidth ?? 0;
        }
      });
      if (decodedAt === null) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await session.stop().catch(() => {});
    return {
      toConnected: Math.round(connectedAt - posted),
      toFirstFrame: decodedAt === null ? null : Math.round(decodedAt - connectedAt),
      width,
    };
  }, `/whep/${room}`);
}

for (const simulcast of [true, false]) {
  test(`a WHEP joiner's first frame, ${simulcast ? 'simulcast' : 'one layer'}`, { timeout: 120_000 }, async () => {
    const room = `first-frame-${simulcast ? 's' : '1'}-${process.pid}`;
    const publisher = await publish(room, simulcast);
    const viewer = await launchBrowser(`first-frame-viewer-${simulcast ? 'simulcast' : 'single'}`);
    browsers.push(viewer);
    await viewer.page.goto(`${server.base}/healthz`);
    const joins = [];
    for (let i = 0; i < 5; i += 1) {
      joins.push(await joinOnce(viewer.page, room));
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
    console.log(`${simulcast ? 'simulcast' : 'one layer'}: ${JSON.stringify(joins)}`);
    for (const join of joins) {
      assert.ok(join.toFirstFrame !== null, 'a frame was decoded');
      assert.ok(join.toFirstFrame < 5000, `first frame ${join.toFirstFrame} ms after connecting`);
      assert.ok(join.width > 0, 'with a size');
    }
    assert.deepEqual(publisher.problems, []);
    assert.deepEqual(viewer.problems, []);
  });
}
