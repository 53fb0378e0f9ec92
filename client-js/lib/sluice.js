// SluiceRoom: joins a Sluice room over the room protocol (docs/protocol.md) and turns it
// into DOM-style events. Two peer connections per participant: `publish` (this client
// offers its tracks, sendonly) and `subscribe` (the server offers everyone else's tracks
// and renegotiates as they come and go). Sluice is ICE-lite and does no trickle, so every
// local description is sent complete, after ICE gathering finished.
//
// Reconnecting (docs/protocol.md, "Reconnecting"): when the WebSocket drops, the room
// reconnects with backoff and resumes its participant with the resume token from `joined`
// (same id, tracks and connections; the others see nothing); when the server forgot it, it
// joins afresh with the same name, tracks and mute state. A peer connection whose ICE fails
// is replaced: a new publish connection offers again, a new subscribe connection is asked
// for with `resubscribe`. The local tracks are kept throughout, never asked for again.

import {
  chatTextProblem,
  diffTrackMaps,
  displayNameProblem,
  overallConnectionState,
  parseServerMessage,
  publishSource,
  reconnectDelay,
  roomNameProblem,
} from './protocol.js';
import { simulcastEncodings } from './whip.js';

export * from './protocol.js';

/** How long to wait for ICE gathering before sending what was gathered so far. */
const GATHERING_TIMEOUT_MS = 5000;
/** How long `join` waits for the WebSocket and the `joined` reply. */
const JOIN_TIMEOUT_MS = 10000;
/** How long a `publish` waits for `published` before giving up on that offer. */
const PUBLISH_TIMEOUT_MS = 15000;
/** The error codes with which the server refuses a `publish` (docs/protocol.md). */
const PUBLISH_REFUSALS = ['bad_sdp', 'too_many_tracks', 'media_error', 'forbidden'];
/** Chat messages kept for `chat` (the server's history holds as many). */
const CHAT_HISTORY = 100;
/** After this long without a connection the room gives up and closes (by default). */
const RECONNECT_GIVE_UP_MS = 60000;
/** How long a reconnect attempt waits for its socket and `joined`. */
const RECONNECT_ATTEMPT_TIMEOUT_MS = 5000;
/** How long ICE may stay `disconnected` (it often recovers by itself) before recovering it. */
const ICE_DISCONNECTED_GRACE_MS = 4000;
/** A publish connection that fails again this soon after an ICE restart is replaced. */
const ICE_RESTART_RETRY_MS = 15000;
/** Close codes after which the server does not want this client back (docs/protocol.md). */
const FINAL_CLOSE_CODES = [1009, 4001, 4002, 4003, 4401, 4403];
/** Join refusals that another attempt would not change. */
const FINAL_JOIN_REFUSALS = ['unauthorized', 'forbidden', 'bad_room', 'bad_name'];

/**
 * @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo
 * @typedef {import('./protocol.js').TrackMap} TrackMap
 * @typedef {{participant: string, trackId: string, mid: string, kind: string,
 *   source: string, track: MediaStreamTrack}} RemoteTrack
 */

/** The default signaling address: `/ws` on the page's own host. */
export function defaultUrl() {
  const { protocol, host } = globalThis.location;
  return `${protocol === 'https:' ? 'wss' : 'ws'}://${host}/ws`;
}

/**
 * Resolves once `pc` has finished gathering ICE candidates, or after a timeout (then the
 * candidates found so far are used: better a partial offer than none).
 * @param {RTCPeerConnection} pc
 */
export function iceGatheringComplete(pc, timeoutMs = GATHERING_TIMEOUT_MS) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === 'complete') done();
    }
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/**
 * A room joined over the room protocol. Events (all `CustomEvent`, payload in `detail`):
 * - `participantjoined` {participant}; `participantleft` {id, participant}
 * - `participantupdated` {participant} (its track list changed)
 * - `track` {participant, track, kind, source, trackId, mid}; `trackended` {same}
 * - `mute` {participant, kind, muted, by?} (also for the local participant; `by: 'admin'`
 *   when an administrator muted it, and then the local track is muted here too)
 * - `chat` {from, name, text, at, local} (`local` for this client's own messages, which
 *   arrive back from the server like everyone else's)
 * - `localtracks` {tracks} (camera or screen share started or stopped)
 * - `connectionstate` {state, socket, publish, subscribe}
 * - `reconnecting` {} (the WebSocket dropped; the room reconnects on its own)
 * - `reconnected` {resumed, id, previousId} (`resumed`: the server kept this participant,
 *   nobody saw it go; else it joined afresh, under a new id, and the others saw it leave
 *   and join)
 * - `error` {code, message} (`reconnect_failed` when reconnecting gave up)
 * - `speaker` {participant} (the dominant speaker changed)
 * - `quality` {participant, quality} (a participant's downlink, this one's included, became
 *   'good', 'fair' or 'poor'; also in `participants` entries as `quality`)
 */
export class SluiceRoom extends EventTarget {
  /** @type {WebSocket} */
  #ws;
  /** @type {RTCConfiguration} */
  #rtcConfig;
  /** @type {RTCPeerConnection} */
  #publishPc;
  /** @type {RTCPeerConnection} */
  #subscribePc;
  #id = '';
  #room = '';
  /** @type {string | null} this participant's downlink quality */
  #quality = null;
  #name = '';
  #url;
  /** @type {string | undefined} the access token sent with `join` */
  #token;
  /** @type {'connecting' | 'open' | 'reconnecting' | 'closed'} */
  #socketState = 'connecting';
  /** The token that resumes this participant on a new WebSocket ('' if the server gave none). */
  #resumeToken = '';
  /** A reconnect loop is running. */
  #reconnecting = false;
  /** How long it may run. */
  #giveUpMs = RECONNECT_GIVE_UP_MS;
  /** Connections being replaced after their ICE failed ('publish'). */
  /** @type {Set<string>} */
  #recovering = new Set();
  /** When the publish connection last restarted ICE (ms since the epoch), 0 if never. */
  #lastIceRestart = 0;
  /** `resubscribe` was sent: offers for the old subscribe connection are ignored. */
  #awaitingNewSubscribe = false;
  #lastState = '';
  #left = false;
  /** @type {Map<string, ParticipantInfo>} */
  #participants = new Map();
  /** The dominant speaker's id (this client's own included), or null. */
  /** @type {string | null} */
  #speaker = null;
  /** @type {TrackMap} */
  #trackMap = {};
  /** @type {Map<string, RemoteTrack>} by mid */
  #remoteTracks = new Map();
  /** The views given with setView, by track id. */
  #views = new Map();
  /** Local tracks by source ('camera' holds audio and video, 'screen' holds the share). */
  /** @type {Array<{track: MediaStreamTrack, source: string, stream: MediaStream,
   *   transceiver: RTCRtpTransceiver}>} */
  #local = [];
  #muted = { audio: false, video: false };
  /** @type {Array<{from: string, name: string, text: string, at: number, local: boolean}>} */
  #chat = [];
  /** Serialises renegotiations of each connection: one offer/answer at a time. */
  #publishChain = Promise.resolve();
  #subscribeChain = Promise.resolve();
  /** @type {((sdp: string) => void) | null} */
  #awaitPublished = null;
  /** The server's refusal of the publish offer in flight, if it refused it. */
  /** @type {{code: string, message: string} | null} */
  #publishRefusal = null;
  /** Tracks this library acquired itself (camera re-enabled, screen) and so must stop. */
  /** @type {Set<MediaStreamTrack>} */
  #ownedTracks = new Set();

  /**
   * Opens the WebSocket, joins `room` as `name`, publishes `stream`'s tracks and starts
   * receiving everyone else's. Rejects when the server refuses the join.
   * `token` is an access token (docs/protocol.md), needed when the server requires one.
   * @param {{url?: string, room: string, name: string, stream?: MediaStream,
   *   rtcConfig?: RTCConfiguration, token?: string}} options
   * @returns {Promise<SluiceRoom>}
   */
  static async join({ url, room, name, stream, rtcConfig, token }) {
    const sluice = new SluiceRoom({ url, rtcConfig, token });
    await sluice.join({ room, name, stream });
    return sluice;
  }

  /**
   * The two-step form, for listeners that must see the events of the join itself (the
   * participants already there, the chat history, a refused publish):
   * `const r = new SluiceRoom(); r.addEventListener(...); await r.join({room, name, stream})`.
   * `reconnectGiveUpMs`: how long to keep reconnecting a dropped WebSocket (default 60 s).
   * @param {{url?: string, rtcConfig?: RTCConfiguration, token?: string,
   *   reconnectGiveUpMs?: number}} [options]
   */
  constructor({ url, rtcConfig, token, reconnectGiveUpMs } = {}) {
    super();
    this.#url = url ?? defaultUrl();
    this.#rtcConfig = rtcConfig ?? {};
    this.#token = token || undefined;
    this.#giveUpMs = reconnectGiveUpMs ?? RECONNECT_GIVE_UP_MS;
  }

  /**
   * Joins; see `SluiceRoom.join`. Once per instance.
   * @param {{room: string, name: string, stream?: MediaStream}} options
   */
  async join({ room, name, stream }) {
    if (this.#ws) throw new Error('this SluiceRoom has already joined');
    const problem = roomNameProblem(room) ?? displayNameProblem(name);
    if (problem) throw new Error(problem);
    this.#onJoined(await this.#connect(room, name.trim()));
    if (stream) {
      for (const track of stream.getTracks()) this.#addLocalTrack(track, 'camera', stream);
    }
    try {
      await this.#publish();
    } catch (error) {
      // Still in the room (others can be seen and heard): report instead of failing. A
      // refusal by the server was already reported as its own `error` event.
      if (!error.refusedByServer) {
        this.#emit('error', { code: 'publish_failed', message: String(error.message ?? error) });
      }
    }
  }

  /** This participant's id, as the server assigned it. */
  get id() {
    return this.#id;
  }
  get room() {
    return this.#room;
  }
  get name() {
    return this.#name;
  }
  /** Everyone else in the room, by id. A copy: changing it changes nothing. */
  get participants() {
    return new Map([...this.#participants].map(([id, p]) => [id, structuredClone(p)]));
  }
  /** Who is speaking (the room's dominant speaker, decided by the server every 300 ms):
   * a participant id, possibly this client's own, or null. A `speaker` event tells changes. */
  get speaker() {
    return this.#speaker;
  }
  /** This participant's own downlink quality ('good', 'fair', 'poor'), once the server said. */
  get quality() {
    return this.#quality;
  }
  /** The remote tracks being received, by mid. */
  get remoteTracks() {
    return new Map(this.#remoteTracks);
  }
  /** The room's recent chat, oldest first: the history sent on join, then what came since. */
  get chat() {
    return this.#chat.map((c) => ({ ...c }));
  }
  /** This client's mute state as announced to the others. */
  get muted() {
    return { ...this.#muted };
  }
  /** Whether the camera is sending. */
  get cameraEnabled() {
    return this.#local.some((l) => l.source === 'camera' && l.track.kind === 'video');
  }
  get screenSharing() {
    return this.#local.some((l) => l.source === 'screen');
  }
  /** The local tracks being published, with their source ('camera' or 'screen'). */
  get localTracks() {
    return this.#local.map(({ track, source }) => ({ track, source }));
  }
  /** The current WebSocket (tests close it to see the room reconnect). */
  get socket() {
    return this.#ws;
  }
  /** The publish connection (tests read its `getStats()`). */
  get publishConnection() {
    return this.#publishPc;
  }
  /** The subscribe connection (tests read its `getStats()`). */
  get subscribeConnection() {
    return this.#subscribePc;
  }
  /** One of 'connecting', 'connected', 'reconnecting', 'failed', 'closed'. */
  get connectionState() {
    return this.#lastState || 'connecting';
  }

  /**
   * Caps the simulcast layer this participant receives of a remote track (its `trackId`):
   * 0 is the publisher's lowest resolution, 1 the next, `null` the highest it sends (the
   * default). The server switches at the layer's next keyframe. `temporal` caps the
   * temporal layer too (VP8/VP9: 0 the base frame rate, a third or a quarter of it with
   * three layers; `null` all, the default).
   * @param {string} trackId
   * @param {number | null} layer
   * @param {{ temporal?: number | null }} [options]
   */
  setMaxLayer(trackId, layer, { temporal = null } = {}) {
    if (layer !== null && !(Number.isInteger(layer) && layer >= 0)) {
      throw new Error(`a layer is a whole number from 0, or null: ${layer}`);
    }
    if (temporal !== null && !(Number.isInteger(temporal) && temporal >= 0 && temporal <= 7)) {
      throw new Error(`a temporal layer is a whole number from 0 to 7, or null: ${temporal}`);
    }
    this.#send({ type: 'set_layer', track: trackId, layer, temporal });
  }

  /**
   * Tells the server how a remote video track (its `trackId`) is shown (adaptive stream):
   * the tile's size in device pixels, whether it is visible and whether it is pinned. The
   * server sends no bigger layer than the smallest that covers the tile, nothing for a
   * hidden tile, and gives a pinned track its bandwidth before the dominant speaker's.
   * Remembered, and sent again whenever the track arrives on a new subscribe connection.
   * @param {string} trackId
   * @param {{ width?: number | null, height?: number | null, visible?: boolean, pinned?: boolean }} view
   */
  setView(trackId, { width = null, height = null, visible = true, pinned = false } = {}) {
    const side = (v) => v === null || (Number.isInteger(v) && v >= 1 && v <= 16384);
    if (!side(width) || !side(height) || (width === null) !== (height === null)) {
      throw new Error(`a view's width and height are both whole numbers from 1 to 16384, or both null: ${width}x${height}`);
    }
    const view = { width, height, visible: Boolean(visible), pinned: Boolean(pinned) };
    const last = this.#views.get(trackId);
    if (last && JSON.stringify(last) === JSON.stringify(view)) return;
    this.#views.set(trackId, view);
    this.#send({ type: 'view', track: trackId, ...view });
  }

  /**
   * Mutes or unmutes the local microphone ('audio') or camera ('video'). The track keeps
   * running and sends silence or black frames, so unmuting is instant; the others are told.
   * @param {'audio' | 'video'} kind
   * @param {boolean} muted
   */
  setMuted(kind, muted) {
    if (kind !== 'audio' && kind !== 'video') throw new Error(`unknown kind ${kind}`);
    for (const l of this.#local) {
      if (l.source === 'camera' && l.track.kind === kind) l.track.enabled = !muted;
    }
    if (this.#muted[kind] === muted) return;
    this.#muted[kind] = muted;
    this.#send({ type: 'mute', kind, muted });
    this.#emit('mute', { participant: this.#id, kind, muted });
  }

  /**
   * Turns the camera off (the device is released and its track unpublished) or on again
   * (a new camera track is acquired and published). Both renegotiate the publish connection.
   * @param {boolean} enabled
   * @param {MediaTrackConstraints | boolean} [constraints] for getUserMedia when enabling
   */
  async setCamera(enabled, constraints = true) {
    const current = this.#local.find((l) => l.source === 'camera' && l.track.kind === 'video');
    if (enabled === Boolean(current)) return;
    if (!enabled && current) {
      this.#removeLocalTrack(current);
    } else {
      const media = await navigator.mediaDevices.getUserMedia({ video: constraints });
      const [track] = media.getVideoTracks();
      this.#ownedTracks.add(track);
      this.#addLocalTrack(track, 'camera', media);
    }
    await this.#publish();
    this.setMuted('video', !enabled);
    this.#emit('localtracks', { tracks: this.localTracks });
  }

  /**
   * Shares a screen, window or tab as an extra video track. Resolves with the track; it is
   * unpublished when the user stops sharing from the browser's own control, too.
   * @returns {Promise<MediaStreamTrack>}
   */
  async startScreenShare() {
    const existing = this.#local.find((l) => l.source === 'screen');
    if (existing) return existing.track;
    const media = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const [track] = media.getVideoTracks();
    this.#ownedTracks.add(track);
    track.addEventListener('ended', () => void this.stopScreenShare());
    this.#addLocalTrack(track, 'screen', media);
    await this.#publish();
    this.#emit('localtracks', { tracks: this.localTracks });
    return track;
  }

  /** Stops sharing the screen and unpublishes it. */
  async stopScreenShare() {
    const share = this.#local.find((l) => l.source === 'screen');
    if (!share) return;
    this.#removeLocalTrack(share);
    await this.#publish();
    this.#emit('localtracks', { tracks: this.localTracks });
  }

  /**
   * Replaces the publish or subscribe peer connection as the room does on its own when its
   * ICE fails: a new publish connection offers the same tracks again (a new session on the
   * server), or a new subscribe connection is asked for. For apps that know better (a
   * network change) and for tests.
   * @param {'publish' | 'subscribe'} which
   */
  recoverConnection(which) {
    if (which !== 'publish' && which !== 'subscribe') throw new Error(`unknown connection ${which}`);
    if (this.#left || this.#socketState !== 'open') return;
    this.#replace(which);
  }

  /**
   * Restarts ICE on the publish connection (new credentials, the same DTLS session, tracks
   * and server session): what the room does first when that connection's ICE fails. Resolves
   * once the server answered with its new credentials.
   * @returns {Promise<void>}
   */
  restartPublishIce() {
    const pc = this.#publishPc;
    if (this.#left || !pc || pc.getTransceivers().length === 0) {
      return Promise.reject(new Error('no publish connection to restart'));
    }
    this.#lastIceRestart = Date.now();
    pc.restartIce();
    return this.#publish();
  }

  /**
   * Sends a chat message to the room. The server sends it back to everyone, this client
   * included, where it becomes a `chat` event with `local: true`.
   * @param {string} text
   */
  sendChat(text) {
    const problem = chatTextProblem(text);
    if (problem) throw new Error(problem);
    // The server echoes it to everyone, the sender included, so all show the same `at`.
    this.#send({ type: 'chat', text });
  }

  /** Leaves the room: tells the server, closes both connections and the WebSocket. */
  leave() {
    if (this.#left) return;
    this.#left = true;
    this.#send({ type: 'leave' });
    for (const track of this.#ownedTracks) track.stop();
    this.#ownedTracks.clear();
    for (const remote of this.#remoteTracks.values()) this.#emit('trackended', remote);
    this.#remoteTracks.clear();
    this.#publishPc?.close();
    this.#subscribePc?.close();
    this.#ws?.close(1000, 'leave');
    this.#socketState = 'closed';
    this.#reconnecting = false;
    this.#recovering.clear();
    this.#updateConnectionState();
  }

  // ---- connection setup ----

  /**
   * Opens a socket, sends `join` (with `resume`, to take this participant over after a drop)
   * and resolves with the `joined` message. A resume the server refuses (`resume_failed`: it
   * forgot the participant) is followed by a fresh join on the same socket. Rejects on a
   * refusal (with its `code`) or a socket that closed or timed out first.
   * @param {string} room @param {string} name
   * @param {{resume?: string, timeoutMs?: number}} [options]
   */
  #connect(room, name, { resume = '', timeoutMs = JOIN_TIMEOUT_MS } = {}) {
    this.#room = room;
    this.#name = name;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.#url);
      this.#ws = ws;
      const timer = setTimeout(() => fail(new Error('timed out joining the room')), timeoutMs);
      const fail = (error) => {
        clearTimeout(timer);
        ws.close();
        reject(error);
      };
      let joined = false;
      // The token goes in the message rather than the URL, which servers and proxies log.
      const sendJoin = (resumeToken) => {
        const join = { type: 'join', room, name };
        if (this.#token) join.token = this.#token;
        if (resumeToken) join.resume = resumeToken;
        ws.send(JSON.stringify(join));
      };
      let resuming = Boolean(resume);
      ws.addEventListener('open', () => {
        if (this.#socketState !== 'reconnecting') this.#socketState = 'open';
        sendJoin(resume);
      });
      ws.addEventListener('message', (event) => {
        if (ws !== this.#ws) return;
        const message = typeof event.data === 'string' ? parseServerMessage(event.data) : null;
        if (!message) return;
        if (!joined) {
          if (message.type === 'error' && message.code === 'resume_failed' && resuming) {
            resuming = false;
            sendJoin('');
            return;
          }
          if (message.type === 'error') {
            fail(Object.assign(new Error(message.message || message.code), { code: message.code }));
            return;
          }
          if (message.type !== 'joined') return;
          joined = true;
          clearTimeout(timer);
          this.#socketState = 'open';
          resolve(message);
          return;
        }
        this.#handle(message);
      });
      ws.addEventListener('close', (event) => {
        if (!joined) {
          fail(new Error('the server closed the connection'));
          return;
        }
        // A socket replaced by a newer one (a resume elsewhere closes it with 4005).
        if (ws !== this.#ws || this.#left) return;
        if (FINAL_CLOSE_CODES.includes(event.code)) {
          this.leave();
          return;
        }
        void this.#reconnect();
      });
      ws.addEventListener('error', () => {
        if (!joined) fail(new Error(`could not connect to ${this.#url}`));
      });
    });
  }

  /**
   * The WebSocket dropped: reconnects with backoff (0.5 s, 1 s, 2 s, ... up to 5 s) and
   * resumes, or joins afresh if the server forgot this participant; gives up after 60 s.
   * The peer connections, the local tracks and the remote tiles stay meanwhile.
   */
  async #reconnect() {
    if (this.#reconnecting || this.#left) return;
    this.#reconnecting = true;
    this.#socketState = 'reconnecting';
    // A publish offer in flight will get no answer on the dead socket.
    this.#awaitPublished?.('');
    this.#emit('reconnecting', {});
    this.#updateConnectionState();
    const started = Date.now();
    let attempt = 0;
    let delay = reconnectDelay(attempt);
    /** @type {any} */
    let lastError = null;
    while (!this.#left && this.#reconnecting) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (this.#left || !this.#reconnecting) return;
      try {
        const joined = await this.#connect(this.#room, this.#name, {
          resume: this.#resumeToken,
          timeoutMs: RECONNECT_ATTEMPT_TIMEOUT_MS,
        });
        this.#reconnecting = false;
        await this.#onRejoined(joined);
        return;
      } catch (error) {
        lastError = error;
        if (FINAL_JOIN_REFUSALS.includes(error.code)) break;
      }
      attempt += 1;
      delay = reconnectDelay(attempt);
      if (Date.now() - started + delay > this.#giveUpMs) break;
    }
    if (this.#left) return;
    this.#reconnecting = false;
    const seconds = Math.round((Date.now() - started) / 1000);
    const why = lastError?.code ? `: ${lastError.message}` : '';
    this.#emit('error', {
      code: lastError?.code && FINAL_JOIN_REFUSALS.includes(lastError.code) ? lastError.code : 'reconnect_failed',
      message: `could not reconnect within ${seconds} s${why}`,
    });
    this.leave();
  }

  /** Back on a new socket: resumed (nothing was lost) or joined afresh (the server forgot). */
  async #onRejoined(message) {
    this.#resumeToken = message.resume ?? '';
    const previousId = this.#id;
    if (message.resumed && message.id === this.#id) {
      this.#reconcile(message);
      // What this client changed while the socket was down reaches the server now.
      for (const kind of /** @type {Array<'audio' | 'video'>} */ (['audio', 'video'])) {
        if (message.muted && message.muted[kind] !== this.#muted[kind]) {
          this.#send({ type: 'mute', kind, muted: this.#muted[kind] });
        }
      }
      this.#updateConnectionState();
      this.#emit('reconnected', { resumed: true, id: this.#id, previousId });
      this.#checkConnections();
      return;
    }
    // A fresh participant: everything of the old one is gone on the server.
    for (const remote of this.#remoteTracks.values()) this.#emit('trackended', remote);
    this.#remoteTracks.clear();
    this.#trackMap = {};
    for (const [id, participant] of this.#participants) {
      this.#emit('participantleft', { id, participant });
    }
    this.#participants.clear();
    this.#publishPc?.close();
    this.#subscribePc?.close();
    this.#recovering.clear();
    this.#awaitingNewSubscribe = false;
    const local = this.#local;
    this.#local = [];
    this.#startSession(message);
    for (const l of local) this.#addLocalTrack(l.track, l.source, l.stream);
    // Before the participants: ids start again on a restarted server, so the app must have
    // let go of the old id's tiles before another participant arrives under it.
    this.#emit('reconnected', { resumed: false, id: this.#id, previousId });
    this.#addParticipants(message);
    for (const kind of /** @type {Array<'audio' | 'video'>} */ (['audio', 'video'])) {
      if (this.#muted[kind]) this.#send({ type: 'mute', kind, muted: true });
    }
    try {
      await this.#publish();
    } catch (error) {
      if (!error.refusedByServer) {
        this.#emit('error', { code: 'publish_failed', message: String(error.message ?? error) });
      }
    }
  }

  /** Brings the room's state up to date from a resumed `joined`: who came, left or changed. */
  #reconcile(message) {
    const now = new Map(message.participants.map((p) => [p.id, p]));
    for (const id of [...this.#participants.keys()]) {
      if (!now.has(id)) this.#handle({ type: 'participant_left', id });
    }
    for (const participant of message.participants) {
      const known = this.#participants.get(participant.id);
      if (!known) {
        this.#handle({ type: 'participant_joined', participant });
        continue;
      }
      for (const kind of ['audio', 'video']) {
        if (known.muted[kind] !== participant.muted[kind]) {
          this.#handle({ type: 'mute', participant: participant.id, kind, muted: participant.muted[kind] });
        }
      }
      if (JSON.stringify(known.tracks) !== JSON.stringify(participant.tracks)) {
        this.#handle({ type: 'tracks', participant: participant.id, tracks: participant.tracks });
      }
      known.name = participant.name;
    }
    const seen = new Set(this.#chat.map((c) => `${c.from}|${c.at}|${c.text}`));
    for (const chat of message.chat) {
      if (!seen.has(`${chat.from}|${chat.at}|${chat.text}`)) {
        this.#recordChat({ ...chat, local: chat.from === this.#id });
      }
    }
  }

  /**
   * Recovers a peer connection whose ICE failed, or stayed disconnected (also those that
   * failed while the socket was down).
   */
  #checkConnections() {
    const broken = (pc) => ['failed', 'disconnected', 'closed'].includes(pc.iceConnectionState);
    if (this.#publishPc && this.#publishPc.getTransceivers().length > 0 && broken(this.#publishPc)) {
      this.#recover('publish');
    }
    if (this.#subscribePc?.remoteDescription && broken(this.#subscribePc)) this.#recover('subscribe');
  }

  /**
   * A connection's ICE failed. The path to the server is likely broken for the WebSocket
   * too, which a browser may not notice for minutes (it sees no pings): the socket is
   * resumed first, at the cost of one round trip and unseen by the others, and the failed
   * connections are replaced once it is back (`#checkConnections`).
   * @param {'publish' | 'subscribe'} which
   */
  #iceFailed(which) {
    if (this.#left) return;
    if (this.#socketState !== 'open' || !this.#resumeToken) {
      this.#recover(which);
      return;
    }
    const stale = this.#ws;
    void this.#reconnect();
    stale?.close(1000, 'reconnecting');
  }

  /**
   * Recovers a failed connection. The publish connection first restarts ICE (new
   * credentials on the same connection: the DTLS session, the m-lines and the server's
   * session stay, so nobody sees a change); if that fails, or the connection fails again
   * within ICE_RESTART_RETRY_MS of a restart, it is replaced, the recovery that always works.
   * The subscribe connection is replaced (the room protocol has no restart offer for it).
   * @param {'publish' | 'subscribe'} which
   */
  #recover(which) {
    if (this.#left || this.#socketState !== 'open') return; // #checkConnections after the resume
    if (which === 'publish' && Date.now() - this.#lastIceRestart > ICE_RESTART_RETRY_MS) {
      const pc = this.#publishPc;
      this.restartPublishIce().catch(() => {
        if (pc === this.#publishPc && !this.#left) this.#replace('publish');
      });
      return;
    }
    this.#replace(which);
  }

  /**
   * Replaces the publish connection (a new one offers the same tracks, a new session on the
   * server) or the subscribe connection (a new one is asked for with `resubscribe`).
   * @param {'publish' | 'subscribe'} which
   */
  #replace(which) {
    if (which === 'publish') {
      if (this.#recovering.has('publish')) return;
      this.#recovering.add('publish');
      this.#updateConnectionState();
      const old = this.#publishPc;
      this.#publishPc = this.#createPc('publish');
      const local = this.#local;
      this.#local = [];
      for (const l of local) this.#addLocalTrack(l.track, l.source, l.stream);
      old.close();
      this.#publish({ newSession: true })
        .catch((error) => {
          if (!error.refusedByServer) {
            this.#emit('error', { code: 'publish_failed', message: String(error.message ?? error) });
          }
        })
        .finally(() => {
          this.#recovering.delete('publish');
          this.#updateConnectionState();
        });
      return;
    }
    if (this.#awaitingNewSubscribe) return;
    // The remote tracks end with the old connection; the new one's offer brings them back.
    for (const remote of this.#remoteTracks.values()) this.#emit('trackended', remote);
    this.#remoteTracks.clear();
    this.#trackMap = {};
    this.#subscribePc.close();
    this.#subscribePc = this.#createPc('subscribe');
    this.#awaitingNewSubscribe = true;
    this.#send({ type: 'resubscribe' });
    this.#updateConnectionState();
  }

  #onJoined(message) {
    this.#startSession(message);
    this.#addParticipants(message);
    if (message.speaker) {
      this.#speaker = message.speaker;
      this.#emit('speaker', { participant: message.speaker });
    }
  }

  /** A new participant on the server: its id, resume token and two new peer connections. */
  #startSession(message) {
    this.#id = message.id;
    this.#room = message.room || this.#room;
    this.#resumeToken = message.resume ?? '';
    this.#publishPc = this.#createPc('publish');
    this.#subscribePc = this.#createPc('subscribe');
  }

  /** The participants already in the room, and its chat history (what is new of it). */
  #addParticipants(message) {
    for (const p of message.participants) {
      this.#participants.set(p.id, p);
      this.#emit('participantjoined', { participant: structuredClone(p) });
    }
    const seen = new Set(this.#chat.map((c) => `${c.from}|${c.at}|${c.text}`));
    for (const chat of message.chat) {
      if (!seen.has(`${chat.from}|${chat.at}|${chat.text}`)) {
        this.#recordChat({ ...chat, local: chat.from === this.#id });
      }
    }
    this.#updateConnectionState();
  }

  /** A peer connection that recovers itself when its ICE fails (see `#recover`). */
  /** @param {'publish' | 'subscribe'} which */
  #createPc(which) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', ...this.#rtcConfig });
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let disconnected;
    const current = () => pc === (which === 'publish' ? this.#publishPc : this.#subscribePc);
    pc.addEventListener('iceconnectionstatechange', () => {
      if (!current()) return;
      clearTimeout(disconnected);
      if (pc.iceConnectionState === 'failed') {
        this.#iceFailed(which);
      } else if (pc.iceConnectionState === 'disconnected') {
        disconnected = setTimeout(() => {
          if (current() && pc.iceConnectionState === 'disconnected') this.#iceFailed(which);
        }, ICE_DISCONNECTED_GRACE_MS);
      }
    });
    pc.addEventListener('connectionstatechange', () => {
      if (current()) this.#updateConnectionState();
    });
    return pc;
  }

  // ---- incoming messages ----

  #handle(message) {
    switch (message.type) {
      case 'participant_joined':
        this.#participants.set(message.participant.id, message.participant);
        this.#emit('participantjoined', { participant: structuredClone(message.participant) });
        break;
      case 'speaker':
        this.#speaker = message.participant;
        this.#emit('speaker', { participant: message.participant });
        break;
      case 'quality': {
        const participant = this.#participants.get(message.participant);
        if (participant) participant.quality = message.quality;
        if (message.participant === this.#id) this.#quality = message.quality;
        this.#emit('quality', { participant: message.participant, quality: message.quality });
        break;
      }
      case 'participant_left': {
        if (this.#speaker === message.id) this.#speaker = null;
        const participant = this.#participants.get(message.id);
        for (const [mid, remote] of this.#remoteTracks) {
          if (remote.participant === message.id) {
            this.#remoteTracks.delete(mid);
            this.#emit('trackended', remote);
          }
        }
        this.#participants.delete(message.id);
        this.#emit('participantleft', { id: message.id, participant });
        break;
      }
      case 'tracks': {
        const participant = this.#participants.get(message.participant);
        if (!participant) break;
        participant.tracks = message.tracks;
        for (const remote of this.#remoteTracks.values()) {
          const info = message.tracks.find((t) => t.id === remote.trackId);
          if (remote.participant === message.participant && info) remote.source = info.source;
        }
        this.#emit('participantupdated', { participant: structuredClone(participant) });
        break;
      }
      case 'mute': {
        if (message.participant === this.#id) {
          // An administrator muted (or unmuted) this client: follow, without announcing it
          // again (the server already did).
          const kind = /** @type {'audio' | 'video'} */ (message.kind);
          for (const l of this.#local) {
            if (l.source === 'camera' && l.track.kind === kind) l.track.enabled = !message.muted;
          }
          this.#muted[kind] = message.muted;
        }
        const participant = this.#participants.get(message.participant);
        if (participant) participant.muted[message.kind] = message.muted;
        const detail = { participant: message.participant, kind: message.kind, muted: message.muted };
        this.#emit('mute', message.by ? { ...detail, by: message.by } : detail);
        break;
      }
      case 'published':
        this.#awaitPublished?.(message.sdp);
        break;
      case 'subscribe':
        // After `resubscribe`, offers still made for the old connection are not for us.
        if (this.#awaitingNewSubscribe && !message.newSession) break;
        if (message.newSession) this.#awaitingNewSubscribe = false;
        this.#subscribeChain = this.#subscribeChain
          .then(() => this.#applySubscribe(message))
          .catch((error) => this.#emit('error', { code: 'subscribe_failed', message: String(error) }));
        break;
      case 'chat':
      {
        const { type: _, ...chat } = message;
        this.#recordChat({ ...chat, local: chat.from === this.#id });
        break;
      }
      case 'error':
        this.#emit('error', { code: message.code, message: message.message });
        // A refused publish gets no `published`, only one of these: do not leave the
        // negotiation hanging.
        if (PUBLISH_REFUSALS.includes(message.code) && this.#awaitPublished) {
          this.#publishRefusal = { code: message.code, message: message.message };
          this.#awaitPublished('');
        }
        break;
      default:
        break;
    }
  }

  // ---- publishing ----

  /** @param {MediaStreamTrack} track @param {string} source @param {MediaStream} stream */
  #addLocalTrack(track, source, stream) {
    if (source === 'camera') track.enabled = !this.#muted[/** @type {'audio'|'video'} */ (track.kind)];
    // Reuse a transceiver left idle by a removed track of the same kind, so the publish
    // offer does not grow an m-line each time the camera goes off and on.
    const idle = this.#publishPc
      .getTransceivers()
      .find((t) => t.receiver.track.kind === track.kind && t.direction === 'inactive' && !t.stopped);
    let transceiver;
    if (idle) {
      idle.direction = 'sendonly';
      void idle.sender.replaceTrack(track);
      idle.sender.setStreams?.(stream);
      transceiver = idle;
    } else {
      /** @type {RTCRtpTransceiverInit} */
      const init = { direction: 'sendonly', streams: [stream] };
      // The camera goes out as simulcast layers (three at 1280x720, fewer below); the server
      // forwards each viewer one of them. Other sources (a shared screen) send one layer.
      const encodings = source === 'camera' && track.kind === 'video' ? simulcastEncodings(track) : undefined;
      if (encodings) init.sendEncodings = encodings;
      transceiver = this.#publishPc.addTransceiver(track, init);
    }
    this.#local.push({ track, source, stream, transceiver });
  }

  #removeLocalTrack(local) {
    this.#local = this.#local.filter((l) => l !== local);
    void local.transceiver.sender.replaceTrack(null);
    local.transceiver.direction = 'inactive';
    if (this.#ownedTracks.has(local.track) || local.source === 'camera') {
      local.track.stop();
      this.#ownedTracks.delete(local.track);
    }
  }

  /** What each published m-line carries, for the server's `tracks` lists. */
  #sources() {
    /** @type {Record<string, string>} */
    const sources = {};
    for (const { track, source, transceiver } of this.#local) {
      if (transceiver.mid === null) continue;
      sources[transceiver.mid] = publishSource(track.kind, source);
    }
    return sources;
  }

  /**
   * Sends a complete offer for the current local tracks and applies the answer.
   * `newSession`: the offer is the first of a new peer connection replacing a failed one.
   */
  #publish({ newSession = false } = {}) {
    const run = async () => {
      const pc = this.#publishPc;
      if (this.#left || pc.getTransceivers().length === 0) return;
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      await iceGatheringComplete(pc);
      if (pc !== this.#publishPc) return; // replaced meanwhile
      const publish = { type: 'publish', sdp: pc.localDescription?.sdp ?? offer.sdp, sources: this.#sources() };
      if (newSession) publish.new_session = true;
      this.#send(publish);
      // Listen only from the send on: an error that came before is not about this offer.
      const sdp = await new Promise((resolve) => {
        this.#awaitPublished = resolve;
        setTimeout(() => resolve(''), PUBLISH_TIMEOUT_MS);
      });
      this.#awaitPublished = null;
      const refusal = this.#publishRefusal;
      this.#publishRefusal = null;
      if (!sdp) {
        await pc.setLocalDescription({ type: 'rollback' });
        if (refusal) {
          throw Object.assign(new Error(refusal.message || refusal.code), {
            code: refusal.code,
            refusedByServer: true,
          });
        }
        throw new Error('the server did not accept the publish offer');
      }
      await pc.setRemoteDescription({ type: 'answer', sdp });
    };
    const result = this.#publishChain.then(run);
    this.#publishChain = result.catch(() => {});
    return result;
  }

  // ---- subscribing ----

  /** Applies a server offer, answers it and works out which tracks came and went. */
  async #applySubscribe(message) {
    if (this.#left) return;
    if (message.newSession && this.#subscribePc.remoteDescription) {
      // A new subscribe connection on the server: the old peer connection cannot take it.
      for (const remote of this.#remoteTracks.values()) this.#emit('trackended', remote);
      this.#remoteTracks.clear();
      this.#trackMap = {};
      this.#subscribePc.close();
      this.#subscribePc = this.#createPc('subscribe');
    }
    const pc = this.#subscribePc;
    await pc.setRemoteDescription({ type: 'offer', sdp: message.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await iceGatheringComplete(pc);
    this.#send({ type: 'answer', sdp: pc.localDescription?.sdp ?? answer.sdp });

    const { ended, added } = diffTrackMaps(this.#trackMap, message.tracks);
    this.#trackMap = message.tracks;
    for (const { mid } of ended) {
      const remote = this.#remoteTracks.get(mid);
      if (!remote) continue;
      this.#remoteTracks.delete(mid);
      this.#emit('trackended', remote);
    }
    for (const { mid, participant, track: trackId } of added) {
      const transceiver = pc.getTransceivers().find((t) => t.mid === mid);
      if (!transceiver) continue;
      const info = this.#participants.get(participant)?.tracks.find((t) => t.id === trackId);
      /** @type {RemoteTrack} */
      const remote = {
        participant,
        trackId,
        mid,
        kind: transceiver.receiver.track.kind,
        source: info?.source ?? 'camera',
        track: transceiver.receiver.track,
      };
      this.#remoteTracks.set(mid, remote);
      // A view given earlier holds for the track on this connection too.
      const view = this.#views.get(trackId);
      if (view) this.#send({ type: 'view', track: trackId, ...view });
      this.#emit('track', remote);
    }
    this.#updateConnectionState();
  }

  // ---- helpers ----

  /** Keeps the last messages (for `chat`, read by an app that attaches late) and emits. */
  #recordChat(chat) {
    this.#chat.push(chat);
    if (this.#chat.length > CHAT_HISTORY) this.#chat.shift();
    this.#emit('chat', chat);
  }

  #send(message) {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(message));
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #updateConnectionState() {
    const publishUsed = this.#publishPc && this.#publishPc.getTransceivers().length > 0;
    const subscribeUsed = this.#subscribePc && Object.keys(this.#trackMap).length > 0;
    const detail = {
      socket: this.#socketState,
      publish: publishUsed ? this.#publishPc.connectionState : undefined,
      subscribe: subscribeUsed ? this.#subscribePc.connectionState : undefined,
    };
    const state = this.#recovering.size > 0 && detail.socket === 'open'
      ? 'reconnecting'
      : overallConnectionState(detail);
    if (state === this.#lastState) return;
    this.#lastState = state;
    this.#emit('connectionstate', { state, ...detail });
  }
}
