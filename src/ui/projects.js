// projects.js: the admin's views of projects. The list (keys, bytes, persistence, source), a
// new project (its tokens shown once), and one project's settings: persistence, quotas, delete.
'use strict';

const MODES = [['sync', 'sync: every change saved before it is answered'],
  ['interval', 'interval: saved every interval_ms; a crash loses the last moments'],
  ['memory', 'memory: never saved; gone at restart']];

async function viewProjects({view, signal}) {
  const list = el('div', el('p.muted', 'Loading…'));
  const created = el('div');
  const listReq = () => ({path: '/v1/projects'});
  const load = async () => {
    const r = await call(listReq(), signal);
    const rows = r.json.projects.map(p => el('tr',
      el('td', el('a', {href: '#/p/' + enc(p.name) + '/keys'}, p.name)),
      el('td.num', p.keys), el('td.num', fmtBytes(p.bytes)),
      el('td', p.persistence), el('td.wide', p.source),
      el('td', el('a', {href: '#/p/' + enc(p.name) + '/tokens'}, 'tokens'), ' · ',
        el('a', {href: '#/p/' + enc(p.name) + '/settings'}, 'settings'))));
    list.replaceChildren(rows.length
      ? table(['Project', 'Keys', 'Bytes', 'Persistence', ['Source', 'wide'], ''], rows)
      : el('p.muted', 'No projects yet: create one below.'));
  };

  const name = el('input', {name: 'name', required: true, pattern: '[a-z0-9][a-z0-9_\\-]{0,63}',
    autocapitalize: 'off', spellcheck: 'false', placeholder: 'e.g. garden'});
  const mode = select('persistence', [['', 'the server default'], ...MODES], '');
  const createReq = () => {
    const body = {name: name.value.trim()};
    if (mode.value) body.persistence = mode.value;
    return {method: 'POST', path: '/v1/projects', json: body};
  };
  const form = actionForm([
    el('div.row', field('Name', name, 'a-z, 0-9, _ and -; it becomes a file name'), field('Persistence', mode)),
  ], 'Create project', createReq, async () => {
    const r = await call(createReq(), signal);
    created.replaceChildren(secretsBox('Project ' + r.json.name + ' created', r.json.tokens, r.json.name));
    name.value = '';
    await load();
  });

  view.append(el('div.row', el('h1', 'Projects'), curlButton(listReq)), list, created,
    el('h2', 'New project'), form);
  await load();
}

/** New tokens' secrets, shown this once, with copy buttons and a warning saying so. */
function secretsBox(title, tokens, project) {
  return el('div.box.secrets',
    el('h3', title),
    el('p.warn', 'Copy these secrets now: the server never shows them again. Anyone with one can use ' +
      'this project, so keep them as you would a password.'),
    table(['Label', 'Access', 'Secret', ''], tokens.map(t => el('tr',
      el('td', t.label), el('td', t.access + (t.prefix ? ' (keys under ' + t.prefix + ')' : '')),
      el('td.secret', t.secret), el('td', copyButton(t.secret))))),
    project ? el('p', el('a', {href: '#/p/' + enc(project) + '/keys'}, 'Open its keys')) : null);
}

/** A quota field: empty means no limit (sent as null). */
function quotaValue(input) {
  const v = input.value.trim();
  if (v === '') return null;
  if (!/^\d+$/.test(v)) throw new Error('A quota is a whole number, or empty for no limit.');
  return Number(v);
}

async function viewSettings({view, args: [project], signal}) {
  const getReq = () => ({path: '/v1/projects/' + enc(project)});
  const r = await call(getReq(), signal);
  const p = r.json;
  const fromConfig = p.source === 'config';
  const mode = select('persistence', MODES, p.persistence);
  const maxKeys = el('input', {name: 'max_keys', inputmode: 'numeric', value: p.max_keys ?? '', placeholder: 'no limit'});
  const maxBytes = el('input', {name: 'max_bytes', inputmode: 'numeric', value: p.max_bytes ?? '', placeholder: 'no limit'});
  const patchReq = () => ({method: 'PATCH', path: '/v1/projects/' + enc(project),
    json: {persistence: mode.value, max_keys: quotaValue(maxKeys), max_bytes: quotaValue(maxBytes)}});
  const form = actionForm([
    field('Persistence', mode),
    el('div.row', field('Max keys', maxKeys), field('Max bytes (keys and values)', maxBytes)),
  ], 'Save settings', patchReq, async () => {
    await call(patchReq(), signal);
    notice('Settings of ' + project + ' saved.');
    render();
  });
  if (fromConfig) for (const c of form.elements) c.disabled = true;

  const deleteReq = () => ({method: 'DELETE', path: '/v1/projects/' + enc(project)});
  const del = act('Delete project…', deleteReq, async () => {
    const text = 'Delete project ' + project + ' with its ' + p.keys + ' keys, its tokens and its snapshot file? This cannot be undone.';
    if (!await confirmDanger('Delete ' + project + '?', text, 'Delete ' + project, project)) return;
    await call(deleteReq(), signal);
    notice('Project ' + project + ' deleted.');
    go('projects');
  }, 'danger');

  add(view, [
    el('div.row', el('h1', 'Project ' + project), curlButton(getReq)),
    el('dl.meta',
      el('dt', 'Keys'), el('dd', p.keys + (p.max_keys != null ? ' of at most ' + p.max_keys : '')),
      el('dt', 'Bytes'), el('dd', fmtBytes(p.bytes) + (p.max_bytes != null ? ' of at most ' + fmtBytes(p.max_bytes) : '')),
      el('dt', 'Version'), el('dd', p.version),
      el('dt', 'Source'), el('dd', fromConfig ? 'config.json' : 'created through the API')),
    el('h2', 'Settings'),
    fromConfig ? el('p.box.warn', 'This project is declared in config.json: change it there and restart.') : null,
    form,
    el('h2', 'Danger zone'),
    fromConfig ? el('p.muted', 'Remove it from config.json to delete it.') : el('div', del)]);
}
