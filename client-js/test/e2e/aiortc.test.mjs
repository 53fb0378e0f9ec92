// aiortc (an independent WebRTC implementation in Python, PyPI) both ways: it publishes a
// synthetic camera (VP8) and a tone (Opus) with WHIP, which Chromium plays with WHEP at the
// size aiortc encodes; and it plays a Chromium WHIP publisher with WHEP, decoding its video
// and audio. The peer is aiortc_peer.py beside this file (scripts/browser-test.sh installs
// aiortc with pip). aiortc negotiates REMB and abs-send-time but not transport-wide feedback,
// so what it dares to send is what Sluice's receive-side estimate tells it with REMB.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inboundStats, launchBrowser, startServer, waitFor, waitForGrowth } from './harness.mjs';
import { decodingAt, openWhepPlayer, runPeer } from './peers.mjs';

const PEER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'aiortc_peer.py');
const WIDTH = 640;
const HEIGHT = 360;

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
const browsers = [];
const children = [];

before(async () => {
  server = await startServer('aiortc');
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(browsers.map((b) => b.close()));
  await server?.stop();
});

/** Runs aiortc_peer.py; resolves with its exit code and the JSON line it printed. */
function aiortc(label, args) {
  return runPeer(`${label}-aiortc`, 'python3', [PEER, ...args], children).exited;
}

test('aiortc publishes with WHIP and Chromium plays it at the size aiortc encodes', async () => {
  const room = `aiortc-pub-${process.pid}`;
  const publisher = aiortc('aiortc-publisher', [
    'publish', `${server.base}/whip/${room}`, '--seconds', '14', '--width', String(WIDTH), '--height', String(HEIGHT),
  ]);
  const viewer = await launchBrowser('aiortc-viewer');
  browsers.push(viewer);
  await openWhepPlayer(viewer.page, server.base, room);
  const stats = await waitForGrowth(
    'aiortc video decoding at its size and audio arriving',
    () => inboundStats(viewer.page, 'window.whep.pc'),
    decodingAt(WIDTH, HEIGHT),
  );
  console.log('Chromium playing aiortc', stats);
  const { code, report } = await publisher;
  assert.equal(code, 0, `aiortc publisher exit (${JSON.stringify(report)})`);
  assert.equal(report.delete_status, 200, 'DELETE of the WHIP resource');
  assert.deepEqual(viewer.problems, []);
});

test('aiortc plays a Chromium WHIP publisher with WHEP', async () => {
  const room = `aiortc-play-${process.pid}`;
  const publisher = await launchBrowser('aiortc-chromium-publisher');
  browsers.push(publisher);
  await publisher.page.goto(`${server.base}/app/whip.html?room=${room}&name=camera`);
  await waitFor('the WHIP connection', () => publisher.page.evaluate(() => {
    if (window.whip?.error) throw new Error(window.whip.error);
    return window.whip?.pc?.connectionState === 'connected';
  }));
  const { code, report } = await aiortc('aiortc-player', ['play', `${server.base}/whep/${room}`, '--seconds', '8']);
  console.log('aiortc playing Chromium', report);
  assert.equal(code, 0, 'aiortc player exit');
  assert.ok(report.video_frames >= 60, `aiortc decoded ${report.video_frames} video frames in 8 s`);
  assert.ok(report.width > 0 && report.height > 0, `decoded size ${report.width}x${report.height}`);
  assert.ok(report.audio_frames >= 100, `aiortc decoded ${report.audio_frames} audio frames in 8 s`);
  assert.equal(report.delete_status, 200, 'DELETE of the WHEP resource');
  assert.deepEqual(publisher.problems, []);
});

/** Bytes of video the page's WHEP player has received so far. */
function videoBytesReceived(page) {
  return page.evaluate(async () => {
    let bytes = 0;
    (await window.whep.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') bytes += s.bytesReceived;
    });
    return bytes;
  });
}

test('aiortc follows Sluice\'s REMB estimate from its 500 kbit/s start to over 1 Mbit/s', { timeout: 90_000 }, async () => {
  const room = `aiortc-remb-${process.pid}`;
  const publisher = aiortc('aiortc-remb-publisher', [
    'publish', `${server.base}/whip/${room}`, '--seconds', '40', '--width', '640', '--height', '360', '--noise',
  ]);
  const viewer = await launchBrowser('aiortc-remb-viewer');
  browsers.push(viewer);
  await openWhepPlayer(viewer.page, server.base, room);
  await waitForGrowth('aiortc noise decoding', () => inboundStats(viewer.page, 'window.whep.pc'), decodingAt(640, 360));
  // Kbit/s of video over each 2 s, until it passes 1 Mbit/s (aiortc's encoder caps at 1.5).
  const rates = [];
  const started = Date.now();
  let previous = await videoBytesReceived(viewer.page);
  while (Date.now() - started < 30_000) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const bytes = await videoBytesReceived(viewer.page);
    rates.push(Math.round(((bytes - previous) * 8) / 2000));
    previous = bytes;
    if (rates.at(-1) > 1000) break;
  }
  console.log(`aiortc video received, kbit/s per 2 s: ${JSON.stringify(rates)}`);
  assert.ok(rates.at(-1) > 1000, `aiortc never sent over 1 Mbit/s of video: ${JSON.stringify(rates)}`);
  assert.ok(rates[0] < 800, `aiortc started at its own 500 kbit/s: ${JSON.stringify(rates)}`);
  publisher.catch(() => {});
  assert.deepEqual(viewer.problems, []);
});
