// WHIP publishing and WHEP playback (RFC 9725 and the WHEP draft) against Sluice: one
// complete offer POSTed as application/sdp, the answer in the 201 response, DELETE on the
// Location to stop. No trickle: Sluice is ICE-lite and wants complete offers.

import { iceGatheringComplete } from './sluice.js';

/**
 * @typedef {{pc: RTCPeerConnection, location: string, etag: string | null,
 *   stop: () => Promise<void>}} HttpSession
 */

/**
 * POSTs the complete local offer of `pc` to `url` and applies the answer. With `token`, the
 * POST carries it as `Authorization: Bearer` (RFC 9725 section 4.5); the resource URL it
 * gets back is its own credential for DELETE.
 * @param {RTCPeerConnection} pc
 * @param {string} url
 * @param {string} [token]
 * @returns {Promise<HttpSession>}
 */
async function exchange(pc, url, token) {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await iceGatheringComplete(pc);
  /** @type {Record<string, string>} */
  const headers = { 'Content-Type': 'application/sdp' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body: pc.localDescription?.sdp ?? offer.sdp,
  });
  const body = await response.text();
  if (response.status !== 201) {
    pc.close();
    let reason = body;
    try {
      reason = JSON.parse(body).error ?? body;
    } catch {
      // Not JSON: keep the text.
    }
    throw new Error(`${url}: HTTP ${response.status} ${reason}`);
  }
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  const location = new URL(response.headers.get('Location') ?? url, response.url).href;
  return {
    pc,
    location,
    etag: response.headers.get('ETag'),
    async stop() {
      pc.close();
      await fetch(location, { method: 'DELETE' }).catch(() => {});
    },
  };
}

/**
 * The simulcast layers for a camera track: three (a quarter, half and full size, rids `q`,
 * `h` and `f`) from 960 px wide, two from 480 px, none below (`undefined`: send one layer).
 * The server binds each layer by its rid and forwards one to each viewer.
 * @param {MediaStreamTrack} track
 * @returns {RTCRtpEncodingParameters[] | undefined}
 */
export function simulcastEncodings(track) {
  const width = track.getSettings().width ?? 0;
  if (width >= 960) {
    return [
      { rid: 'q', scaleResolutionDownBy: 4 },
      { rid: 'h', scaleResolutionDownBy: 2 },
      { rid: 'f', scaleResolutionDownBy: 1 },
    ];
  }
  if (width >= 480) {
    return [
      { rid: 'h', scaleResolutionDownBy: 2 },
      { rid: 'f', scaleResolutionDownBy: 1 },
    ];
  }
  return undefined;
}

/**
 * Publishes `stream`'s tracks with WHIP, e.g. to `/whip/lobby`.
 * @param {string} url
 * @param {MediaStream} stream
 * @param {RTCConfiguration} [config]
 * @param {{token?: string, simulcast?: boolean}} [options] an access token, when the server
 *   requires one; `simulcast`: send video as simulcast layers ({@link simulcastEncodings})
 */
export function whipPublish(url, stream, config = {}, { token, simulcast = false } = {}) {
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', ...config });
  for (const track of stream.getTracks()) {
    const init = { direction: 'sendonly', streams: [stream] };
    const encodings = simulcast && track.kind === 'video' ? simulcastEncodings(track) : undefined;
    if (encodings) init.sendEncodings = encodings;
    pc.addTransceiver(track, init);
  }
  return exchange(pc, url, token);
}

/**
 * Plays a room (`/whep/{room}`) or one participant (`/whep/{room}/{id}`) with WHEP. The
 * received tracks are in `stream`, which is filled as they arrive.
 * @param {string} url
 * @param {RTCConfiguration} [config]
 * @param {{token?: string}} [options] an access token, when the server requires one
 * @returns {Promise<HttpSession & {stream: MediaStream}>}
 */
export async function whepPlay(url, config = {}, { token } = {}) {
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', ...config });
  const stream = new MediaStream();
  for (const kind of ['audio', 'video']) {
    const { receiver } = pc.addTransceiver(kind, { direction: 'recvonly' });
    stream.addTrack(receiver.track);
  }
  return { ...(await exchange(pc, url, token)), stream };
}
