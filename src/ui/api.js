// api.js: talking to pykv. The session (the token, in sessionStorage only), one `call` that every
// request goes through, the errors it raises, and the same request written as a curl command.
// A request is a plain object, {method, path, query, headers, body | json, expect}, so that the
// page can both send it and show it.
'use strict';

/** Who is signed in: {token, admin} or {token, project}. Gone when the tab closes. */
const session = {
  get() {
    try {
      return JSON.parse(sessionStorage.getItem('pykv.session')) || null;
    } catch {
      return null;
    }
  },
  set(s) { sessionStorage.setItem('pykv.session', JSON.stringify(s)); },
  clear() { sessionStorage.removeItem('pykv.session'); },
};

/** An answer the page did not expect; `message` is the server's own when it sent one. */
class ApiError extends Error {
  constructor(r) {
    super(r.message);
    this.r = r;
    this.status = r.status;
    this.code = r.code;
  }
}

/** Path segments are percent-encoded whole, so `/`, `?`, `#` and spaces stay inside a key. */
function enc(s) {
  return encodeURIComponent(s);
}

/** A key in a URL, `/` left readable; a `.` or `..` segment (which URLs collapse, and the
 *  server refuses) has its dots percent-encoded, as the server asks. */
function encKey(key) {
  return key.split('/')
    .map(p => (p === '.' || p === '..') ? p.replace(/\./g, '%2E') : enc(p))
    .join('/');
}

function keyPath(project, key) {
  return '/v1/kv/' + enc(project) + '/' + encKey(key);
}

function listPath(project) {
  return '/v1/kv/' + enc(project);
}

function target(req) {
  const q = Object.entries(req.query || {}).filter(([, v]) => v != null);
  return req.path + (q.length ? '?' + q.map(([k, v]) => enc(k) + '=' + enc(v)).join('&') : '');
}

const strictUtf8 = new TextDecoder('utf-8', {fatal: true});

/** The bytes as text when they are valid UTF-8, else null. */
function utf8(bytes) {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * Send `req` with the session's token (unless `req.public`). Answers outside `req.expect`
 * (default 200, 201, 204) throw an ApiError; a 401 also signs out, unless `req.raw` (the docs'
 * try-it form shows every answer as it came).
 */
async function call(req, signal) {
  const headers = new Headers(req.headers || {});
  const s = session.get();
  const token = req.public ? null : req.token || (s && s.token);
  if (token) headers.set('Authorization', 'Bearer ' + token);
  let body = req.body;
  if (req.json !== undefined) {
    body = JSON.stringify(req.json);
    headers.set('Content-Type', 'application/json');
  }
  let res;
  try {
    // credentials: 'omit' keeps the browser from raising its own password prompt on a 401.
    res = await fetch(target(req), {method: req.method || 'GET', headers, body, signal,
      credentials: 'omit', cache: 'no-store'});
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError({status: 0, message: 'The server did not answer: ' + e.message});
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  const r = {status: res.status, statusText: res.statusText, headers: res.headers, bytes, text: utf8(bytes),
    type: res.headers.get('content-type') || ''};
  if (r.type.startsWith('application/json') && r.text !== null) {
    try { r.json = JSON.parse(r.text); } catch { /* shown as text */ }
  }
  r.code = r.json && r.json.error;
  r.message = (r.json && r.json.message) || res.status + ' ' + res.statusText;
  if (req.raw) return r;
  if (r.status === 401) {
    signOut(r.message);
    throw new ApiError(r);
  }
  if (!(req.expect || [200, 201, 204]).includes(r.status)) throw new ApiError(r);
  return r;
}

/** A word for the shell: as is when safe, else in single quotes. */
function sh(s) {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
}

/** The curl command that sends `req`, with the token left as $TOKEN. */
function curl(req) {
  const p = ['curl -s'];
  const m = req.method || 'GET';
  if (m === 'HEAD') p.push('-I');
  else if (m !== 'GET') p.push('-X ' + m);
  if (!req.public) p.push('-H "Authorization: Bearer $TOKEN"');
  for (const [k, v] of Object.entries(req.headers || {})) p.push('-H ' + sh(k + ': ' + v));
  if (req.json !== undefined) {
    p.push("-H 'Content-Type: application/json'", '--data-binary ' + sh(JSON.stringify(req.json)));
  } else if (req.body instanceof Blob) {
    p.push('--data-binary @' + sh(req.body.name || 'value.bin'));
  } else if (req.body) {
    p.push('--data-binary ' + sh(req.body));
  }
  if (req.out) p.push('-o ' + sh(req.out));
  p.push(sh(location.origin + target(req)));
  return p.join(' ');
}

function showCurl(req) {
  const text = curl(req);
  const body = el('div',
    el('pre.curl-command', text),
    el('p.small.muted', 'Set TOKEN to your token first: TOKEN=pykv_… (the page never shows it).',
      req.body instanceof Blob ? ' @file: the file you chose.' : ''));
  return dialog('curl', body, () => copyButton(text));
}

/** A button that shows the curl command of `reqFn()` (built when clicked, from current input). */
function curlButton(reqFn) {
  return el('button.curl', {type: 'button', title: 'Show as a curl command',
    onclick: () => { try { showCurl(reqFn()); } catch (e) { showError(e); } }}, 'curl');
}

/** An action: its button (running `run`, disabled meanwhile) and its curl button. */
function act(label, reqFn, run, cls) {
  const b = el('button' + (cls ? '.' + cls : ''), {type: 'button', onclick: () => busy(b, run)}, label);
  return el('span.act', b, curlButton(reqFn));
}

/** A form whose submit button runs `run` and whose curl button shows `reqFn()`. */
function actionForm(fields, label, reqFn, run) {
  const submit = el('button', {type: 'submit'}, label);
  const f = el('form', fields, el('div.row', el('span.act', submit, curlButton(reqFn))));
  f.addEventListener('submit', e => {
    e.preventDefault();
    busy(submit, run);
  });
  return f;
}
