// keys.js: browsing a project's keys by prefix, `/` shown as folders, a page at a time (`after`),
// never the whole project; and following the open prefix live through the watch long-poll.
'use strict';

/** Entries (keys and folders) per page. */
const PAGE = 50;
/** Sorts after every other character: `after=folder/ + this` skips the rest of a folder. */
const PAST_FOLDER = '\u{10FFFF}';
/** How long one watch request waits for a change before it is renewed. */
const WATCH_SECONDS = 25;
/** At most this many listing requests to fill one page (each adds at least one entry). */
const MAX_REQUESTS = 8;

function listReq(project, prefix, after, limit) {
  return {path: listPath(project), query: {prefix: prefix || null, after: after || null, limit}};
}

/**
 * One page of entries under `prefix` from `after` on: keys directly under it, and one entry per
 * folder (the next `/` after the prefix), whose keys are skipped on the server, not fetched.
 * Returns {entries, next (the `after` of the next page, or null), version}.
 */
async function loadPage(project, prefix, after, signal) {
  const entries = [];
  // Names are shown from the prefix's last folder on: `con` lists `config/`, not `fig/`.
  const from = folderOf(prefix).length;
  let cursor = after || null, version = null, more = true;
  for (let i = 0; i < MAX_REQUESTS && more; i++) {
    const r = await call(listReq(project, prefix, cursor, PAGE), signal);
    version = version || r.headers.get('x-project-version');
    more = r.json.next !== null;
    for (const key of r.json.keys) {
      const rest = key.slice(prefix.length);
      const slash = rest.indexOf('/');
      const folder = slash < 0 ? null : prefix + rest.slice(0, slash + 1);
      const last = entries[entries.length - 1];
      if (folder && last && last.folder === folder) continue;
      // A new entry past a full page: the next page starts here, and is not empty.
      if (entries.length === PAGE) return {entries, next: cursor, version};
      entries.push(folder ? {folder, name: folder.slice(from)} : {key, name: key.slice(from) || key});
      cursor = folder ? folder + PAST_FOLDER : key;
    }
  }
  return {entries, next: more ? cursor : null, version};
}

/** The folder a key or prefix is in: `a/b/c` is in `a/b/`. */
function folderOf(key) {
  return key.slice(0, key.lastIndexOf('/') + 1);
}

function keyHref(project, key) {
  return '#/p/' + enc(project) + '/key/' + enc(key);
}

function keysHref(project, prefix, after) {
  return href('p/' + enc(project) + '/keys', {prefix, after});
}

/** project / a/ / b/ : each part opens that folder. */
function crumbs(project, prefix, lastIsKey) {
  const parts = [el('a', {href: keysHref(project, '')}, project)];
  let at = 0;
  for (;;) {
    const slash = prefix.indexOf('/', at);
    if (slash < 0) break;
    parts.push(' / ', el('a', {href: keysHref(project, prefix.slice(0, slash + 1))}, prefix.slice(at, slash + 1)));
    at = slash + 1;
  }
  if (at < prefix.length) parts.push(' / ', lastIsKey ? el('strong', prefix.slice(at)) : prefix.slice(at) + '…');
  return el('div.crumbs', parts);
}

async function viewKeys({view, args: [project], params, signal}) {
  const prefix = params.get('prefix') || '';
  const after = params.get('after') || '';
  const list = el('div', el('p.muted', 'Loading…'));
  const live = el('span.live', 'connecting…');
  const filter = el('input', {name: 'prefix', value: prefix, autocapitalize: 'off', spellcheck: 'false',
    placeholder: 'prefix, e.g. sensors/', 'aria-label': 'Prefix'});
  const filterForm = el('form.row', filter, el('button', {type: 'submit'}, 'List'),
    curlButton(() => listReq(project, filter.value, after, PAGE)));
  filterForm.addEventListener('submit', e => {
    e.preventDefault();
    location.hash = keysHref(project, filter.value);
  });

  const draw = page => {
    const items = page.entries.map(e => el('li', e.folder
      ? el('a.folder', {href: keysHref(project, e.folder), title: e.folder}, e.name)
      : el('a.key', {href: keyHref(project, e.key), title: e.key}, e.name)));
    const nav = el('div.row',
      after ? el('a.button.plain', {href: keysHref(project, prefix)}, '« First page') : null,
      page.next ? el('a.button.plain', {href: keysHref(project, prefix, page.next)}, 'Next page »') : null);
    list.replaceChildren(items.length ? el('ul.entries', items)
      : el('p.muted', after ? 'No more keys.' : prefix ? 'No keys start with ' + prefix + '.' : 'No keys yet.'), nav);
  };

  view.append(
    el('div.row', el('h1', 'Keys'), el('a.button', {href: href('p/' + enc(project) + '/new', {prefix})}, 'New key')),
    crumbs(project, prefix), filterForm,
    el('div.row', live, curlButton(() => watchReq(project, prefix, shown.version))),
    list);
  let shown = await loadPage(project, prefix, after, signal);
  draw(shown);
  follow(project, prefix, shown.version, signal, live, async () => {
    shown = await loadPage(project, prefix, after, signal);
    draw(shown);
    return shown.version;
  });
}

function watchReq(project, prefix, version) {
  return {path: listPath(project), query: {prefix: prefix || null, watch: WATCH_SECONDS, version, limit: 1},
    expect: [200, 304]};
}

/**
 * Follow changes under `prefix` until the view is left: each watch waits on the server until a
 * key under the prefix changes after `version` (200: `reload`, which answers the new version)
 * or the time runs out (304: ask again). Errors pause it and it retries.
 */
async function follow(project, prefix, version, signal, status, reload) {
  while (!signal.aborted) {
    try {
      if (!status.classList.contains('on')) {
        status.className = 'live on';
        status.textContent = 'live: changes under ' + (prefix || 'this project') + ' appear here';
      }
      const r = await call(watchReq(project, prefix, version), signal);
      if (r.status === 200) {
        version = await reload();
        status.textContent = 'live: updated at ' + new Date().toLocaleTimeString();
        // At most one reload a second, however busy the prefix.
        await sleep(1000, signal);
      }
    } catch (e) {
      if (signal.aborted || e.name === 'AbortError') return;
      status.className = 'live';
      status.textContent = 'live updates paused (' + e.message + '); retrying…';
      await sleep(e.status === 503 ? 30000 : 5000, signal);
    }
  }
}
