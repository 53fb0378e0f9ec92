// What the tests of independent WebRTC peers share (FFmpeg, aiortc, Pion): where FFmpeg 9 is,
// running a peer process that reports one JSON line, opening the WHEP player once the room
// has a publisher, and the check that it decodes video at the size the peer sends.

import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { artifactsDir, waitFor } from './harness.mjs';

/** FFMPEG_WHIP_BIN, or the FFmpeg 9 that the PyPI package imageio-ffmpeg ships. */
export function ffmpegBinary() {
  if (process.env.FFMPEG_WHIP_BIN) return process.env.FFMPEG_WHIP_BIN;
  try {
    return execFileSync('python3', ['-c', 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())'], {
      encoding: 'utf8',
    }).trim();
  } catch {
    throw new Error('no FFmpeg with a WHIP muxer: set FFMPEG_WHIP_BIN or pip install imageio-ffmpeg');
  }
}

/**
 * Runs a peer process whose output goes to artifacts/<label>.log; `exited` resolves with
 * its exit code and the JSON object of its last stdout line (`{}` if there is none).
 * @param {string} label
 * @param {string} command
 * @param {string[]} args
 * @param {import('node:child_process').ChildProcess[]} children where to keep it for cleanup
 */
export function runPeer(label, command, args, children) {
  const log = createWriteStream(path.join(artifactsDir, `${label}.log`));
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
    log.write(chunk);
  });
  child.stderr.pipe(log);
  const exited = new Promise((resolve) => child.once('exit', (code) => {
    const line = out.trim().split('\n').pop() || '{}';
    let report;
    try {
      report = JSON.parse(line);
    } catch {
      report = { unparsed: line };
    }
    resolve({ code, report });
  }));
  return { child, exited };
}

/** Opens /app/whep.html on `room`, again until the room has a publisher to play. */
export async function openWhepPlayer(page, base, room) {
  await waitFor(`a WHEP session on ${room}`, async () => {
    await page.goto(`${base}/app/whep.html?room=${room}`);
    return page.waitForFunction(() => window.whep?.pc || window.whep?.error, null, { timeout: 5000 })
      .then(() => page.evaluate(() => Boolean(window.whep.pc)));
  }, { timeoutMs: 20000, intervalMs: 500 });
}

/**
 * A `waitForGrowth` check over `inboundStats`: video decoding now at `width`x`height`, and
 * audio arriving.
 */
export function decodingAt(width, height) {
  return (before, after) => {
    const streams = Object.entries(after);
    const video = streams.find(([, s]) => s.kind === 'video');
    const audio = streams.find(([, s]) => s.kind === 'audio');
    if (!video || !audio) return 'no inbound video and audio yet';
    const [mid, v] = video;
    if (!(v.framesDecoded > (before[mid]?.framesDecoded ?? 0))) return `video not decoding (framesDecoded ${v.framesDecoded})`;
    if (v.frameWidth !== width || v.frameHeight !== height) {
      return `video decodes at ${v.frameWidth}x${v.frameHeight}, not ${width}x${height}`;
    }
    if (!(audio[1].packetsReceived > (before[audio[0]]?.packetsReceived ?? 0))) {
      return `audio not arriving (packetsReceived ${audio[1].packetsReceived})`;
    }
    return null;
  };
}
