// docs.js: the API reference, drawn from /openapi.json: every operation with its parameters,
// request body and answers, and a form that sends it (with the signed-in token) and shows the
// status, headers and body that came back. #/docs/<operationId> opens one operation.
'use strict';

/** The document, fetched once per page load: it changes only with the server. */
let openapi = null;

function resolve(x) {
  while (x && x.$ref) x = x.$ref.slice(2).split('/').reduce((o, k) => o && o[k], openapi);
  return x || {};
}

async function viewDocs({view, args: [opened], signal}) {
  if (!openapi) openapi = (await call({path: '/openapi.json', public: true}, signal)).json;
  const doc = openapi;
  const s = session.get();
  const base = location.origin + (doc.servers && doc.servers[0] ? doc.servers[0].url : '/').replace(/\/$/, '');
  view.append(el('div.row', el('h1', doc.info.title + ' API ' + doc.info.version),
    el('a.button.plain', {href: '/openapi.json', download: 'openapi.json'}, 'openapi.json')),
  el('p', doc.info.description),
  el('p.muted', 'Base URL: ', el('code', base), '. ', s
    ? 'Try it sends your token (' + (s.admin ? 'admin' : 'project ' + s.project) + ').'
    : 'Sign in to try the operations that need a token.'));

  const ops = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ['get', 'head', 'put', 'post', 'patch', 'delete', 'options']) {
      if (item[method]) ops.push({path, method, item, op: item[method]});
    }
  }
  for (const tag of doc.tags || []) {
    view.append(el('h2', tag.name));
    for (const o of ops.filter(o => (o.op.tags || [])[0] === tag.name)) view.append(operation(o, opened));
  }
  add(view, [el('h2', 'Schemas'), Object.entries(doc.components.schemas).map(([name, schema]) =>
    el('details.op', {id: 'schema-' + name}, el('summary', el('code', name), ' ', schema.description || ''),
      el('div', schemaBlock(schema))))]);
}

/** One operation: folded until opened, then drawn (the document has dozens). */
function operation(o, opened) {
  const id = o.op.operationId;
  const d = el('details.op', {id: 'op-' + id},
    el('summary', el('span.method.m-' + o.method, o.method), el('code', o.path), ' ', o.op.summary || ''));
  d.addEventListener('toggle', () => {
    if (!d.open) return;
    history.replaceState(null, '', '#/docs/' + enc(id));
    if (!d.querySelector('div')) d.append(el('div', opDetails(o)));
  });
  if (id === opened) {
    d.open = true;
    setTimeout(() => d.scrollIntoView(), 0);
  }
  return d;
}

function schemaBlock(schema) {
  const refs = new Set();
  JSON.stringify(schema, (k, v) => {
    if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')) refs.add(v.split('/').pop());
    return v;
  });
  return el('div', el('pre', JSON.stringify(schema, null, 2)), refs.size ? el('p.small', 'See: ',
    [...refs].map(name => el('button.plain', {type: 'button', onclick: () => {
      const t = document.getElementById('schema-' + name);
      t.open = true;
      t.scrollIntoView();
    }}, name))) : null);
}

function opDetails({path, method, item, op}) {
  const open = Array.isArray(op.security) && op.security.length === 0;
  const params = [...(item.parameters || []), ...(op.parameters || [])].map(resolve);
  const body = op.requestBody ? resolve(op.requestBody) : null;
  const out = [el('p', op.description || ''), el('p.small.muted', open ? 'No token needed.' : 'Needs a token.')];
  if (params.length) {
    out.push(el('h3', 'Parameters'), table(['Name', 'In', 'Description'], params.map(p => el('tr',
      el('td', el('code', p.name), p.required ? ' *' : ''), el('td', p.in),
      el('td', p.description || '', p.schema ? el('div.small.muted', schemaSummary(p.schema)) : null)))));
  }
  if (body) {
    out.push(el('h3', 'Request body'), el('p', body.description || '', body.required ? ' (required)' : ''));
    for (const [type, media] of Object.entries(body.content || {})) {
      out.push(el('p', el('code', type)), media.schema ? schemaBlock(media.schema) : null);
    }
  }
  out.push(el('h3', 'Answers'));
  for (const [status, raw] of Object.entries(op.responses || {})) {
    const r = resolve(raw);
    const types = Object.entries(r.content || {});
    out.push(el('details', el('summary', el('strong', status), ' ', r.description || ''),
      types.map(([type, media]) => el('div', el('p', el('code', type)), media.schema ? schemaBlock(media.schema) : null)),
      r.headers ? el('p.small', 'Headers: ', Object.keys(r.headers).join(', ')) : null));
  }
  out.push(tryIt(path, method, params, body, open));
  return out;
}

function schemaSummary(schema) {
  const s = resolve(schema);
  const bits = [s.type || ''];
  if (s.enum) bits.push('one of ' + s.enum.join(', '));
  if (s.minimum != null || s.maximum != null) bits.push((s.minimum ?? '') + '…' + (s.maximum ?? ''));
  if (s.default != null) bits.push('default ' + s.default);
  return bits.filter(Boolean).join('; ');
}

/** The form that sends this operation and shows the answer as it came. */
function tryIt(path, method, params, body, open) {
  const s = session.get();
  const inputs = params.map(p => {
    const schema = resolve(p.schema);
    const input = schema.enum
      ? select(p.name, [['', ''], ...schema.enum.map(v => [String(v), String(v)])], '')
      : el('input', {name: p.name, autocapitalize: 'off', spellcheck: 'false',
        placeholder: schema.default != null ? String(schema.default) : '',
        value: p.name === 'project' && s && s.project ? s.project : ''});
    const forbidden = p.in === 'header' && /^(origin|access-control-)/i.test(p.name);
    return {p, input, label: field(p.name + ' (' + p.in + ')' + (p.required ? ' *' : ''), input,
      forbidden ? 'browsers set this header themselves' : null)};
  });
  const types = body ? Object.keys(body.content || {}) : [];
  const type = el('input', {name: 'content-type', value: !types[0] || types[0] === '*/*' ? TEXT_TYPE : types[0]});
  const text = el('textarea', {name: 'body', spellcheck: 'false'});
  const result = el('div');

  const req = () => {
    const query = {}, headers = {};
    let target = path;
    for (const {p, input} of inputs) {
      const v = input.value;
      if (v === '') {
        if (p.required) throw new Error('Fill in ' + p.name + '.');
        continue;
      }
      if (p.in === 'path') target = target.replace('{' + p.name + '}', p.name === 'key' ? encKey(v) : enc(v));
      else if (p.in === 'query') query[p.name] = v;
      else if (p.in === 'header') headers[p.name] = v;
    }
    const r = {method: method.toUpperCase(), path: target, query, headers, raw: true, public: open};
    if (body && (text.value || body.required)) {
      headers['Content-Type'] = type.value;
      r.body = text.value;
    }
    return r;
  };
  const run = async () => {
    result.replaceChildren(el('p.muted', 'Waiting for the answer…'));
    const r = await call(req());
    const lines = [];
    r.headers.forEach((v, k) => lines.push(k + ': ' + v));
    result.replaceChildren(el('div.box.answer',
      el('p', el('strong.status', r.status + ' ' + r.statusText)),
      el('pre.headers', lines.join('\n')),
      r.bytes.length ? el('pre.body', r.json !== undefined ? JSON.stringify(r.json, null, 2)
        : r.text !== null ? r.text : hexDump(r.bytes)) : el('p.muted', 'No body.')));
  };
  return el('div.box.try', el('h3', 'Try it'),
    actionForm([inputs.map(i => i.label), body ? [field('Content-Type', type), field('Body', text)] : null],
      'Send', req, run),
    result);
}
