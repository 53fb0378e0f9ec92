// The video-room web app: a lobby (room, name, camera and microphone preview and choice),
// then a grid of tiles, controls, chat and a connection indicator, all on SluiceRoom.
// `window.sluiceTest` exposes the live objects to the browser tests (see ../README.md).
// A link with `?token=` carries an access token: the room and name are taken from it, it is
// sent with the join, and a refusal is explained to the user.

import {
  SluiceRoom,
  displayNameProblem,
  refusalText,
  roomNameProblem,
  tokenClaims,
  tokenFromSearch,
} from '/lib/sluice.js';
import { CONNECTION_LABELS, chatTime, initials, textElement, tileLabel } from './render.js';

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const ui = {
  lobby: $('lobby'),
  joinForm: /** @type {HTMLFormElement} */ ($('join-form')),
  room: /** @type {HTMLInputElement} */ ($('room')),
  name: /** @type {HTMLInputElement} */ ($('name')),
  cameraSelect: /** @type {HTMLSelectElement} */ ($('camera-select')),
  micSelect: /** @type {HTMLSelectElement} */ ($('mic-select')),
  preview: /** @type {HTMLVideoElement} */ ($('preview')),
  lobbyError: $('lobby-error'),
  joinButton: /** @type {HTMLButtonElement} */ ($('join')),
  call: $('call'),
  roomTitle: $('room-title'),
  connection: $('connection'),
  grid: $('grid'),
  chatPanel: $('chat-panel'),
  chatLog: $('chat-log'),
  chatForm: /** @type {HTMLFormElement} */ ($('chat-form')),
  chatInput: /** @type {HTMLInputElement} */ ($('chat-input')),
  toggleMic: $('toggle-mic'),
  toggleCamera: $('toggle-camera'),
  toggleScreen: $('toggle-screen'),
  toggleChat: $('toggle-chat'),
  leave: $('leave'),
  callError: $('call-error'),
};

/** @type {MediaStream | null} the lobby preview, handed to the room on join */
let previewStream = null;
/** @type {SluiceRoom | null} */
let room = null;
/** Tiles by `${participant}:${source}`. */
/**
 * @typedef {{element: HTMLElement, video: HTMLVideoElement, tracks: MediaStreamTrack[],
 *   trackIds: string[], visible: boolean, observers: Array<ResizeObserver | IntersectionObserver>}} Tile
 */
/** @type {Map<string, Tile>} */
const tiles = new Map();
/** The room's events since the last join, for the browser tests: `{type, at, ...detail}`. */
/** @type {Array<Record<string, unknown>>} */
let eventLog = [];

window.sluiceTest = {
  /** The joined SluiceRoom, or null in the lobby. */
  get room() {
    return room;
  },
  /** The lobby's preview stream. */
  get previewStream() {
    return previewStream;
  },
  /** Tile keys (`participant:source`) currently in the grid. */
  tileKeys() {
    return [...tiles.keys()];
  },
  /** The room's events since the join (participants, mutes, connection, reconnects, errors). */
  get events() {
    return eventLog.map((e) => ({ ...e }));
  },
};

// ---- lobby ----

const params = new URLSearchParams(location.search);
/** The access token of the link the page was opened with, if any. */
const accessToken = tokenFromSearch(location.search);
const claims = accessToken ? tokenClaims(accessToken) : null;
ui.room.value = claims?.room ?? params.get('room') ?? localStorage.getItem('sluice.room') ?? '';
ui.name.value = claims?.name ?? params.get('name') ?? localStorage.getItem('sluice.name') ?? '';
// The token is for one room: typing another would only be refused.
if (claims?.room) ui.room.readOnly = true;
/** Shown in the lobby while nothing more pressing is: the link's token has expired. */
const linkProblem = claims?.expires && claims.expires < Date.now()
  ? refusalText('unauthorized', 'the access token in this link has expired') ?? ''
  : '';

function showLobbyError(message) {
  ui.lobbyError.textContent = message;
}
showLobbyError(linkProblem);

/**
 * What the preview last showed in the lobby. The preview opens while the person may already
 * have clicked Join, so it replaces only its own message, never a join's refusal.
 */
let previewMessage = linkProblem;
function showPreviewMessage(message) {
  if (ui.lobbyError.textContent === previewMessage) showLobbyError(message);
  previewMessage = message;
}

/** Fills a device <select>, keeping the current choice; the empty value means "none". */
function fillDeviceSelect(select, devices, noneLabel) {
  const previous = select.value;
  select.replaceChildren(textElement(document, 'option', '', noneLabel));
  /** @type {HTMLOptionElement} */ (select.firstChild).value = '';
  devices.forEach((device, index) => {
    const option = textElement(document, 'option', '', device.label || `${noneLabel.split(' ')[1]} ${index + 1}`);
    option.value = device.deviceId;
    select.append(option);
  });
  const stillThere = devices.some((d) => d.deviceId === previous);
  select.value = stillThere ? previous : devices[0]?.deviceId ?? '';
}

async function refreshDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  fillDeviceSelect(ui.cameraSelect, devices.filter((d) => d.kind === 'videoinput'), 'No camera');
  fillDeviceSelect(ui.micSelect, devices.filter((d) => d.kind === 'audioinput'), 'No microphone');
}

function stopPreview() {
  previewStream?.getTracks().forEach((t) => t.stop());
  previewStream = null;
  ui.preview.srcObject = null;
}

/** (Re)opens the chosen camera and microphone for the preview. */
async function startPreview() {
  stopPreview();
  const camera = ui.cameraSelect.value;
  const mic = ui.micSelect.value;
  const hasChoices = ui.cameraSelect.options.length > 0;
  // 1280x720 when the camera has it: enough for three simulcast layers.
  const size = { width: { ideal: 1280 }, height: { ideal: 720 } };
  const video = hasChoices ? (camera ? { deviceId: { exact: camera }, ...size } : false) : size;
  const audio = hasChoices ? (mic ? { deviceId: { exact: mic } } : false) : true;
  if ((!video && !audio) || !navigator.mediaDevices?.getUserMedia) return;
  try {
    previewStream = await navigator.mediaDevices.getUserMedia({ video, audio });
    ui.preview.srcObject = previewStream;
    showPreviewMessage(linkProblem);
  } catch (error) {
    showPreviewMessage(`Camera or microphone unavailable: ${error.message}. You can still join.`);
  }
}

async function initLobby() {
  if (!navigator.mediaDevices?.getUserMedia) {
    // Browsers offer cameras only to secure pages: https, or http on localhost.
    showLobbyError('Camera and microphone need https:// (or http://localhost). You can still join to watch.');
    return;
  }
  await startPreview();
  try {
    // Labels and ids are only complete once permission was given, i.e. after the preview.
    await refreshDevices();
  } catch {
    // No device list: the preview uses the defaults.
  }
  navigator.mediaDevices.addEventListener('devicechange', () => void refreshDevices().catch(() => {}));
}

ui.cameraSelect.addEventListener('change', () => void startPreview());
ui.micSelect.addEventListener('change', () => void startPreview());

ui.joinForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const roomName = ui.room.value.trim();
  const name = ui.name.value.trim();
  const problem = roomNameProblem(roomName) ?? displayNameProblem(name);
  if (problem) {
    showLobbyError(problem);
    return;
  }
  ui.joinButton.disabled = true;
  showLobbyError('');
  localStorage.setItem('sluice.room', roomName);
  localStorage.setItem('sluice.name', name);
  ui.chatLog.replaceChildren();
  ui.callError.textContent = '';
  const sluice = new SluiceRoom({ token: accessToken ?? undefined });
  // Listening before the join shows its own events too: chat history, a refused publish.
  listen(sluice);
  try {
    await sluice.join({ room: roomName, name, stream: previewStream ?? undefined });
    room = sluice;
    enterCall(sluice);
  } catch (error) {
    room = null;
    showLobbyError(refusalText(error.code, error.message) ?? `Could not join: ${error.message}`);
  } finally {
    ui.joinButton.disabled = false;
  }
});

// ---- the call ----

/** @param {SluiceRoom} sluice */
function enterCall(sluice) {
  ui.lobby.hidden = true;
  ui.call.hidden = false;
  ui.roomTitle.textContent = sluice.room;
  showConnection(sluice.connectionState);
  renderLocalTiles(sluice);
  for (const participant of sluice.participants.values()) renderParticipant(participant.id);
  updateControls(sluice);
}

/**
 * The room's events drive the page. Until the join completes (`room` is still null) the
 * tiles are left alone: `enterCall` draws them from the room's state in one go.
 * @param {SluiceRoom} sluice
 */
function listen(sluice) {
  /** Wraps a handler so that it acts only while `sluice` is the room on screen. */
  const current = (handler) => (/** @type {CustomEvent} */ e) => {
    if (room === sluice) handler(e.detail);
  };
  const on = (type, handler) => sluice.addEventListener(type, /** @type {EventListener} */ (handler));
  eventLog = [];
  const log = (type, summary) => on(type, (/** @type {CustomEvent} */ e) => {
    eventLog.push({ type, at: Date.now(), ...summary(e.detail) });
  });
  log('participantjoined', ({ participant }) => ({ id: participant.id, name: participant.name }));
  log('participantleft', ({ id }) => ({ id }));
  log('mute', ({ participant, kind, muted }) => ({ id: participant, kind, muted }));
  log('connectionstate', ({ state }) => ({ state }));
  log('reconnecting', () => ({}));
  log('reconnected', ({ resumed, id, previousId }) => ({ resumed, id, previousId }));
  log('error', ({ code, message }) => ({ code, message }));
  on('participantjoined', current(({ participant }) => renderParticipant(participant.id)));
  on('participantleft', current(({ id }) => removeTilesOf(id)));
  on('speaker', current(({ participant }) => highlightSpeaker(participant)));
  on('quality', current(({ participant }) => refreshTile(`${participant}:camera`)));
  log('quality', ({ participant, quality }) => ({ id: participant, quality }));
  log('speaker', ({ participant }) => ({ id: participant }));
  on('participantupdated', current(({ participant }) => renderParticipant(participant.id)));
  on('track', current(({ participant }) => renderParticipant(participant)));
  on('trackended', current(({ participant }) => {
    if (sluice.participants.has(participant)) renderParticipant(participant);
  }));
  on('mute', current(({ participant }) => {
    refreshTile(`${participant}:camera`);
    if (participant === sluice.id) updateControls(sluice);
  }));
  on('localtracks', current(() => {
    renderLocalTiles(sluice);
    updateControls(sluice);
  }));
  on('reconnected', current(({ resumed, previousId }) => {
    ui.callError.textContent = '';
    // Joined afresh under a new id: the old id's own tiles go (the others' went with their
    // participantleft events), and the local tiles come back under the new id.
    if (!resumed) removeTilesOf(previousId);
    renderLocalTiles(sluice);
    updateControls(sluice);
  }));
  on('connectionstate', current(({ state }) => {
    showConnection(state);
    // Keep the reason the server gave (removed, room closed) rather than a generic line.
    if (state === 'closed' && !ui.callError.textContent) {
      ui.callError.textContent = 'Disconnected from the server.';
    }
  }));
  // Chat and errors also during the join: the history, a refused publish.
  on('chat', (/** @type {CustomEvent} */ e) => appendChat(e.detail));
  on('error', (/** @type {CustomEvent} */ e) => {
    const { code, message } = e.detail;
    ui.callError.textContent = refusalText(code, message) ?? `${code}: ${message}`;
  });
}

function showConnection(state) {
  ui.connection.dataset.state = state;
  ui.connection.textContent = CONNECTION_LABELS[state] ?? state;
}

function nameOf(participantId) {
  if (room && participantId === room.id) return room.name;
  return room?.participants.get(participantId)?.name ?? '';
}

function mutedOf(participantId) {
  if (room && participantId === room.id) return room.muted;
  return room?.participants.get(participantId)?.muted ?? { audio: false, video: false };
}

/** Returns the tile for a participant's camera or screen, creating it when missing. */
function ensureTile(participantId, source) {
  const key = `${participantId}:${source}`;
  let tile = tiles.get(key);
  if (tile) return tile;
  const element = document.createElement('figure');
  element.className = 'tile';
  element.dataset.participant = participantId;
  element.dataset.source = source;
  if (room && participantId === room.id) element.classList.add('local');
  if (room && participantId === room.speaker) element.classList.add('speaking');
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  // Never play one's own microphone back.
  video.muted = element.classList.contains('local');
  const placeholder = textElement(document, 'div', 'placeholder');
  const caption = document.createElement('figcaption');
  caption.append(textElement(document, 'span', 'quality'), textElement(document, 'span', 'name'), textElement(document, 'span', 'mic-state'));
  element.append(video, placeholder, caption);
  ui.grid.append(element);
  /** @type {Tile} */
  const created = { element, video, tracks: [], trackIds: [], visible: true, observers: [] };
  tiles.set(key, created);
  if (!element.classList.contains('local')) watchTile(key, created);
  refreshTile(key);
  return created;
}

/**
 * Adaptive stream: a remote tile tells the server its size and whether it is on screen, so
 * that it gets no bigger a layer than it shows and nothing while hidden; a click pins it
 * (shown wide, its bandwidth before the dominant speaker's).
 * @param {string} key
 * @param {Tile} tile
 */
function watchTile(key, tile) {
  if (typeof ResizeObserver !== 'undefined') {
    const resize = new ResizeObserver(() => sendView(key));
    resize.observe(tile.element);
    tile.observers.push(resize);
  }
  if (typeof IntersectionObserver !== 'undefined') {
    const intersection = new IntersectionObserver((entries) => {
      for (const entry of entries) tile.visible = entry.isIntersecting;
      sendView(key);
    });
    intersection.observe(tile.element);
    tile.observers.push(intersection);
  }
  tile.element.addEventListener('click', () => {
    tile.element.classList.toggle('pinned');
    sendView(key);
  });
}

/** Sends the view of a remote tile's video tracks (its size in device pixels, visibility, pin). */
function sendView(key) {
  const tile = tiles.get(key);
  if (!room || !tile || !tile.trackIds.length) return;
  const scale = window.devicePixelRatio || 1;
  const rect = tile.element.getBoundingClientRect();
  // Whole steps of 16 px, so that a resize in progress does not send a view per pixel.
  const side = (v) => Math.min(16384, Math.max(16, Math.ceil((v * scale) / 16) * 16));
  const visible = tile.visible && document.visibilityState !== 'hidden' && rect.width > 0;
  const view = {
    width: side(rect.width),
    height: side(rect.height),
    visible,
    pinned: tile.element.classList.contains('pinned'),
  };
  for (const trackId of tile.trackIds) {
    try {
      room.setView(trackId, view);
    } catch {
      // Not joined any more.
    }
  }
}

document.addEventListener('visibilitychange', () => {
  for (const key of tiles.keys()) sendView(key);
});

/** Redraws a tile's name, mute state and placeholder. */
function refreshTile(key) {
  const tile = tiles.get(key);
  if (!tile) return;
  const { participant, source } = tile.element.dataset;
  const name = nameOf(participant ?? '');
  const muted = mutedOf(participant ?? '');
  const local = tile.element.classList.contains('local');
  /** @type {HTMLElement} */ (tile.element.querySelector('.name')).textContent = tileLabel(name, { local, source });
  // The network indicator: how good this participant's downlink is.
  const quality = participant === room?.id ? room?.quality : room?.participants.get(participant ?? '')?.quality;
  const indicator = /** @type {HTMLElement} */ (tile.element.querySelector('.quality'));
  if (source === 'camera' && quality) {
    indicator.dataset.quality = quality;
    indicator.title = `network: ${quality}`;
  } else {
    delete indicator.dataset.quality;
    indicator.title = '';
  }
  const micState = /** @type {HTMLElement} */ (tile.element.querySelector('.mic-state'));
  const audioMuted = source === 'camera' && muted.audio;
  micState.textContent = audioMuted ? 'muted' : '';
  tile.element.dataset.audioMuted = String(audioMuted);
  const hasVideo = tile.tracks.some((t) => t.kind === 'video') && !(source === 'camera' && muted.video);
  tile.element.classList.toggle('no-video', !hasVideo);
  /** @type {HTMLElement} */ (tile.element.querySelector('.placeholder')).textContent = initials(name || '?');
}

/** The track ids of the video among remote tracks. */
function videoIds(remote) {
  return remote.filter((r) => r.kind === 'video').map((r) => r.trackId);
}

function setTileTracks(key, tracks, trackIds = []) {
  const tile = tiles.get(key);
  if (!tile) return;
  const newIds = trackIds.some((id) => !tile.trackIds.includes(id));
  tile.trackIds = trackIds;
  if (newIds) sendView(key);
  const same = tracks.length === tile.tracks.length && tracks.every((t) => tile.tracks.includes(t));
  if (!same) {
    // A new stream only when the set changed: reassigning restarts playback (a flicker).
    tile.tracks = tracks;
    tile.video.srcObject = tracks.length ? new MediaStream(tracks) : null;
  }
  refreshTile(key);
}

/** Rebuilds a participant's camera tile (always there) and screen tile (while sharing). */
function renderParticipant(participantId) {
  if (!room) return;
  if (participantId === room.id) {
    renderLocalTiles(room);
    return;
  }
  const remote = [...room.remoteTracks.values()].filter((r) => r.participant === participantId);
  const camera = remote.filter((r) => r.source !== 'screen');
  ensureTile(participantId, 'camera');
  setTileTracks(`${participantId}:camera`, camera.map((r) => r.track), videoIds(camera));
  const screen = remote.filter((r) => r.source === 'screen');
  if (screen.length) {
    ensureTile(participantId, 'screen');
    setTileTracks(`${participantId}:screen`, screen.map((r) => r.track), videoIds(screen));
  } else {
    removeTile(`${participantId}:screen`);
  }
}

function removeTile(key) {
  const tile = tiles.get(key);
  if (!tile) return;
  for (const observer of tile.observers) observer.disconnect();
  tile.video.srcObject = null;
  tile.element.remove();
  tiles.delete(key);
}

/** Marks the dominant speaker's tiles (class `speaking`), and only theirs. */
function highlightSpeaker(participantId) {
  for (const tile of ui.grid.querySelectorAll('.tile')) {
    const element = /** @type {HTMLElement} */ (tile);
    element.classList.toggle('speaking', element.dataset.participant === participantId);
  }
}

function removeTilesOf(participantId) {
  for (const key of [...tiles.keys()]) {
    if (key.startsWith(`${participantId}:`)) removeTile(key);
  }
}

/** @param {SluiceRoom} sluice */
function renderLocalTiles(sluice) {
  const local = sluice.localTracks;
  ensureTile(sluice.id, 'camera');
  setTileTracks(`${sluice.id}:camera`, local.filter((l) => l.source === 'camera').map((l) => l.track));
  const screen = local.filter((l) => l.source === 'screen').map((l) => l.track);
  if (screen.length) {
    ensureTile(sluice.id, 'screen');
    setTileTracks(`${sluice.id}:screen`, screen);
  } else {
    removeTile(`${sluice.id}:screen`);
  }
}

/** @param {SluiceRoom} sluice */
function updateControls(sluice) {
  const { audio } = sluice.muted;
  ui.toggleMic.textContent = audio ? 'Unmute' : 'Mute';
  ui.toggleMic.setAttribute('aria-pressed', String(audio));
  const camera = sluice.cameraEnabled;
  ui.toggleCamera.textContent = camera ? 'Stop camera' : 'Start camera';
  ui.toggleCamera.setAttribute('aria-pressed', String(!camera));
  const sharing = sluice.screenSharing;
  ui.toggleScreen.textContent = sharing ? 'Stop sharing' : 'Share screen';
  ui.toggleScreen.setAttribute('aria-pressed', String(sharing));
  ui.toggleScreen.hidden = !navigator.mediaDevices?.getDisplayMedia;
  refreshTile(`${sluice.id}:camera`);
}

function appendChat({ name, text, at, local }) {
  const item = document.createElement('li');
  item.className = local ? 'chat-message local' : 'chat-message';
  item.append(
    textElement(document, 'span', 'chat-name', name),
    textElement(document, 'time', 'chat-time', chatTime(at)),
    textElement(document, 'p', 'chat-text', text),
  );
  ui.chatLog.append(item);
  ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
}

/** Runs a control's action, showing a failure instead of throwing it away. */
async function control(action) {
  try {
    await action();
  } catch (error) {
    ui.callError.textContent = refusalText(error.code, error.message) ?? error.message;
  }
  if (room) updateControls(room);
}

ui.toggleMic.addEventListener('click', () =>
  control(() => room?.setMuted('audio', !room.muted.audio)),
);
ui.toggleCamera.addEventListener('click', () =>
  control(async () => {
    if (!room) return;
    const deviceId = ui.cameraSelect.value;
    await room.setCamera(!room.cameraEnabled, deviceId ? { deviceId: { exact: deviceId } } : true);
  }),
);
ui.toggleScreen.addEventListener('click', () =>
  control(() => (room?.screenSharing ? room.stopScreenShare() : room?.startScreenShare())),
);
ui.toggleChat.addEventListener('click', () => {
  ui.chatPanel.hidden = !ui.chatPanel.hidden;
  ui.toggleChat.setAttribute('aria-pressed', String(!ui.chatPanel.hidden));
});
ui.chatForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.chatInput.value;
  if (!text.trim()) return;
  control(() => {
    room?.sendChat(text);
    ui.chatInput.value = '';
  });
});
ui.leave.addEventListener('click', () => {
  const leaving = room;
  room = null;
  leaving?.leave();
  for (const key of [...tiles.keys()]) removeTile(key);
  ui.call.hidden = true;
  ui.lobby.hidden = false;
  void startPreview();
});
window.addEventListener('pagehide', () => room?.leave());

void initLobby();
