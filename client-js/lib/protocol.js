// The room protocol's pure parts (docs/protocol.md): limits, validation of what the server
// sends, and the bookkeeping that maps subscribe m-lines to participants' tracks. Nothing
// here touches the DOM or WebRTC, so it runs under `node --test` as well as in the browser.

/** Limits the server enforces; checked here too so the user gets the reason at once. */
export const LIMITS = Object.freeze({
  roomChars: 64,
  nameChars: 64,
  chatChars: 1000,
});

/**
 * @typedef {{audio: boolean, video: boolean}} MuteState
 * @typedef {{id: string, kind: 'audio' | 'video', source: string}} TrackInfo
 * @typedef {{id: string, name: string, muted: MuteState, tracks: TrackInfo[],
 *   identity?: string}} ParticipantInfo
 * @typedef {{from: string, name: string, text: string, at: number}} ChatMessage
 * @typedef {{participant: string, track: string}} MidTarget
 * @typedef {Record<string, MidTarget>} TrackMap
 */

// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** Counts characters the way the server does (Unicode scalar values, not UTF-16 units). */
function charCount(text) {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

/**
 * Why a room name would be refused, or null when it is fine.
 * @param {string} room
 * @returns {string | null}
 */
export function roomNameProblem(room) {
  if (typeof room !== 'string') return 'room name must be text';
  const count = charCount(room);
  if (count < 1 || count > LIMITS.roomChars) {
    return `room name must be 1 to ${LIMITS.roomChars} characters`;
  }
  if (CONTROL_CHARS.test(room)) return 'room name must not contain control characters';
  return null;
}

/**
 * Why a display name would be refused, or null when it is fine.
 * @param {string} name
 * @returns {string | null}
 */
export function displayNameProblem(name) {
  if (typeof name !== 'string') return 'display name must be text';
  const count = charCount(name.trim());
  if (count < 1 || count > LIMITS.nameChars) {
    return `display name must be 1 to ${LIMITS.nameChars} characters`;
  }
  if (CONTROL_CHARS.test(name)) return 'display name must not contain control characters';
  return null;
}

/**
 * Why a chat message would be refused, or null when it is fine.
 * @param {string} text
 * @returns {string | null}
 */
export function chatTextProblem(text) {
  if (typeof text !== 'string') return 'chat message must be text';
  const count = charCount(text);
  if (count < 1 || count > LIMITS.chatChars) {
    return `chat message must be 1 to ${LIMITS.chatChars} characters`;
  }
  return null;
}

const isString = (v) => typeof v === 'string';
const isBool = (v) => typeof v === 'boolean';
const isKind = (v) => v === 'audio' || v === 'video';
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

/** @returns {MuteState | null} */
function parseMuted(value) {
  if (value === undefined) return { audio: false, video: false };
  if (!isObject(value)) return null;
  const audio = value.audio ?? false;
  const video = value.video ?? false;
  return isBool(audio) && isBool(video) ? { audio, video } : null;
}

/** @returns {TrackInfo[] | null} */
function parseTracks(value) {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return null;
  const tracks = [];
  for (const t of value) {
    if (!isObject(t) || !isString(t.id) || !isKind(t.kind)) return null;
    tracks.push({ id: t.id, kind: t.kind, source: isString(t.source) ? t.source : 'camera' });
  }
  return tracks;
}

/** @returns {ParticipantInfo | null} */
function parseParticipant(value) {
  if (!isObject(value) || !isString(value.id) || !isString(value.name)) return null;
  const muted = parseMuted(value.muted);
  const tracks = parseTracks(value.tracks);
  if (!muted || !tracks) return null;
  /** @type {ParticipantInfo} */
  const participant = { id: value.id, name: value.name, muted, tracks };
  // The identity of the participant's access token, when the server requires tokens.
  if (isString(value.identity)) participant.identity = value.identity;
  return participant;
}

/** @returns {ChatMessage | null} */
function parseChat(value) {
  if (!isObject(value) || !isString(value.from) || !isString(value.text)) return null;
  const name = isString(value.name) ? value.name : '';
  const at = typeof value.at === 'number' && Number.isFinite(value.at) ? value.at : Date.now();
  return { from: value.from, name, text: value.text, at };
}

/** @returns {TrackMap | null} */
function parseTrackMap(value) {
  if (value === undefined) return {};
  if (!isObject(value)) return null;
  /** @type {TrackMap} */
  const map = {};
  for (const [mid, target] of Object.entries(value)) {
    if (!isObject(target) || !isString(target.participant) || !isString(target.track)) {
      return null;
    }
    map[mid] = { participant: target.participant, track: target.track };
  }
  return map;
}

/**
 * Parses and checks one text frame from the server. Returns the message with only the
 * fields the protocol defines, or null when it is not JSON, has an unknown type or a field
 * of the wrong shape: a client must not trust what arrives over the wire.
 * @param {string} text
 * @returns {any | null}
 */
export function parseServerMessage(text) {
  let raw;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(raw) || !isString(raw.type)) return null;
  switch (raw.type) {
    case 'joined': {
      if (!isString(raw.id)) return null;
      const participants = [];
      for (const p of raw.participants ?? []) {
        const parsed = parseParticipant(p);
        if (!parsed) return null;
        participants.push(parsed);
      }
      const chat = [];
      for (const c of Array.isArray(raw.chat) ? raw.chat : []) {
        const parsed = parseChat(c);
        if (parsed) chat.push(parsed);
      }
      const joined = { type: 'joined', id: raw.id, room: isString(raw.room) ? raw.room : '', participants, chat };
      // The resume token for reconnecting, and on a resume this participant's own mute state.
      if (isString(raw.resume)) joined.resume = raw.resume;
      // Who is speaking now, if anyone.
      if (isString(raw.speaker)) joined.speaker = raw.speaker;
      if (raw.resumed === true) {
        joined.resumed = true;
        const muted = parseMuted(raw.muted);
        if (muted) joined.muted = muted;
      }
      return joined;
    }
    case 'participant_joined': {
      const participant = parseParticipant(raw.participant);
      return participant ? { type: raw.type, participant } : null;
    }
    case 'participant_left':
      return isString(raw.id) ? { type: raw.type, id: raw.id } : null;
    case 'speaker':
      return isString(raw.participant) ? { type: raw.type, participant: raw.participant } : null;
    case 'tracks': {
      const tracks = parseTracks(raw.tracks);
      return isString(raw.participant) && tracks
        ? { type: raw.type, participant: raw.participant, tracks }
        : null;
    }
    case 'mute': {
      if (!isString(raw.participant) || !isKind(raw.kind) || !isBool(raw.muted)) return null;
      const mute = { type: raw.type, participant: raw.participant, kind: raw.kind, muted: raw.muted };
      // An administrator's mute (docs/api.md) names the track and says who muted it.
      if (raw.by === 'admin') Object.assign(mute, { by: 'admin', track: isString(raw.track) ? raw.track : '' });
      return mute;
    }
    case 'published':
      return isString(raw.sdp) ? { type: raw.type, sdp: raw.sdp } : null;
    case 'subscribe': {
      const tracks = parseTrackMap(raw.tracks);
      if (!isString(raw.sdp) || !tracks) return null;
      // The first offer of a new subscribe connection (after `resubscribe`).
      return raw.new_session === true
        ? { type: raw.type, sdp: raw.sdp, tracks, newSession: true }
        : { type: raw.type, sdp: raw.sdp, tracks };
    }
    case 'chat': {
      const chat = parseChat(raw);
      return chat ? { type: raw.type, ...chat } : null;
    }
    case 'error':
      return {
        type: raw.type,
        code: isString(raw.code) ? raw.code : 'unknown',
        message: isString(raw.message) ? raw.message : '',
      };
    default:
      return null;
  }
}

/**
 * The name `publish.sources` gives an m-line: the camera stream's audio is the microphone.
 * @param {string} kind 'audio' or 'video'
 * @param {string} source 'camera' or 'screen', as the library tracks it
 * @returns {'microphone' | 'camera' | 'screen'}
 */
export function publishSource(kind, source) {
  if (source === 'screen') return 'screen';
  return kind === 'audio' ? 'microphone' : 'camera';
}

/**
 * What changed between two subscribe track maps, given the receiving track now behind each
 * mid. A mid whose target changed (another participant's track reusing the m-line) counts
 * as one ended and one added, so the app never shows a track under the wrong name.
 * @param {TrackMap} previous
 * @param {TrackMap} next
 * @returns {{ended: Array<{mid: string} & MidTarget>, added: Array<{mid: string} & MidTarget>}}
 */
export function diffTrackMaps(previous, next) {
  const ended = [];
  const added = [];
  for (const [mid, old] of Object.entries(previous)) {
    const now = next[mid];
    if (!now || now.participant !== old.participant || now.track !== old.track) {
      ended.push({ mid, ...old });
    }
  }
  for (const [mid, now] of Object.entries(next)) {
    const old = previous[mid];
    if (!old || old.participant !== now.participant || old.track !== now.track) {
      added.push({ mid, ...now });
    }
  }
  return { ended, added };
}

/**
 * One word for the whole connection from the WebSocket's and both peer connections' states.
 * `socket` is `reconnecting` while the library reconnects a dropped WebSocket.
 * @param {{socket: 'connecting' | 'open' | 'reconnecting' | 'closed', publish?: string,
 *   subscribe?: string}} s
 * @returns {'connecting' | 'connected' | 'reconnecting' | 'failed' | 'closed'}
 */
export function overallConnectionState({ socket, publish, subscribe }) {
  if (socket === 'closed') return 'closed';
  if (socket === 'reconnecting') return 'reconnecting';
  const pcs = [publish, subscribe].filter((state) => state !== undefined && state !== 'new');
  if (pcs.some((state) => state === 'failed')) return 'failed';
  if (pcs.some((state) => state === 'disconnected')) return 'reconnecting';
  if (socket === 'open' && pcs.length > 0 && pcs.every((state) => state === 'connected')) {
    return 'connected';
  }
  if (socket === 'open' && pcs.length === 0) return 'connected';
  return 'connecting';
}

/**
 * The access token a page was opened with: `?token=` (or `?access_token=`) in its query
 * string, or null when there is none.
 * @param {string} search e.g. `location.search`
 * @returns {string | null}
 */
export function tokenFromSearch(search) {
  const params = new URLSearchParams(search);
  const token = (params.get('token') ?? params.get('access_token') ?? '').trim();
  return token === '' ? null : token;
}

/**
 * What an access token says about itself, read without checking its signature (only the
 * server can, and does): the room, identity and display name, to fill the lobby's fields.
 * Null when the token is not a readable JWT.
 * @param {string} token
 * @returns {{room: string | null, identity: string | null, name: string | null,
 *   expires: number | null} | null}
 */
export function tokenClaims(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    if (!isObject(claims)) return null;
    const video = isObject(claims.video) ? claims.video : {};
    return {
      room: isString(video.room) ? video.room : null,
      identity: isString(claims.sub) ? claims.sub : null,
      name: isString(claims.name) ? claims.name : null,
      expires: typeof claims.exp === 'number' ? claims.exp * 1000 : null,
    };
  } catch {
    return null;
  }
}

/**
 * A sentence for the user about a refusal from the server, by its error code: a missing or
 * invalid token (`unauthorized`), one that does not allow what was tried (`forbidden`), or
 * an administrator's removal. Null for other codes.
 * @param {string} code
 * @param {string} [message] the server's own explanation
 * @returns {string | null}
 */
export function refusalText(code, message = '') {
  const why = message ? ` (${message})` : '';
  switch (code) {
    case 'unauthorized':
      return `Access refused: this room needs a valid access link${why}. Ask for a new link with a token.`;
    case 'forbidden':
      return `Not allowed: your access token does not permit this${why}.`;
    case 'removed':
      return 'You were removed from the room by an administrator.';
    case 'room_closed':
      return 'The room was closed by an administrator.';
    case 'reconnect_failed':
      return `Lost the connection to the server${why}.`;
    default:
      return null;
  }
}

/**
 * How long to wait before reconnect attempt `attempt` (0 for the first) of a dropped
 * WebSocket: 0.5 s, doubling, at most 5 s.
 * @param {number} attempt
 * @returns {number} milliseconds
 */
export function reconnectDelay(attempt) {
  return Math.min(500 * 2 ** Math.max(0, Math.min(attempt, 10)), 5000);
}
