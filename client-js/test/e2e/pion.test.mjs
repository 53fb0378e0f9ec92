// Pion (Go, Debian's golang-github-pion-webrtc.v3-dev 3.1) both ways, and for long: Pion
// sends ICE binding requests only while a path is otherwise idle, so a two-minute run of a
// Pion WHIP publisher and a Pion WHEP player, with media flowing all the time, is the check
// that media alone keeps a session alive (Sluice's consent timeout is 30 s). Chromium plays
// the Pion publisher at the size Pion sends, and Pion plays a Chromium WHIP publisher.
//
// The peer is pion_peer/main.go beside this file, built by pion_peer/build.sh; the media it
// publishes (VP8 in IVF, Opus in Ogg) is made with FFmpeg at the start.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { artifactsDir, inboundStats, launchBrowser, startServer, waitFor, waitForGrowth } from './harness.mjs';
import { decodingAt, ffmpegBinary, openWhepPlayer, runPeer } from './peers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const PEER = path.join(artifactsDir, 'pion_peer');
const VIDEO = path.join(artifactsDir, 'pion-video.ivf');
const AUDIO = path.join(artifactsDir, 'pion-audio.ogg');
const WIDTH = 640;
const HEIGHT = 360;
/** Four consent timeouts and more. */
const LONG_RUN_S = Number(process.env.PION_RUN_SECONDS ?? 120);

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
const browsers = [];
const children = [];

before(async () => {
  execFileSync(path.join(here, 'pion_peer', 'build.sh'), [PEER], { stdio: 'inherit' });
  const encode = (args) => execFileSync(ffmpegBinary(), ['-hide_banner', '-loglevel', 'error', '-y', ...args]);
  encode(['-f', 'lavfi', '-i', `testsrc=size=${WIDTH}x${HEIGHT}:rate=30`, '-t', '10', '-c:v', 'libvpx',
    '-b:v', '600k', '-g', '30', '-deadline', 'realtime', '-cpu-used', '8', '-f', 'ivf', VIDEO]);
  encode(['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '10', '-c:a', 'libopus',
    '-page_duration', '20000', '-ac', '2', AUDIO]);
  server = await startServer('pion');
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(browsers.map((b) => b.close()));
  await server?.stop();
});

/** Runs pion_peer; resolves with its exit code and the JSON line it printed. */
function pion(label, args) {
  return runPeer(`${label}-pion`, PEER, args, children).exited;
}

test(`a Pion publisher and a Pion player run ${LONG_RUN_S} s without a session ending`, { timeout: (LONG_RUN_S + 90) * 1000 }, async () => {
  const room = `pion-${process.pid}`;
  const publisher = pion('pion-publisher', [
    'publish', `${server.base}/whip/${room}`, '-video', VIDEO, '-audio', AUDIO, '-seconds', String(LONG_RUN_S + 5),
  ]);
  // Chromium sees the Pion publisher at the size it sends.
  const viewer = await launchBrowser('pion-viewer');
  browsers.push(viewer);
  await openWhepPlayer(viewer.page, server.base, room);
  const stats = await waitForGrowth(
    'Pion video decoding at its size and audio arriving',
    () => inboundStats(viewer.page, 'window.whep.pc'),
    decodingAt(WIDTH, HEIGHT),
  );
  console.log('Chromium playing Pion', stats);
  await viewer.close();

  const player = await pion('pion-player', ['play', `${server.base}/whep/${room}`, '-seconds', String(LONG_RUN_S)]);
  const published = await publisher;
  console.log('Pion player', player.report, '; Pion publisher', published.report);
  assert.equal(player.code, 0, 'the Pion player exits cleanly');
  assert.equal(published.code, 0, 'the Pion publisher exits cleanly');
  // Media reached the player up to the end: no session (the player's, or the publisher's
  // and its players with it) was ended on the way.
  assert.ok(player.report.last_video_ms >= (LONG_RUN_S - 2) * 1000,
    `the last video packet came at ${player.report.last_video_ms} ms of ${LONG_RUN_S * 1000}`);
  assert.ok(player.report.video_packets > LONG_RUN_S * 30, `video packets ${player.report.video_packets}`);
  assert.ok(player.report.audio_packets > LONG_RUN_S * 40, `audio packets ${player.report.audio_packets}`);
  assert.deepEqual([player.report.width, player.report.height], [WIDTH, HEIGHT]);
  assert.equal(player.report.connection, 'connected', 'the player never disconnected');
  assert.equal(published.report.connection, 'connected', 'the publisher never disconnected');
  assert.equal(player.report.delete_status, 200);
  assert.equal(published.report.delete_status, 200);
});

test('Pion plays a Chromium WHIP publisher with WHEP', async () => {
  const room = `pion-play-${process.pid}`;
  const publisher = await launchBrowser('pion-chromium-publisher');
  browsers.push(publisher);
  await publisher.page.goto(`${server.base}/app/whip.html?room=${room}&name=camera`);
  await waitFor('the WHIP connection', () => publisher.page.evaluate(() => {
    if (window.whip?.error) throw new Error(window.whip.error);
    return window.whip?.pc?.connectionState === 'connected';
  }));
  const { code, report } = await pion('pion-player-of-chromium', ['play', `${server.base}/whep/${room}`, '-seconds', '8']);
  console.log('Pion playing Chromium', report);
  assert.equal(code, 0);
  assert.ok(report.video_packets > 100, `video packets ${report.video_packets}`);
  assert.ok(report.audio_packets > 200, `audio packets ${report.audio_packets}`);
  assert.ok(report.keyframes >= 1 && report.width > 0 && report.height > 0,
    `a keyframe of ${report.width}x${report.height}`);
  assert.equal(report.delete_status, 200);
  assert.deepEqual(publisher.problems, []);
});
