// DOM helpers: elements built with createElement and textContent only (no
// HTML strings, so no data is ever parsed as markup), and the small widgets
// the views share.

// h builds an element: attrs set as attributes (on* as listeners, class,
// dataset through data-*), children appended (strings as text).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) {
      continue;
    }
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) {
      continue;
    }
    if (Array.isArray(c)) {
      append(el, c);
    } else if (c instanceof Node) {
      el.appendChild(c);
    } else {
      el.appendChild(document.createTextNode(String(c)));
    }
  }
}

// mount replaces the main area's content.
export function mount(...children) {
  const main = document.getElementById('main');
  main.replaceChildren();
  append(main, children);
}

let flashTimer;

// flash shows a short message (kind: ok or error).
export function flash(msg, kind = 'ok') {
  const el = document.getElementById('flash');
  el.textContent = msg;
  el.className = 'flash ' + kind;
  el.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { el.hidden = true; }, kind === 'error' ? 8000 : 4000);
}

// time formats an ISO time for the reader's locale.
export function time(s) {
  if (!s) {
    return '';
  }
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString();
}

// badge is a status label.
export function badge(status) {
  return h('span', { class: 'badge ' + status, 'data-status': status }, status || '—');
}

// table builds a table from a header row and rows of cells.
export function table(headers, rows, attrs = {}) {
  return h('table', attrs,
    h('thead', null, h('tr', null, headers.map((x) => h('th', null, x)))),
    h('tbody', null, rows));
}

// pretty renders a JSON value, indented.
export function pretty(v) {
  return h('pre', { class: 'json' }, JSON.stringify(v, null, 2));
}

// shownOnce shows a new secret (a key, a signing secret) with a copy button;
// it is not kept anywhere and is gone once the view changes.
export function shownOnce(label, value, extra) {
  const input = h('input', { type: 'text', readonly: true, class: 'secret', 'data-secret': label, value });
  const copy = h('button', {
    type: 'button',
    class: 'copy',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(value);
        flash('Copied');
      } catch {
        input.select();
        flash('Select and copy the value: the clipboard is not available', 'error');
      }
    },
  }, 'Copy');
  return h('div', { class: 'once', role: 'alert' },
    h('p', null, h('strong', null, label), ' — shown once: copy it now, it cannot be shown again.'),
    h('div', { class: 'row' }, input, copy),
    extra);
}

// chart draws per-minute attempts and failures as bars (SVG built through
// the DOM: no inline style).
export function chart(series, minutes, label) {
  const ns = 'http://www.w3.org/2000/svg';
  const w = 4;
  const height = 40;
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('viewBox', `0 0 ${minutes * w} ${height}`);
  svg.setAttribute('width', String(minutes * w));
  svg.setAttribute('height', String(height));
  svg.setAttribute('role', 'img');
  const attempts = series ? series.attempts : new Array(minutes).fill(0);
  const failures = series ? series.failures : new Array(minutes).fill(0);
  const top = Math.max(1, ...attempts);
  let total = 0;
  let failed = 0;
  for (let i = 0; i < minutes; i++) {
    total += attempts[i];
    failed += failures[i];
    for (const [n, cls] of [[attempts[i], 'ok'], [failures[i], 'fail']]) {
      if (!n) {
        continue;
      }
      const bh = Math.max(1, Math.round((n / top) * (height - 2)));
      const r = document.createElementNS(ns, 'rect');
      r.setAttribute('x', String(i * w));
      r.setAttribute('y', String(height - bh));
      r.setAttribute('width', String(w - 1));
      r.setAttribute('height', String(bh));
      r.setAttribute('class', cls);
      svg.appendChild(r);
    }
  }
  const title = document.createElementNS(ns, 'title');
  title.textContent = `${label}: ${total} ${total === 1 ? 'attempt' : 'attempts'}, ${failed} failed in the last ${minutes} minutes`;
  svg.appendChild(title);
  return h('figure', { class: 'chart', 'data-attempts': total, 'data-failures': failed }, svg,
    h('figcaption', null, `${total} ${total === 1 ? 'attempt' : 'attempts'}, ${failed} failed (${minutes} min)`));
}

// busy disables a button while fn runs, and reports a failure.
export async function busy(button, fn) {
  button.disabled = true;
  try {
    return await fn();
  } catch (err) {
    flash(err.message || String(err), 'error');
    return undefined;
  } finally {
    button.disabled = false;
  }
}

// circuit shows a circuit breaker's state.
export function circuit(c) {
  if (!c) {
    return '';
  }
  const s = h('span', { class: 'circuit ' + c.state, 'data-circuit': c.state }, c.state.replace('_', '-'));
  return c.failures ? h('span', null, s, ` (${c.failures} failures)`) : s;
}

let generation = 0;

// nextView starts a view: the function it returns tells whether the view
// is still the one shown (an answer arriving after the user moved on is
// dropped).
export function nextView() {
  const g = ++generation;
  return () => g === generation;
}

// confirmed is a button that asks before it acts: a first click shows the
// question and a confirm button next to it (no modal dialog).
export function confirmed(label, question, fn, attrs = {}) {
  const box = h('span', { class: 'confirm' });
  const yes = h('button', { type: 'button', class: 'danger', 'data-confirm': attrs['data-action'] || label }, 'Yes, ' + label.toLowerCase());
  const no = h('button', { type: 'button', class: 'link' }, 'Cancel');
  const first = h('button', { type: 'button', ...attrs }, label);
  const reset = () => box.replaceChildren(first);
  first.addEventListener('click', () => box.replaceChildren(h('span', { class: 'question' }, question + ' '), yes, no));
  no.addEventListener('click', reset);
  yes.addEventListener('click', () => busy(yes, async () => {
    await fn();
    reset();
  }));
  reset();
  return box;
}
