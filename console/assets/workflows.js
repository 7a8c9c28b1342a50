// Workflows: the list, and a workflow's page with its URL, contract,
// filter, targets and last events; key regeneration (the new key shown
// once) and a test panel that dry-runs a pasted payload.

import { get, post, call, query } from './api.js';
import { h, mount, flash, time, badge, table, pretty, busy, nextView, shownOnce, circuit, chart, confirmed } from './ui.js';

export function workflowsView() {
  const alive = nextView();
  const body = h('div', null, h('p', null, 'Loading…'));
  mount(h('h1', null, 'Workflows'), body);
  get('/workflows').then((res) => {
    if (!alive()) {
      return;
    }
    const rows = res.workflows.map((w) => h('tr', { 'data-workflow': w.id },
      h('td', null, h('a', { href: '#/workflows/' + encodeURIComponent(w.id) }, w.name || w.id)),
      h('td', null, h('code', null, w.id)),
      h('td', null, w.broken ? h('span', { class: 'error' }, 'broken: ' + w.broken) : (w.enabled ? 'enabled' : 'disabled')),
      h('td', null, w.source),
      h('td', null, w.schema || w.sample ? 'yes' : 'none'),
      h('td', { class: 'num' }, String((w.targets || []).length))));
    body.replaceChildren(rows.length
      ? table(['Name', 'Id', 'State', 'Source', 'Contract', 'Targets'], rows, { class: 'list' })
      : h('p', { class: 'empty' }, 'No workflows yet: create them through the API or the Caddyfile.'));
  }).catch((err) => alive() && body.replaceChildren(h('p', { class: 'error' }, err.message)));
}

export function workflowView(id) {
  const alive = nextView();
  const path = '/workflows/' + encodeURIComponent(id);
  const body = h('div', null, h('p', null, 'Loading…'));
  mount(h('p', null, h('a', { href: '#/workflows' }, '← Workflows')), body);

  async function load() {
    const [w, schema, activity, recent] = await Promise.all([
      get(path),
      get(path + '/schema').catch(() => null),
      get('/activity').catch(() => null),
      get('/deliveries' + query({ workflow: id, since: new Date(Date.now() - 24 * 3600e3).toISOString(), limit: 1000 })).catch(() => ({ deliveries: [] })),
    ]);
    if (!alive()) {
      return;
    }
    const urlBox = h('div', { id: 'key-box' });
    const regenerate = confirmed('Regenerate key',
      'The current key stops working at once. Regenerate?',
      async () => {
        const res = await post(path + '/regenerate', {});
        urlBox.replaceChildren(shownOnce('New key', res.key,
          h('p', null, 'Workflow URL: ', h('code', { 'data-secret': 'url' }, res.url))));
        flash('New key generated');
      }, { id: 'regenerate', 'data-action': 'regenerate' });

    const targets = (w.targets || []).map((t) => h('tr', { 'data-target': t.id },
      h('td', null, h('code', null, t.id)),
      h('td', null, t.method + ' ' + t.url),
      h('td', null, t.envelope),
      h('td', null, t.rate_limit || '—'),
      h('td', null, circuit(t.circuit)),
      h('td', null, chart(activity && activity.destinations[`wf=${w.id}=${t.id}`], activity ? activity.minutes : 60, t.id))));

    const seen = new Map();
    for (const d of recent.deliveries) {
      const prev = seen.get(d.event_id);
      if (!prev || prev.updated_at < d.updated_at) {
        seen.set(d.event_id, d);
      }
    }
    const last = [...seen.values()].sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1)).slice(0, 20)
      .map((d) => h('tr', null,
        h('td', null, h('a', { href: '#/events/' + encodeURIComponent(d.event_id) }, d.event_id)),
        h('td', null, badge(d.status)),
        h('td', null, time(d.updated_at))));

    body.replaceChildren(
      h('h1', null, w.name || w.id, ' ', h('small', null, w.enabled ? 'enabled' : 'disabled')),
      w.description ? h('p', null, w.description) : '',
      h('dl', { class: 'facts' },
        h('dt', null, 'Id'), h('dd', null, h('code', null, w.id)),
        h('dt', null, 'URL'), h('dd', null, h('code', null, `…/${w.id}/`), h('em', null, w.has_key ? '‹key›' : '(no key)'),
          ' — the full URL is shown with the key, once, when the key is created or regenerated.'),
        h('dt', null, 'Methods'), h('dd', null, (w.methods || []).join(', ')),
        h('dt', null, 'Filter'), h('dd', null, w.filter ? h('code', null, w.filter) : 'none (every valid request is accepted)'),
        h('dt', null, 'Verification'), h('dd', null, w.verify ? `${w.verify.provider} (${w.verify.secret_count} secret(s))` : 'none'),
        h('dt', null, 'Source'), h('dd', null, w.source)),
      h('div', { class: 'actions' }, regenerate),
      urlBox,
      h('h2', null, 'Targets'),
      targets.length ? table(['Id', 'Request', 'Envelope', 'Rate limit', 'Circuit', 'Last hour'], targets) : h('p', { class: 'empty' }, 'No targets.'),
      h('h2', null, 'Contract'),
      schema ? h('details', null, h('summary', null, w.schema ? 'JSON Schema' : 'Schema inferred from the sample'), pretty(schema)) : h('p', null, 'No contract: the body must be empty.'),
      testPanel(path),
      h('h2', null, 'Last events (24 h)'),
      last.length ? table(['Event', 'Status', 'Changed'], last) : h('p', { class: 'empty' }, 'No events in the last 24 hours.'));
  }
  load().catch((err) => alive() && body.replaceChildren(h('p', { class: 'error' }, err.message)));
}

// testPanel dry-runs a pasted payload against the workflow: validation,
// filter and targets, nothing written.
function testPanel(path) {
  const payload = h('textarea', { id: 'test-payload', rows: 8, spellcheck: 'false', placeholder: '{"paste": "a payload"}' });
  const type = h('select', { id: 'test-type' },
    ['application/json', 'application/x-www-form-urlencoded', 'text/plain'].map((t) => h('option', { value: t }, t)));
  const out = h('div', { id: 'test-result' });
  const run = h('button', { type: 'button', id: 'test-run' }, 'Run dry run');
  run.addEventListener('click', () => busy(run, async () => {
    const res = await call('POST', path + '/test', { raw: payload.value, type: type.value });
    out.replaceChildren(
      h('p', { class: 'outcome', 'data-outcome': res.outcome }, 'Outcome: ', h('strong', null, res.outcome),
        res.valid ? ' — valid' : ' — invalid',
        res.filter_error ? ' — filter error: ' + res.filter_error : (res.filter_matched ? ' — filter matched' : '')),
      res.errors.length ? table(['Path', 'Error'], res.errors.map((e) => h('tr', null, h('td', null, h('code', null, e.path || '/')), h('td', null, e.message)))) : '',
      res.targets.length ? h('p', null, 'Would go to: ', res.targets.join(', ')) : '');
  }));
  return h('section', { class: 'panel' },
    h('h2', null, 'Test panel'),
    h('p', { class: 'hint' }, 'A dry run of the payload as a webhook: contract, filter and targets. Nothing is stored or sent.'),
    payload, h('div', { class: 'row' }, type, run), out);
}
