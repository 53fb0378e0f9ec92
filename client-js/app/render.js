// Text helpers for the web app. Everything a participant typed (display names, chat) goes
// into the page through `textContent` only, never innerHTML, so `<img onerror=...>` shows
// up as those characters. The pure functions here are unit-tested under node.

/**
 * Up to two initials for a tile without video ("Ada Lovelace" -> "AL").
 * @param {string} name
 */
export function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.slice(0, 2).map((w) => String.fromCodePoint(w.codePointAt(0) ?? 63));
  return letters.join('').toUpperCase() || '?';
}

/**
 * The caption under a tile.
 * @param {string} name
 * @param {{local?: boolean, source?: string}} [options]
 */
export function tileLabel(name, { local = false, source = 'camera' } = {}) {
  let label = name;
  if (local) label += ' (you)';
  if (source === 'screen') label += ' — screen';
  return label;
}

/**
 * "14:05" in the viewer's time zone, for a chat message's `at` (ms since the epoch).
 * @param {number} at
 * @param {string} [locale]
 */
export function chatTime(at, locale) {
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) return '';
  return date.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' });
}

/** The words shown by the connection indicator. */
export const CONNECTION_LABELS = Object.freeze({
  connecting: 'connecting…',
  connected: 'connected',
  reconnecting: 'reconnecting…',
  failed: 'connection failed',
  closed: 'disconnected',
});

/**
 * Creates an element whose content is `text` as text.
 * @param {Document} doc
 * @param {string} tag
 * @param {string} className
 * @param {string} [text]
 */
export function textElement(doc, tag, className, text = '') {
  const element = doc.createElement(tag);
  if (className) element.className = className;
  element.textContent = text;
  return element;
}
