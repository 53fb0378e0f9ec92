// FFmpeg's WHIP muxer (FFmpeg 9, the usual command-line publisher) publishes H264 and Opus
// into a room, and Chromium plays it with WHEP: the frames it decodes have the size FFmpeg
// encodes. FFmpeg offers `a=setup:passive` by default (Sluice is then the DTLS client) and
// `a=setup:active` with `-whip_flags dtls_active`; both are tested.
//
// The FFmpeg binary is FFMPEG_WHIP_BIN, or the one the PyPI package imageio-ffmpeg ships
// (scripts/browser-test.sh installs it); Debian's FFmpeg 5.1 has no WHIP muxer.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { inboundStats, launchBrowser, startServer, waitForGrowth } from './harness.mjs';
import { decodingAt, ffmpegBinary, openWhepPlayer, runPeer } from './peers.mjs';

const WIDTH = 640;
const HEIGHT = 360;

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
const browsers = [];
const children = [];

before(async () => {
  server = await startServer('ffmpeg-whip');
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(browsers.map((b) => b.close()));
  await server?.stop();
});

/** Starts FFmpeg publishing a test pattern and a tone for `seconds` to `url`. */
function publish(label, url, seconds, extra) {
  return runPeer(label, ffmpegBinary(), [
    '-hide_banner', '-nostats', '-loglevel', 'info',
    '-re', '-f', 'lavfi', '-i', `testsrc=size=${WIDTH}x${HEIGHT}:rate=30`,
    '-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(seconds),
    '-c:v', 'libx264', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p', '-tune', 'zerolatency',
    '-g', '30', '-b:v', '800k',
    '-c:a', 'libopus', '-ar', '48000', '-ac', '2',
    ...extra,
    '-f', 'whip', url,
  ], children);
}

for (const [mode, extra] of [['passive', []], ['active', ['-whip_flags', 'dtls_active']]]) {
  test(`FFmpeg WHIP (setup:${mode}) is played by Chromium at the size it encodes`, async () => {
    const room = `ffmpeg-${mode}-${process.pid}`;
    const started = Date.now();
    const ffmpeg = publish(`ffmpeg-${mode}`, `${server.base}/whip/${room}`, 12, extra);
    const viewer = await launchBrowser(`ffmpeg-${mode}-viewer`);
    browsers.push(viewer);
    await openWhepPlayer(viewer.page, server.base, room);
    const stats = await waitForGrowth(
      'FFmpeg video decoding at its size and audio arriving',
      () => inboundStats(viewer.page, 'window.whep.pc'),
      decodingAt(WIDTH, HEIGHT),
    );
    console.log(`setup:${mode}: decoding ${WIDTH}x${HEIGHT} ${Date.now() - started} ms after FFmpeg started`, stats);
    // At the end of its input FFmpeg ends its session with DELETE and exits 0.
    assert.equal((await ffmpeg.exited).code, 0, 'FFmpeg exits cleanly');
    assert.deepEqual(viewer.problems, []);
  });
}
