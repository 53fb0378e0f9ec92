// WHIP in, WHEP out: one page publishes the fake camera and microphone with a plain POST of
// a complete offer, another plays the room with WHEP and decodes the video.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { inboundStats, launchBrowser, startServer, waitFor, waitForGrowth } from './harness.mjs';

const ROOM = `whip-${process.pid}`;
/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
const browsers = [];

before(async () => {
  server = await startServer('whip');
});

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
  await server?.stop();
});

test('a WHIP publisher is played by a WHEP viewer', async () => {
  const publisher = await launchBrowser('whip-publisher');
  browsers.push(publisher);
  await publisher.page.goto(`${server.base}/app/whip.html?room=${ROOM}&name=camera`);
  const location = await waitFor('the WHIP resource', () =>
    publisher.page.evaluate(() => {
      if (window.whip?.error) throw new Error(window.whip.error);
      return window.whip?.session?.location ?? '';
    }));
  assert.match(new URL(location).pathname, new RegExp(`^/whip/${ROOM}/[^/]+$`));
  await waitFor('the WHIP connection', () =>
    publisher.page.evaluate(() => window.whip.pc.connectionState === 'connected'));

  const viewer = await launchBrowser('whep-viewer');
  browsers.push(viewer);
  await viewer.page.goto(`${server.base}/app/whep.html?room=${ROOM}`);
  await waitFor('the WHEP session', () =>
    viewer.page.evaluate(() => {
      if (window.whep?.error) throw new Error(window.whep.error);
      return Boolean(window.whep?.pc);
    }));
  await waitForGrowth(
    'WHEP video decoding and audio arriving',
    () => inboundStats(viewer.page, 'window.whep.pc'),
    (before, after) => {
      const streams = Object.entries(after);
      const video = streams.find(([, s]) => s.kind === 'video');
      const audio = streams.find(([, s]) => s.kind === 'audio');
      if (!video || !audio) return 'no inbound video and audio yet';
      if (!(video[1].framesDecoded > (before[video[0]]?.framesDecoded ?? 0))) {
        return `video not decoding (framesDecoded ${video[1].framesDecoded})`;
      }
      if (!(audio[1].packetsReceived > (before[audio[0]]?.packetsReceived ?? 0))) {
        return `audio not arriving (packetsReceived ${audio[1].packetsReceived})`;
      }
      return null;
    },
  );
  assert.deepEqual(publisher.problems, []);
  assert.deepEqual(viewer.problems, []);
});
