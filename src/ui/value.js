// value.js: one key. Its value as text, pretty JSON or hex (with a download), its version, type
// and expiry; creating, editing and deleting it with If-Match / If-None-Match (a conflict shows
// both versions and lets the user reload or overwrite); expiry; counters. The open key is
// followed live through the key watch.
'use strict';

/** Hex views stop here; the download has every byte. */
const HEX_LIMIT = 64 * 1024;
const TEXT_TYPE = 'text/plain; charset=utf-8';

/** GET a key: its bytes and what its headers say; null when it does not exist. */
async function loadValue(project, key, signal) {
  const r = await call({path: keyPath(project, key), expect: [200, 404]}, signal);
  if (r.status === 404) {
    if (r.code === 'key_not_found') return null;
    throw new ApiError(r);
  }
  return valueFrom(r);
}

function valueFrom(r) {
  let json;
  if (r.text !== null) {
    try { json = JSON.parse(r.text); } catch { /* not JSON */ }
  }
  const expires = r.headers.get('x-expires-at');
  const date = Date.parse(r.headers.get('date'));
  return {bytes: r.bytes, text: r.text, json, type: r.type,
    version: Number((r.headers.get('etag') || '').replace(/"/g, '')),
    expiresAt: expires ? Number(expires) : null,
    // The server's clock, not this device's, decides expiry: keep the offset.
    skew: isNaN(date) ? 0 : date / 1000 - Date.now() / 1000};
}

function secondsLeft(v) {
  return v.expiresAt == null ? null : Math.max(1, Math.round(v.expiresAt - (Date.now() / 1000 + v.skew)));
}

function isJson(v) {
  return v.json !== undefined && (v.type.includes('json') || typeof v.json === 'object');
}

function isCounter(v) {
  return v.text !== null && /^-?\d{1,19}$/.test(v.text);
}

function hexDump(bytes) {
  const lines = [];
  const n = Math.min(bytes.length, HEX_LIMIT);
  for (let at = 0; at < n; at += 16) {
    const row = bytes.subarray(at, Math.min(at + 16, n));
    const hex = Array.from(row, b => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = Array.from(row, b => b >= 32 && b < 127 ? String.fromCharCode(b) : '.').join('');
    lines.push(at.toString(16).padStart(8, '0') + '  ' + hex.padEnd(48) + ' |' + ascii + '|');
  }
  if (bytes.length > n) lines.push('… ' + (bytes.length - n) + ' more bytes: download the value to see them');
  return lines.join('\n');
}

/** The value shown as `mode`: text, json (pretty) or hex. */
function rendered(v, mode) {
  if (mode === 'json') return el('pre.value', JSON.stringify(v.json, null, 2));
  if (mode === 'text') return el('pre.value', v.text);
  return el('pre.value.hex', hexDump(v.bytes));
}

/** A value's bytes as a request body: text when it is text (so curl shows it), else a file. */
function bodyOf(v, key) {
  return v.text !== null ? v.text : new File([v.bytes], fileName(key));
}

function fileName(key) {
  return (key.split('/').filter(Boolean).pop() || '').replace(/[^\w.-]+/g, '_') || 'value';
}

function download(v, key) {
  const url = URL.createObjectURL(new Blob([v.bytes], {type: v.type}));
  const a = el('a', {href: url, download: fileName(key)});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function viewKey({view, args: [project, key], signal}) {
  const body = el('div');
  view.append(crumbs(project, key, true), body);
  let shown = await loadValue(project, key, signal);
  // Versions this page wrote: the watch sees them too, but they are no news to the user.
  const own = new Set();
  const draw = note => {
    body.replaceChildren();
    add(body, shown ? keyPanel(project, key, shown, signal, ctl, note) : missing(project, key, note));
  };
  const ctl = {
    async reload(note) {
      shown = await loadValue(project, key, signal);
      draw(note);
    },
    async wrote(r) {
      own.add(Number((r.headers.get('etag') || '').replace(/"/g, '')));
      await ctl.reload();
    },
  };
  draw();
  followKey(project, key, shown ? shown.version : 0, signal, async version => {
    if (shown && shown.version === version) return;
    await ctl.reload(own.has(version) ? null : version
      ? 'Changed on the server: this is version ' + version + '.'
      : 'Deleted on the server.');
  });
}

function missing(project, key, note) {
  return el('div', note ? el('p.box.warn', note) : null, el('h1', key),
    el('p', 'There is no such key (or it expired). ',
      el('a', {href: href('p/' + enc(project) + '/new', {key})}, 'Create it')));
}

function keyPanel(project, key, v, signal, ctl, note) {
  const getReq = () => ({path: keyPath(project, key)});
  const modes = [['text', 'Text', v.text !== null], ['json', 'JSON', isJson(v)], ['hex', 'Hex', true]];
  let mode = isJson(v) ? 'json' : v.text !== null ? 'text' : 'hex';
  const shown = el('div');
  const tabs = el('div.tabs');
  const pick = m => {
    mode = m;
    tabs.replaceChildren(...modes.map(([id, label, ok]) =>
      el('button' + (id === mode ? '.on' : ''), {type: 'button', disabled: !ok, onclick: () => pick(id)}, label)));
    shown.replaceChildren(rendered(v, mode));
  };
  pick(mode);

  const deleteWith = version => ({method: 'DELETE', path: keyPath(project, key), headers: {'If-Match': '"' + version + '"'}});
  const del = act('Delete', () => deleteWith(v.version), async () => {
    if (!await confirmDanger('Delete ' + key + '?', 'Delete the key ' + key + ' (version ' + v.version + ')?', 'Delete')) return;
    let r = await call({...deleteWith(v.version), expect: [204, 412]}, signal);
    if (r.status === 412) {
      const now = r.json.current_version;
      if (now == null) return ctl.reload('Deleted on the server already.');
      if (!await confirmDanger('Changed since you opened it', key + ' is now version ' + now +
        ', not ' + v.version + ' as shown here. Delete it anyway?', 'Delete version ' + now)) return ctl.reload();
      r = await call(deleteWith(now), signal);
    }
    notice('Deleted ' + key + '.');
    location.hash = keysHref(project, folderOf(key));
  }, 'danger');

  const left = secondsLeft(v);
  return [
    note ? el('p.box.warn', note) : null,
    el('div.row',
      el('a.button', {href: '#/p/' + enc(project) + '/edit/' + enc(key)}, 'Edit'),
      del,
      act('Download', () => ({...getReq(), out: fileName(key)}), async () => download(v, key), 'plain'),
      el('span.act', el('span.muted.small', 'read:'), curlButton(getReq))),
    el('dl.meta',
      el('dt', 'Version'), el('dd', v.version),
      el('dt', 'Type'), el('dd', v.type),
      el('dt', 'Size'), el('dd', fmtBytes(v.bytes.length) + (v.text === null ? ', not text' : '')),
      el('dt', 'Expires'), el('dd.expires', left == null ? 'never'
        : fmtTime(v.expiresAt) + ' (in ' + fmtDuration(left) + ')')),
    tabs, shown,
    isCounter(v) ? counterBox(project, key, signal, ctl) : null,
    expiryBox(project, key, v, signal, ctl),
  ];
}

function counterBox(project, key, signal, ctl) {
  const incrReq = n => ({method: 'POST', path: keyPath(project, key), query: {incr: n}});
  const bump = n => async () => {
    const r = await call(incrReq(n), signal);
    await ctl.wrote(r);
    notice(key + ' = ' + r.text);
  };
  const amount = el('input', {name: 'incr', inputmode: 'numeric', value: '10', size: 6, 'aria-label': 'Amount'});
  const amountValue = () => {
    if (!/^-?\d+$/.test(amount.value.trim())) throw new Error('Add a whole number.');
    return amount.value.trim();
  };
  return el('div.box', el('h3', 'Counter'),
    el('div.row', act('+1', () => incrReq(1), bump(1)), act('−1', () => incrReq(-1), bump(-1)),
      amount, act('Add', () => incrReq(amountValue()), () => bump(amountValue())())));
}

function expiryBox(project, key, v, signal, ctl) {
  // A PUT sets the expiry, and a PUT without ttl clears it: re-put the same bytes, if unchanged.
  const putReq = ttl => ({method: 'PUT', path: keyPath(project, key), query: {ttl},
    headers: {'Content-Type': v.type, 'If-Match': '"' + v.version + '"'}, body: bodyOf(v, key)});
  const seconds = el('input', {name: 'ttl', inputmode: 'numeric', size: 8, value: secondsLeft(v) || '3600',
    'aria-label': 'Seconds'});
  const ttl = () => {
    if (!/^\d+$/.test(seconds.value.trim())) throw new Error('The expiry is a number of seconds.');
    return seconds.value.trim();
  };
  const run = req => async () => {
    const r = await call({...req, expect: [200, 412]}, signal);
    if (r.status === 412) return ctl.reload('Not changed: the key changed on the server meanwhile. This is its new version.');
    await ctl.wrote(r);
    notice(req.query.ttl ? key + ' expires in ' + fmtDuration(Number(req.query.ttl)) + '.' : key + ' never expires now.');
  };
  return el('div.box', el('h3', 'Expiry'),
    el('div.row', el('span', 'Expire in'), seconds, el('span', 'seconds'),
      act('Set expiry', () => putReq(ttl()), () => run(putReq(ttl()))()),
      v.expiresAt != null ? act('Never expire', () => putReq(null), run(putReq(null)), 'plain') : null));
}

/**
 * Follow one key until the view is left: `changed(version)` runs when its version moves
 * (0: it was deleted). A 304 (time ran out) just asks again.
 */
async function followKey(project, key, version, signal, changed) {
  while (!signal.aborted) {
    try {
      const r = await call({path: keyPath(project, key), query: {watch: WATCH_SECONDS, version},
        expect: [200, 304, 404]}, signal);
      if (r.status === 304) continue;
      if (r.status === 404 && r.code !== 'key_not_found') throw new ApiError(r);
      version = r.status === 200 ? valueFrom(r).version : 0;
      await changed(version);
      await sleep(1000, signal);
    } catch (e) {
      if (signal.aborted || e.name === 'AbortError') return;
      await sleep(e.status === 503 ? 30000 : 5000, signal);
    }
  }
}

async function viewEdit({view, args: [project, key], signal}) {
  view.append(crumbs(project, key, true));
  const v = await loadValue(project, key, signal);
  if (!v) return view.append(missing(project, key));
  editor(view, project, key, v, '', signal);
}

function viewNew({view, args: [project], params, signal}) {
  const prefix = params.get('prefix') || '';
  view.append(crumbs(project, prefix));
  editor(view, project, null, null, params.get('key') || prefix, signal);
}

/** The form for a new key (`v` null) or a new value of `key` (at version `v.version`). */
function editor(view, project, key, v, initialKey, signal) {
  let base = v ? v.version : null;
  const kinds = [['text', 'Text'], ['json', 'JSON'], ['file', 'File (any bytes)']];
  if (!v) kinds.push(['counter', 'Counter']);
  const defaultType = {text: TEXT_TYPE, json: 'application/json', file: 'application/octet-stream'};
  const startKind = !v ? 'text' : v.text === null ? 'file' : isJson(v) ? 'json' : 'text';
  const kind = select('kind', kinds, startKind);
  const name = el('input', {name: 'key', value: initialKey, required: true, autocapitalize: 'off', spellcheck: 'false'});
  const type = el('input', {name: 'type', value: v ? v.type : TEXT_TYPE, list: 'types', autocapitalize: 'off'});
  const types = el('datalist', {id: 'types'}, ['text/plain; charset=utf-8', 'application/json', 'text/csv',
    'application/octet-stream', 'image/png', 'image/jpeg'].map(t => el('option', {value: t})));
  const text = el('textarea', {name: 'value', spellcheck: 'false', value: v && v.text !== null ? v.text : ''});
  const file = el('input', {type: 'file', name: 'file'});
  const start = el('input', {name: 'start', inputmode: 'numeric', value: '0'});
  const ttl = el('input', {name: 'ttl', inputmode: 'numeric', value: v ? secondsLeft(v) || '' : '', placeholder: 'never'});
  const format = el('button.plain', {type: 'button', onclick: () => {
    try {
      text.value = JSON.stringify(JSON.parse(text.value), null, 2);
    } catch (e) {
      notice('Not valid JSON: ' + e.message, 'error');
    }
  }}, 'Format JSON');
  const parts = {
    text: field('Value', text),
    format: el('div', format),
    file: field('File', file, v && v.text === null ? 'The value now: ' + fmtBytes(v.bytes.length) + ', not text. Choose a file to replace it.' : null),
    start: field('Start at', start, 'a counter is a 64-bit integer; it is created with this value'),
    type: field('Content-Type', type, 'sent back by GET as is'),
    ttl: field('Expire in (seconds)', ttl, v && v.expiresAt != null
      ? 'It expires in ' + fmtDuration(secondsLeft(v)) + ' now; empty: never (a PUT without ttl clears it)'
      : 'empty: never'),
  };
  let lastKind = startKind;
  const showKind = () => {
    const k = kind.value;
    parts.text.hidden = k === 'file' || k === 'counter';
    parts.format.hidden = k !== 'json';
    parts.file.hidden = k !== 'file';
    parts.start.hidden = k !== 'counter';
    parts.type.hidden = parts.ttl.hidden = k === 'counter';
    if (type.value === defaultType[lastKind] && defaultType[k]) type.value = defaultType[k];
    lastKind = k;
  };
  kind.addEventListener('change', showKind);
  file.addEventListener('change', () => {
    if (file.files[0] && file.files[0].type) type.value = file.files[0].type;
  });

  const keyName = () => {
    const k = key || name.value;
    if (!k) throw new Error('The key is empty.');
    return k;
  };
  const condition = () => base == null ? {'If-None-Match': '*'} : {'If-Match': '"' + base + '"'};
  const saveReq = () => {
    const k = keyName();
    if (kind.value === 'counter') {
      if (!/^-?\d+$/.test(start.value.trim())) throw new Error('A counter starts at a whole number.');
      return {method: 'POST', path: keyPath(project, k), query: {incr: start.value.trim()}, headers: condition()};
    }
    if (ttl.value.trim() && !/^\d+$/.test(ttl.value.trim())) throw new Error('The expiry is a number of seconds.');
    let body = text.value;
    if (kind.value === 'file') {
      body = file.files[0];
      if (!body) throw new Error('Choose a file.');
    } else if (kind.value === 'json') {
      try {
        JSON.parse(body);
      } catch (e) {
        throw new Error('Not valid JSON: ' + e.message);
      }
    }
    return {method: 'PUT', path: keyPath(project, k), query: {ttl: ttl.value.trim() || null},
      headers: {'Content-Type': type.value.trim() || 'application/octet-stream', ...condition()}, body};
  };

  const conflict = el('div');
  const save = async () => {
    const req = saveReq();
    const r = await call({...req, expect: [200, 201, 412]}, signal);
    if (r.status === 412) return showConflict(req);
    notice('Saved ' + keyName() + (r.json ? ' (version ' + r.json.version + ').' : ' = ' + r.text + '.'));
    location.hash = keyHref(project, keyName());
  };

  /** Both versions side by side: reload the server's, or overwrite it with this one. */
  const showConflict = async req => {
    const k = keyName();
    const theirs = await loadValue(project, k, signal);
    const mine = req.body instanceof Blob
      ? el('p', 'The file ' + req.body.name + ' (' + fmtBytes(req.body.size) + ')')
      : el('pre.value', req.body != null ? req.body : 'a counter starting at ' + req.query.incr);
    const why = theirs
      ? base == null ? k + ' exists already, at version ' + theirs.version + '.'
        : k + ' changed on the server since you opened it: you edited version ' + base + ', it is now version ' + theirs.version + '.'
      : k + ' was deleted on the server since you opened it.';
    base = theirs ? theirs.version : null;
    changed.replaceChildren();
    conflict.replaceChildren(el('div.box.warn.conflict',
      el('h2', 'Conflict: not saved'), el('p', why),
      el('div.cols',
        el('div', el('h3', 'Yours'), mine),
        el('div', el('h3', theirs ? 'On the server (version ' + theirs.version + ')' : 'On the server'),
          theirs ? rendered(theirs, theirs.text !== null ? 'text' : 'hex') : el('p.muted', 'Nothing: deleted.'))),
      el('div.row',
        act(theirs ? 'Overwrite with yours' : 'Create it again with yours', saveReq, save, 'danger'),
        theirs ? el('a.button.plain', {href: keyHref(project, k)}, 'Reload: keep the server\'s') : null)));
    conflict.scrollIntoView();
  };

  const changed = el('div');
  if (key) {
    followKey(project, key, base, signal, async version => {
      if (version === base) return;
      changed.replaceChildren(el('p.box.warn', version
        ? 'Changed on the server since you opened it (now version ' + version + '): saving will show both versions.'
        : 'Deleted on the server since you opened it.'));
    });
  }

  view.append(
    el('h1', key ? 'Edit ' + key : 'New key'), changed,
    actionForm([
      key ? null : field('Key', name, 'any text; / makes folders'),
      el('div.row', field('Kind', kind), parts.type), types,
      parts.text, parts.format, parts.file, parts.start, parts.ttl,
    ], key ? 'Save' : 'Create', saveReq, save),
    el('p', el('a', {href: key ? keyHref(project, key) : keysHref(project, folderOf(initialKey))}, 'Cancel')),
    conflict);
  showKind();
}
