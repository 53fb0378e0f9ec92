// aiortc (an independent WebRTC implementation in Python, PyPI) both ways: it publishes a
// synthetic camera (VP8) and a tone (Opus) with WHIP, which Chromium plays with WHEP at the
// size aiortc encodes; and it plays a Chromium WHIP publisher with WHEP, decoding its video
// and audio. The peer is aiortc_peer.py beside this file (scripts/browser-test.sh installs
// aiortc with pip).

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
