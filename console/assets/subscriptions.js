// Subscriptions and topics: enable/disable, a test delivery, secret
// rotation (the new secret shown once), circuit state, rate limit and a
// chart of the last hour's attempts and failures per subscription.

import { get, post, patch } from './api.js';
import { h, mount, flash, table, busy, nextView, shownOnce, circuit, chart, confirmed, pretty } from './ui.js';

const REFRESH_MS = 10000;

export function subscriptionsView() {
  const alive = nextView();
  const body = h('div', null, h('p', null, 'Loading…'));
  const output = h('div', { id: 'sub-output' });
  let timer;
  mount(h('h1', null, 'Subscriptions'), output, body);

  async function load() {
    const [res, activity] = await Promise.all([
      get('/subscriptions'),
      get('/activity').catch(() => null),
    ]);
    if (!alive()) {
      return;
    }
    const minutes = activity ? activity.minutes : 60;
    const rows = res.subscriptions.map((s) => {
      if (s.broken) {
        return h('tr', { 'data-subscription': s.id }, h('td', null, h('code', null, s.id)),
          h('td', { colspan: 7, class: 'error' }, 'broken: ' + s.broken));
      }
      const toggle = h('input', {
        type: 'checkbox',
        'data-toggle': s.id,
        'aria-label': 'enabled',
        checked: s.enabled,
        disabled: s.source !== 'api',
        title: s.source !== 'api' ? 'Declared in the Caddyfile: read-only' : '',
      });
      toggle.addEventListener('change', () => busy(toggle, async () => {
        try {
          const v = await patch('/subscriptions/' + encodeURIComponent(s.id), { enabled: toggle.checked });
          flash(`${s.name || s.id} ${v.enabled ? 'enabled' : 'disabled'}`);
          toggle.checked = v.enabled;
          toggle.closest('tr').dataset.enabled = String(v.enabled);
        } catch (err) {
          toggle.checked = !toggle.checked;
          throw err;
        }
      }));
      const test = h('button', { type: 'button', class: 'small', 'data-test': s.id }, 'Test delivery');
      test.addEventListener('click', () => busy(test, async () => {
        const r = await post('/subscriptions/' + encodeURIComponent(s.id) + '/test', { topic: (s.topics || [])[0], data: { test: true } });
        output.replaceChildren(h('div', { class: 'panel', 'data-test-result': s.id },
          h('h2', null, 'Test delivery to ', s.name || s.id),
          h('p', null, r.success ? '✓ ' : '✗ ', `status ${r.status || '—'} in ${r.duration_ms} ms`, r.error ? ' — ' + r.error : ''),
          r.body ? h('pre', { class: 'json' }, r.body) : ''));
      }));
      const rotate = confirmed('Rotate secret', 'A new secret signs from now on (the old one also signs for 24 h). Rotate?', async () => {
        const r = await post('/subscriptions/' + encodeURIComponent(s.id) + '/rotate-secret', {});
        output.replaceChildren(shownOnce('New secret of ' + (s.name || s.id), r.secret));
      }, { class: 'small', 'data-rotate': s.id, 'data-action': 'rotate', disabled: s.source !== 'api' });
      return h('tr', { 'data-subscription': s.id, 'data-enabled': String(s.enabled) },
        h('td', null, h('strong', null, s.name || s.id), h('br'), h('code', null, s.id),
          s.disabled_reason ? h('p', { class: 'error' }, s.disabled_reason) : ''),
        h('td', null, h('code', null, s.url), h('br'), (s.topics || []).join(', ')),
        h('td', null, toggle),
        h('td', null, circuit(s.circuit)),
        h('td', null, s.rate_limit || '—'),
        h('td', null, chart(activity && activity.destinations[s.id], minutes, s.name || s.id)),
        h('td', null, h('a', { href: '#/events?subscription=' + encodeURIComponent(s.id) }, 'Deliveries')),
        h('td', { class: 'actions' }, test, rotate));
    });
    body.replaceChildren(
      activity ? h('div', { class: 'total' }, h('h2', null, 'All destinations, last hour'), chart(activity.total, minutes, 'all'),
        activity.truncated ? h('p', { class: 'hint' }, 'Counted from the first part of the hour only: it held too many entries.') : '') : '',
      rows.length
        ? table(['Subscription', 'URL and topics', 'Enabled', 'Circuit', 'Rate limit', 'Last hour', '', ''], rows, { class: 'list' })
        : h('p', { class: 'empty' }, 'No subscriptions yet.'));
  }

  function refresh() {
    // Not while a confirmation or a shown secret is open in the table.
    if (body.querySelector('.confirm .question')) {
      return;
    }
    load().catch((err) => alive() && flash(err.message, 'error'));
  }
  load().catch((err) => alive() && body.replaceChildren(h('p', { class: 'error' }, err.message)));
  timer = setInterval(refresh, REFRESH_MS);
  return () => clearInterval(timer);
}

export function topicsView() {
  const alive = nextView();
  const body = h('div', null, h('p', null, 'Loading…'));
  mount(h('h1', null, 'Topics'), body);
  get('/topics').then((res) => {
    if (!alive()) {
      return;
    }
    const rows = res.topics.map((t) => h('tr', { 'data-topic': t.name },
      h('td', null, h('code', null, t.name)),
      h('td', null, t.broken ? h('span', { class: 'error' }, 'broken: ' + t.broken) : (t.description || '')),
      h('td', null, t.schema ? h('details', null, h('summary', null, 'schema'), pretty(t.schema)) : 'none'),
      h('td', null, t.source)));
    body.replaceChildren(rows.length
      ? table(['Topic', 'Description', 'Contract', 'Source'], rows, { class: 'list' })
      : h('p', { class: 'empty' }, 'No topics yet.'));
  }).catch((err) => alive() && body.replaceChildren(h('p', { class: 'error' }, err.message)));
}
