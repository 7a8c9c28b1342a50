// Events and deliveries: a live list of deliveries (polled every 2 s from
// the time of the latest change seen), filters, retry of one delivery,
// of a selection, or of every failed delivery of a subscription or
// workflow; and an event's page with its body and every attempt.

import { get, post, query, serverNow, serverKnown } from './api.js';
import { h, mount, flash, time, badge, table, pretty, busy, nextView, confirmed } from './ui.js';

const POLL_MS = 2000;
const MAX_ROWS = 500;
const MAX_PAGES = 5;

// toISO turns a datetime-local value into RFC 3339 (UTC).
function toISO(v) {
  if (!v) {
    return '';
  }
  const d = new Date(v);
  return isNaN(d) ? '' : d.toISOString();
}

function lastAttempt(rec) {
  return rec.attempts && rec.attempts.length ? rec.attempts[rec.attempts.length - 1] : null;
}

export function eventsView() {
  const alive = nextView();
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const filters = {
    workflow: h('input', { name: 'workflow', list: 'workflow-ids', placeholder: 'workflow id', value: params.get('workflow') || '' }),
    subscription: h('input', { name: 'subscription', list: 'subscription-ids', placeholder: 'subscription id', value: params.get('subscription') || '' }),
    status: h('select', { name: 'status' },
      ['', 'pending', 'succeeded', 'failed'].map((s) => h('option', { value: s }, s || 'any status'))),
    since: h('input', { name: 'since', type: 'datetime-local', step: 1 }),
    until: h('input', { name: 'until', type: 'datetime-local', step: 1 }),
  };
  const recs = new Map();
  const selected = new Set();
  let since = new Date(serverNow() - 3600e3).toISOString();
  let timer;
  let polling = false;
  const tbody = h('tbody', { id: 'deliveries' });
  const info = h('p', { class: 'hint', id: 'live-state' });
  const retrySelected = h('button', { type: 'button', id: 'retry-selected', disabled: true }, 'Retry selected');
  const retryAll = confirmed('Retry all failed', 'Queue again every failed delivery of the filtered workflow or subscription in the window?', async () => {
    const f = current();
    if (!f.workflow === !f.subscription) {
      throw new Error('Filter by one workflow or one subscription to retry all its failed deliveries.');
    }
    const res = await post('/deliveries/retry', {
      workflow: f.workflow || undefined, subscription: f.subscription || undefined, status: 'failed',
      since: f.since || undefined, until: f.until || undefined,
    });
    flash(`Queued again: ${res.queued} deliveries` + (res.skipped ? `, ${res.skipped} skipped` : ''));
    poll();
  }, { id: 'retry-all', 'data-action': 'retry-all' });

  function current() {
    return {
      workflow: filters.workflow.value.trim(),
      subscription: filters.subscription.value.trim(),
      status: filters.status.value,
      since: toISO(filters.since.value),
      until: toISO(filters.until.value),
    };
  }

  function render() {
    const rows = [...recs.values()]
      .sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1))
      .slice(0, MAX_ROWS)
      .map((rec) => {
        const at = lastAttempt(rec);
        const box = h('input', {
          type: 'checkbox',
          'aria-label': 'select ' + rec.id,
          checked: selected.has(rec.id),
          disabled: rec.status === 'pending',
          onchange: (e) => {
            if (e.target.checked) {
              selected.add(rec.id);
            } else {
              selected.delete(rec.id);
            }
            retrySelected.disabled = selected.size === 0;
          },
        });
        const retry = h('button', {
          type: 'button',
          class: 'small',
          'data-retry': rec.id,
          disabled: rec.status === 'pending',
          onclick: (e) => busy(e.target, async () => {
            recs.set(rec.id, await post('/deliveries/' + encodeURIComponent(rec.id) + '/retry'));
            flash('Queued again: ' + rec.id);
            render();
          }),
        }, 'Retry');
        return h('tr', { 'data-delivery': rec.id, 'data-event': rec.event_id, class: 'row-' + rec.status },
          h('td', null, box),
          h('td', null, h('a', { href: '#/events/' + encodeURIComponent(rec.event_id), class: 'event-link' }, rec.event_id)),
          h('td', null, rec.subscription_id || rec.destination),
          h('td', null, rec.workflow_id || ''),
          h('td', null, badge(rec.status)),
          h('td', { class: 'num' }, String(rec.attempts ? rec.attempts.length : 0)),
          h('td', { class: 'num' }, at ? String(at.status_code || at.error || '') : ''),
          h('td', null, time(rec.updated_at)),
          h('td', null, retry));
      });
    tbody.replaceChildren(...rows);
    if (!rows.length) {
      tbody.appendChild(h('tr', null, h('td', { colspan: 9, class: 'empty' }, 'No deliveries in this window yet.')));
    }
  }

  // fetchFrom reads the pages of deliveries changed since from (at most
  // MAX_PAGES of 500). It answers whether it read them all, and the time of
  // the last change it read.
  async function fetchFrom(f, from) {
    let after = '';
    let lastAt = '';
    for (let page = 0; page < MAX_PAGES; page++) {
      const res = await get('/deliveries' + query({
        workflow: f.workflow, subscription: f.subscription, status: f.status,
        since: from, until: f.until, after, limit: 500,
      }));
      if (!alive()) {
        return { done: true, lastAt };
      }
      for (const rec of res.deliveries) {
        lastAt = rec.updated_at;
        const old = recs.get(rec.id);
        if (!old || old.updated_at <= rec.updated_at) {
          recs.set(rec.id, rec);
        }
      }
      if (!res.next) {
        return { done: true, lastAt };
      }
      after = res.next;
    }
    return { done: false, lastAt };
  }

  // prune keeps the newest MAX_ROWS deliveries.
  function prune() {
    if (recs.size <= MAX_ROWS) {
      return;
    }
    const keep = [...recs.values()].sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1)).slice(0, MAX_ROWS);
    recs.clear();
    for (const r of keep) {
      recs.set(r.id, r);
    }
  }

  async function poll() {
    if (polling || !alive()) {
      return;
    }
    polling = true;
    try {
      const f = current();
      // Everything stored before this poll started is read by it: the next
      // one starts from there, a few seconds earlier (the Date header the
      // gateway's clock is known from has a precision of one second), so
      // an idle list reads an almost empty window.
      // (Not before the gateway's clock is known.)
      let next = serverKnown() ? new Date(serverNow() - 5000).toISOString() : since;
      const res = await fetchFrom(f, since);
      if (!alive()) {
        return;
      }
      if (!res.done && res.lastAt) {
        // More than MAX_PAGES changed: go on from the last one read.
        next = new Date(new Date(res.lastAt).getTime() - 2000).toISOString();
      }
      if (next > since) {
        since = next;
      }
      prune();
      render();
      info.textContent = 'Live: updated ' + new Date().toLocaleTimeString();
    } catch (err) {
      info.textContent = 'Update failed: ' + err.message;
    } finally {
      polling = false;
    }
  }

  function apply() {
    clearInterval(timer);
    recs.clear();
    selected.clear();
    retrySelected.disabled = true;
    const f = current();
    since = f.since || new Date(serverNow() - 3600e3).toISOString();
    poll();
    if (!f.until) {
      timer = setInterval(poll, POLL_MS);
    } else {
      info.textContent = 'A closed time window: not live.';
    }
  }

  retrySelected.addEventListener('click', () => busy(retrySelected, async () => {
    let n = 0;
    for (const id of [...selected]) {
      recs.set(id, await post('/deliveries/' + encodeURIComponent(id) + '/retry'));
      n++;
    }
    selected.clear();
    retrySelected.disabled = true;
    flash(`Queued again: ${n} deliveries`);
    render();
  }));
  const form = h('form', {
    class: 'filters',
    onsubmit: (e) => {
      e.preventDefault();
      apply();
    },
  },
  h('label', null, 'Workflow ', filters.workflow),
  h('label', null, 'Subscription ', filters.subscription),
  h('label', null, 'Status ', filters.status),
  h('label', null, 'Since ', filters.since),
  h('label', null, 'Until ', filters.until),
  h('button', { type: 'submit' }, 'Apply'));

  // The ids to choose from in the filters.
  const workflowIDs = h('datalist', { id: 'workflow-ids' });
  const subscriptionIDs = h('datalist', { id: 'subscription-ids' });
  get('/workflows').then((res) => workflowIDs.replaceChildren(
    ...res.workflows.map((w) => h('option', { value: w.id }, w.name || w.id)))).catch(() => {});
  get('/subscriptions').then((res) => subscriptionIDs.replaceChildren(
    ...res.subscriptions.map((x) => h('option', { value: x.id }, x.name || x.id)))).catch(() => {});

  mount(
    workflowIDs,
    subscriptionIDs,
    h('h1', null, 'Events & deliveries'),
    form,
    h('div', { class: 'actions' }, retrySelected, retryAll, info),
    h('table', { class: 'list' },
      h('thead', null, h('tr', null,
        ['', 'Event', 'Destination', 'Workflow', 'Status', 'Attempts', 'Last', 'Changed', ''].map((x) => h('th', null, x)))),
      tbody),
    h('p', { class: 'hint' }, `Deliveries changed in the window (default: the last hour), newest first; at most ${MAX_ROWS} shown.`));
  filters.status.value = params.get('status') || '';
  apply();
  return () => clearInterval(timer);
}

// sentHeaders shows the headers an attempt sent, as the delivery log keeps
// them (signatures, secrets and credential-like values are redacted by the
// gateway before they are written).
function sentHeaders(a) {
  const entries = Object.entries(a.request_headers || {}).sort(([x], [y]) => x.localeCompare(y));
  if (entries.length === 0) {
    return '';
  }
  return h('details', { class: 'sent-headers' }, h('summary', null, `${entries.length} headers`),
    table(['Header', 'Value'], entries.map(([k, v]) => h('tr', null, h('td', null, k), h('td', null, h('code', null, v))))));
}

export function eventView(id) {
  const alive = nextView();
  let timer;
  const body = h('div', { id: 'event' }, h('p', null, 'Loading…'));
  mount(h('p', null, h('a', { href: '#/events' }, '← Events & deliveries')), h('h1', null, 'Event ', h('code', null, id)), body);

  async function load() {
    let res;
    try {
      res = await get('/events/' + encodeURIComponent(id));
    } catch (err) {
      if (alive()) {
        body.replaceChildren(h('p', { class: 'error' }, err.message));
      }
      return;
    }
    if (!alive()) {
      return;
    }
    const ev = res.event;
    const parts = [
      table(['Topic', 'Workflow', 'Time', 'Tenant', 'User'], [h('tr', null,
        h('td', null, ev.topic), h('td', null, ev.workflow || ''), h('td', null, time(ev.time)),
        h('td', null, ev.tenant || ''), h('td', null, ev.user || ''))]),
      h('h2', null, 'Body'),
      pretty(ev.data),
      h('h2', null, `Deliveries (${res.deliveries.length})`),
    ];
    for (const rec of res.deliveries) {
      const retry = h('button', {
        type: 'button',
        'data-retry': rec.id,
        disabled: rec.status === 'pending',
        onclick: (e) => busy(e.target, async () => {
          await post('/deliveries/' + encodeURIComponent(rec.id) + '/retry');
          flash('Queued again: ' + rec.id);
          load();
        }),
      }, 'Retry');
      const attempts = rec.attempts.map((a, i) => h('tr', { class: 'attempt', 'data-attempt': i + 1 },
        h('td', { class: 'num' }, String(i + 1)),
        h('td', null, time(a.at)),
        h('td', { class: 'num' }, a.status_code ? String(a.status_code) : ''),
        h('td', { class: 'num' }, a.duration_ms + ' ms'),
        h('td', { class: 'error' }, a.error || ''),
        h('td', null, h('code', { class: 'excerpt' }, a.response || '')),
        h('td', null, sentHeaders(a))));
      parts.push(h('section', { class: 'delivery', 'data-delivery': rec.id },
        h('h3', null, rec.subscription_id || rec.destination, ' ', badge(rec.status), ' ', retry),
        h('p', { class: 'hint' },
          rec.reason ? 'Reason: ' + rec.reason + '. ' : '',
          rec.next_attempt_at ? 'Next attempt ' + time(rec.next_attempt_at) + '. ' : '',
          rec.replays ? `Retried by hand ${rec.replays} time(s).` : ''),
        table(['#', 'At', 'Status', 'Duration', 'Error', 'Response (excerpt)', 'Request headers'], attempts, { class: 'attempts' })));
    }
    body.replaceChildren(...parts);
    clearTimeout(timer);
    if (res.deliveries.some((d) => d.status === 'pending')) {
      timer = setTimeout(load, POLL_MS);
    }
  }
  load();
  return () => clearTimeout(timer);
}
