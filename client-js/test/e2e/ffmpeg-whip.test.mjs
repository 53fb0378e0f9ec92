// FFmpeg's WHIP muxer (FFmpeg 9, the usual command-line publisher) publishes H264 and Opus
// into a room, and Chromium plays it with WHEP: the frames it decodes have the size FFmpeg
// encodes. FFmpeg offers `a=setup:passive` by default (Sluice is then the DTLS client) and
// `a=setup:active` with `-whip_flags dtls_active`; both are tested.
//
// The FFmpeg binary is FFMPEG_WHIP_BIN, or the one the PyPI package imageio-ffmpeg ships
// (scripts/browser-test.sh installs it); Debian's FFmpeg 5.1 has no WHIP muxer.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { artifactsDir, inboundStats, launchBrowser, startServer, waitFor, waitForGrowth } from './harness.mjs';

const WIDTH = 640;
const HEIGHT = 360;

function ffmpegBinary() {
  if (process.env.FFMPEG_WHIP_BIN) return process.env.FFMPEG_WHIP_BIN;
  try {
    return execFileSync('python3', ['-c', 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())'], {
      encoding: 'utf8',
    }).trim();
  } catch {
    throw new Error('no FFmpeg with a WHIP muxer: set FFMPEG_WHIP_BIN or pip install imageio-ffmpeg');
  }
}

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
  const log = createWriteStream(path.join(artifactsDir, `${label}-ffmpeg.log`));
  const child = spawn(ffmpegBinary(), [
    '-hide_banner', '-nostats', '-loglevel', 'info',
    '-re', '-f', 'lavfi', '-i', `testsrc=size=${WIDTH}x${HEIGHT}:rate=30`,
    '-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(seconds),
    '-c:v', 'libx264', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p', '-tune', 'zerolatency',
    '-g', '30', '-b:v', '800k',
    '-c:a', 'libopus', '-ar', '48000', '-ac', '2',
    ...extra,
    '-f', 'whip', url,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited };
}

/** Opens the WHEP player on `room` once the room has a publisher to play. */
async function play(viewer, room) {
  await waitFor(`a WHEP session on ${room}`, async () => {
    await viewer.page.goto(`${server.base}/app/whep.html?room=${room}`);
    return viewer.page.waitForFunction(() => window.whep?.pc || window.whep?.error, null, { timeout: 5000 })
      .then(() => viewer.page.evaluate(() => Boolean(window.whep.pc)));
  }, { timeoutMs: 20000, intervalMs: 500 });
}

for (const [mode, extra] of [['passive', []], ['active', ['-whip_flags', 'dtls_active']]]) {
  test(`FFmpeg WHIP (setup:${mode}) is played by Chromium at the size it encodes`, async () => {
    const room = `ffmpeg-${mode}-${process.pid}`;
    const started = Date.now();
    const ffmpeg = publish(`ffmpeg-${mode}`, `${server.base}/whip/${room}`, 12, extra);
    const viewer = await launchBrowser(`ffmpeg-${mode}-viewer`);
    browsers.push(viewer);
    await play(viewer, room);
    const stats = await waitForGrowth(
      'FFmpeg video decoding at its size and audio arriving',
      () => inboundStats(viewer.page, 'window.whep.pc'),
      (before, after) => {
        const streams = Object.entries(after);
        const video = streams.find(([, s]) => s.kind === 'video');
        const audio = streams.find(([, s]) => s.kind === 'audio');
        if (!video || !audio) return 'no inbound video and audio yet';
        const [mid, v] = video;
        if (!(v.framesDecoded > (before[mid]?.framesDecoded ?? 0))) {
          return `video not decoding (framesDecoded ${v.framesDecoded})`;
        }
        if (v.frameWidth !== WIDTH || v.frameHeight !== HEIGHT) {
          return `video decodes at ${v.frameWidth}x${v.frameHeight}, not ${WIDTH}x${HEIGHT}`;
        }
        if (!(audio[1].packetsReceived > (before[audio[0]]?.packetsReceived ?? 0))) {
          return `audio not arriving (packetsReceived ${audio[1].packetsReceived})`;
        }
        return null;
      },
    );
    console.log(`setup:${mode}: decoding ${WIDTH}x${HEIGHT} ${Date.now() - started} ms after FFmpeg started`, stats);
    // At the end of its input FFmpeg ends its session with DELETE and exits 0.
    assert.equal(await ffmpeg.exited, 0, 'FFmpeg exits cleanly');
    assert.deepEqual(viewer.problems, []);
  });
}
