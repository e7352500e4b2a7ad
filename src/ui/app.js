// app.js: the router and the frame around every view. Each view has its own `#/…` address (so
// it can be bookmarked and reloaded); the header shows where you are and who is signed in.
// Loaded last: the views it names live in the files before it.
'use strict';

/** Address pattern, the view that draws it, and who may see it ('admin', 'token' or anyone). */
const ROUTES = [
  [/^signin$/, viewSignin, null],
  [/^docs(?:\/([^/]+))?$/, viewDocs, null],
  [/^projects$/, viewProjects, 'admin'],
  [/^p\/([^/]+)\/keys$/, viewKeys, 'token'],
  [/^p\/([^/]+)\/key\/(.+)$/, viewKey, 'token'],
  [/^p\/([^/]+)\/edit\/(.+)$/, viewEdit, 'token'],
  [/^p\/([^/]+)\/new$/, viewNew, 'token'],
  [/^p\/([^/]+)\/tokens$/, viewTokens, 'admin'],
  [/^p\/([^/]+)\/settings$/, viewSettings, 'admin'],
];

/** The current address: its path (after `#/`) and its parameters. */
function here() {
  const h = location.hash.replace(/^#\/?/, '');
  const i = h.indexOf('?');
  return {path: i < 0 ? h : h.slice(0, i), params: new URLSearchParams(i < 0 ? '' : h.slice(i + 1))};
}

/** `#/path?k=v`, every parameter encoded; empty ones left out. */
function href(path, params) {
  const q = Object.entries(params || {}).filter(([, v]) => v != null && v !== '');
  return '#/' + path + (q.length ? '?' + q.map(([k, v]) => enc(k) + '=' + enc(v)).join('&') : '');
}

function go(path, params) {
  location.hash = href(path, params);
}

function home(s) {
  if (!s) return 'signin';
  return s.admin ? 'projects' : 'p/' + enc(s.project) + '/keys';
}

/** The message of the 401 that signed us out, shown once by the sign-in view. */
let signedOutBecause = null;

function signOut(message) {
  session.clear();
  signedOutBecause = message || null;
  const {path, params} = here();
  const next = path && path !== 'signin' ? path + (params.toString() ? '?' + params : '') : null;
  go('signin', {next});
}

/** Aborts the requests (and live watches) of the view being left. */
let leaving = null;

function render() {
  if (leaving) leaving.abort();
  const ctl = leaving = new AbortController();
  const {path, params} = here();
  const s = session.get();
  if (!path) return location.replace(href(home(s)));
  let view = null, needs = null, args = [];
  for (const [re, v, n] of ROUTES) {
    const m = re.exec(path);
    if (!m) continue;
    try {
      args = m.slice(1).map(a => a === undefined ? undefined : decodeURIComponent(a));
    } catch {
      break;
    }
    [view, needs] = [v, n];
    break;
  }
  if (needs && !s) return go('signin', {next: location.hash.slice(2)});
  const project = path.startsWith('p/') ? args[0] : null;
  drawHeader(s, path, project);
  if (!document.getElementById('notice').classList.contains('ok')) clearNotice();
  const main = document.getElementById('main');
  const v = el('div');
  main.replaceChildren(v);
  if (!view) {
    v.append(el('h1', 'No such page'), el('p', el('a', {href: href(home(s))}, 'Go to the start')));
    return;
  }
  if (needs === 'admin' && !s.admin) {
    v.append(el('h1', 'Admin only'), el('p', 'This page needs the admin token. ',
      el('a', {href: '#/signin'}, 'Sign in as admin')));
    return;
  }
  document.title = ['pykv', project, path.split('/')[project ? 2 : 0]].filter(Boolean).join(' · ');
  Promise.resolve()
    .then(() => view({view: v, params, args, signal: ctl.signal, session: s}))
    .catch(e => {
      if (ctl.signal.aborted || e.name === 'AbortError') return;
      v.append(el('p.box.error', e.message || String(e)));
      if (!(e instanceof ApiError)) console.error(e);
    });
}

function drawHeader(s, path, project) {
  const section = (p, text, on) => el('a', {href: '#/' + p, class: on ? 'on' : null}, text);
  const links = [];
  if (s && s.admin) links.push(section('projects', 'Projects', path === 'projects'));
  const p = project || (s && s.project);
  if (s && p) {
    const base = 'p/' + enc(p) + '/';
    const rest = path.startsWith('p/') ? path.split('/')[2] : '';
    links.push(el('span.sep', '›'), section(base + 'keys', p, ['keys', 'key', 'edit', 'new'].includes(rest)));
    if (s.admin) {
      links.push(section(base + 'tokens', 'Tokens', rest === 'tokens'),
        section(base + 'settings', 'Settings', rest === 'settings'));
    }
  }
  links.push(section('docs', 'Docs', path.startsWith('docs')));
  document.getElementById('nav').replaceChildren(...links);
  const who = s
    ? [el('span', s.admin ? 'admin' : 'project ' + s.project),
      el('button.plain', {type: 'button', onclick: () => { session.clear(); go('signin'); }}, 'Sign out')]
    : [el('a', {href: '#/signin'}, 'Sign in')];
  document.getElementById('who').replaceChildren(...who);
}

/** Which token is this? The admin token may list projects; a project token gets 403 there. */
async function checkToken(token, project) {
  const r = await call({path: '/v1/projects', token, raw: true});
  if (r.status === 200) return {token, admin: true};
  if (r.status !== 403) throw new ApiError(r);
  if (!project) throw new Error('This is a project token: enter the name of its project too.');
  const k = await call({path: listPath(project), query: {limit: 1}, token, raw: true});
  if (k.status !== 200) throw new ApiError(k);
  return {token, project};
}

function viewSignin({view, params}) {
  const why = signedOutBecause;
  signedOutBecause = null;
  const token = el('input', {type: 'password', name: 'token', autocomplete: 'off', required: true});
  const project = el('input', {name: 'project', autocapitalize: 'off', spellcheck: 'false',
    placeholder: 'only for a project token'});
  const submit = el('button', {type: 'submit'}, 'Sign in');
  const form = el('form.box',
    why ? el('p.box.error', why) : null,
    el('p.muted', 'With the admin token (admin.token in the server\'s data directory) or a project token. ' +
      'It is kept in this browser tab only (sessionStorage) and sent only to this server.'),
    field('Token', token),
    field('Project', project, 'Needed with a project token: a token cannot tell its project.'),
    el('div.row', submit));
  form.addEventListener('submit', e => {
    e.preventDefault();
    busy(submit, async () => {
      const s = await checkToken(token.value.trim(), project.value.trim());
      session.set(s);
      location.hash = '#/' + (params.get('next') || home(s));
    });
  });
  view.append(el('h1', 'Sign in'), form);
  token.focus();
}

window.addEventListener('hashchange', render);
// /docs is the same page: its view lives at #/docs.
if (location.pathname !== '/') history.replaceState(null, '', '/' + (location.hash || '#/docs'));
render();
