// tokens.js: the admin's view of one project's tokens: the list (never a secret), a new token
// with its access and key prefix (its secret shown once), and revoking one.
'use strict';

async function viewTokens({view, args: [project], signal}) {
  const base = '/v1/projects/' + enc(project) + '/tokens';
  const listReq = () => ({path: base});
  const list = el('div.token-list', el('p.muted', 'Loading…'));
  const created = el('div');

  const load = async () => {
    const r = await call(listReq(), signal);
    const rows = r.json.tokens.map(t => {
      const revokeReq = () => ({method: 'DELETE', path: base + '/' + enc(t.id)});
      const revoke = t.source === 'config'
        ? el('span.muted.small', 'in config.json')
        : act('Revoke', revokeReq, async () => {
          const what = 'Revoke the ' + t.access + ' token "' + t.label + '" (' + t.id + ') of ' + project +
            '? Every program using it gets 401 from now on.';
          if (!await confirmDanger('Revoke ' + t.label + '?', what, 'Revoke')) return;
          await call(revokeReq(), signal);
          created.replaceChildren();
          notice('Token ' + t.label + ' revoked.');
          await load();
        }, 'danger');
      return el('tr', el('td', t.label), el('td', t.access), el('td.mono', t.prefix || ''),
        el('td.mono.wide', t.id), el('td.wide', t.source), el('td', revoke));
    });
    list.replaceChildren(rows.length
      ? table(['Label', 'Access', 'Key prefix', ['Id', 'wide'], ['Source', 'wide'], ''], rows)
      : el('p.muted', 'No tokens: only the admin token can use this project.'));
  };

  const label = el('input', {name: 'label', required: true, maxlength: 64, placeholder: 'e.g. thermometer'});
  const access = select('access', [['write', 'write: read and write keys'], ['read', 'read: read keys only']], 'write');
  const prefix = el('input', {name: 'prefix', autocapitalize: 'off', spellcheck: 'false', placeholder: 'all keys'});
  const createReq = () => {
    const body = {label: label.value.trim(), access: access.value};
    if (prefix.value) body.prefix = prefix.value;
    return {method: 'POST', path: base, json: body};
  };
  const form = actionForm([
    el('div.row', field('Label', label), field('Access', access),
      field('Key prefix', prefix, 'optional: limits the token to keys starting with this')),
  ], 'Create token', createReq, async () => {
    const r = await call(createReq(), signal);
    created.replaceChildren(secretsBox('Token ' + r.json.label + ' created', [r.json]));
    label.value = prefix.value = '';
    await load();
  });

  view.append(el('div.row', el('h1', 'Tokens of ' + project), curlButton(listReq)),
    el('p.muted', 'Secrets are shown once, when a token is created. The admin token is not listed.'),
    list, created, el('h2', 'New token'), form);
  await load();
}
