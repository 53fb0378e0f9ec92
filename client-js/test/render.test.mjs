// The app's text helpers: initials, captions and times, which end up in textContent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONNECTION_LABELS, chatTime, initials, tileLabel } from '../app/render.js';

test('initials take the first letter of up to two words', () => {
  assert.equal(initials('Ada Lovelace'), 'AL');
  assert.equal(initials('  grace  brewster murray '), 'GB');
  assert.equal(initials('linus'), 'L');
  assert.equal(initials('😀 face'), '😀F', 'a whole code point, not half a surrogate pair');
  assert.equal(initials('   '), '?');
});

test('tile captions mark the local tile and screen shares, and keep markup as typed', () => {
  assert.equal(tileLabel('Ada'), 'Ada');
  assert.equal(tileLabel('Ada', { local: true }), 'Ada (you)');
  assert.equal(tileLabel('Ada', { source: 'screen' }), 'Ada — screen');
  const markup = '<img src=x onerror=alert(1)>';
  assert.equal(tileLabel(markup), markup);
});

test('chat times are hours and minutes, and bad timestamps give nothing', () => {
  assert.match(chatTime(Date.UTC(2026, 0, 1, 14, 5), 'en-GB'), /^\d\d:\d\d$/);
  assert.equal(chatTime(Number.NaN), '');
});

test('every connection state has a label', () => {
  for (const state of ['connecting', 'connected', 'reconnecting', 'failed', 'closed']) {
    assert.ok(CONNECTION_LABELS[state], state);
  }
});
