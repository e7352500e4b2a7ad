// dom.js: building the page from data, safely. Every string handed to `el` becomes a text node
// (never markup), so keys and values show as the text they are. Also the small widgets every
// view shares: notices, dialogs, copy buttons, tables, number and time formats.
'use strict';

/** el('tag.class1.class2', {attr: value, onclick: fn}, ...children). Strings become text. */
function el(spec, props, ...kids) {
  const [tag, ...classes] = spec.split('.');
  const e = document.createElement(tag || 'div');
  if (classes.length) e.className = classes.join(' ');
  if (props == null || typeof props !== 'object' || props instanceof Node || Array.isArray(props)) {
    kids.unshift(props);
    props = {};
  }
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'value') e.value = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  return add(e, kids);
}

function add(parent, kids) {
  for (const k of [kids].flat(Infinity)) {
    if (k == null || k === false) continue;
    parent.append(k instanceof Node ? k : String(k));
  }
  return parent;
}

/** A labelled form control, with an optional hint under it. */
function field(label, control, hint) {
  return el('label', label, control, hint ? el('span.small.muted', hint) : null);
}

function select(name, options, chosen) {
  return el('select', {name}, options.map(([value, text]) =>
    el('option', {value, selected: value === chosen}, text)));
}

/** A table that scrolls sideways on a narrow screen rather than breaking the layout. */
function table(heads, rows) {
  const head = el('tr', heads.map(h => Array.isArray(h) ? el('th.' + h[1], h[0]) : el('th', h)));
  return el('div.scroll', el('table', el('thead', head), el('tbody', rows)));
}

/** The banner under the header: errors stay until closed, other notices fade after a while. */
let noticeTimer = 0;
function notice(text, kind) {
  const n = document.getElementById('notice');
  clearTimeout(noticeTimer);
  n.className = kind || 'ok';
  n.replaceChildren(el('span', text),
    el('button.plain', {type: 'button', 'aria-label': 'Close', onclick: () => { n.hidden = true; }}, '×'));
  n.hidden = false;
  if (kind !== 'error') noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
}

function clearNotice() {
  document.getElementById('notice').hidden = true;
}

/** Show an error from a failed action; an aborted request (the view was left) is no error. */
function showError(e) {
  if (e && e.name === 'AbortError') return;
  notice(e && e.message ? e.message : String(e), 'error');
  if (!(e instanceof ApiError)) console.error(e);
}

/** Run `fn` with `button` disabled, reporting any error. */
async function busy(button, fn) {
  button.disabled = true;
  try {
    await fn();
  } catch (e) {
    showError(e);
  } finally {
    button.disabled = false;
  }
}

/** A modal dialog; resolves with the value passed to `done` (undefined when dismissed). */
function dialog(title, body, buttons) {
  return new Promise(resolve => {
    const d = el('dialog', el('h2', title), body);
    const done = value => { d.close(); d.remove(); resolve(value); };
    d.append(el('div.row', buttons(done), el('button.plain', {type: 'button', onclick: () => done()}, 'Close')));
    d.addEventListener('cancel', () => done());
    document.body.append(d);
    d.showModal();
  });
}

/** Ask before a destructive action. With `typed`, the user must type that name to confirm. */
function confirmDanger(title, text, action, typed) {
  const input = typed ? el('input', {autocomplete: 'off', 'aria-label': 'Name to confirm'}) : null;
  const body = el('div', el('p', text), typed ? field('Type ' + typed + ' to confirm', input) : null);
  return dialog(title, body, done => {
    const go = el('button.danger', {type: 'button', disabled: !!typed, onclick: () => done(true)}, action);
    if (input) input.addEventListener('input', () => { go.disabled = input.value !== typed; });
    return go;
  }).then(Boolean);
}

/** Copy text to the clipboard; on plain HTTP from another machine the Clipboard API is missing. */
async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const t = el('textarea', {readonly: true, value: text});
    document.body.append(t);
    t.select();
    document.execCommand('copy');
    t.remove();
  }
  notice('Copied.');
}

function copyButton(text, label) {
  return el('button.plain', {type: 'button', onclick: () => copyText(text)}, label || 'Copy');
}

function fmtBytes(n) {
  if (n < 1024) return n + ' B';
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return n.toFixed(n < 10 ? 1 : 0) + ' ' + units[i];
}

/** "3 min", "2 h 5 min", "4 days": how long until something, for people. */
function fmtDuration(s) {
  if (s < 60) return Math.max(0, Math.round(s)) + ' s';
  if (s < 3600) return Math.round(s / 60) + ' min';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
  return Math.round(s / 86400) + ' days';
}

function fmtTime(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString();
}

/** Resolve after `ms`, or at once when `signal` aborts. */
function sleep(ms, signal) {
  return new Promise(resolve => {
    const t = setTimeout(resolve, ms);
    if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, {once: true});
  });
}
