// The console's entry point: sign-in, navigation between views (by the
// URL's hash) and the teardown of a view's timers when it is left.

import { call, setToken, token, whenUnauthorized } from './api.js';
import { h, mount, flash } from './ui.js';
import { workflowsView, workflowView } from './workflows.js';
import { eventsView, eventView } from './events.js';
import { subscriptionsView, topicsView } from './subscriptions.js';

// The current view's cleanup (timers), run before the next view.
let leave = () => {};

const routes = [
  [/^#\/workflows\/([^/]+)$/, workflowView],
  [/^#\/workflows$/, workflowsView],
  [/^#\/events\/([^/]+)$/, eventView],
  [/^#\/events$/, eventsView],
  [/^#\/subscriptions$/, subscriptionsView],
  [/^#\/topics$/, topicsView],
];

function signInView() {
  document.getElementById('top').hidden = true;
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true, placeholder: 'API token' });
  const err = h('p', { class: 'error', id: 'signin-error', hidden: true });
  const form = h('form', {
    class: 'signin',
    onsubmit: async (e) => {
      e.preventDefault();
      const t = input.value.trim();
      if (!t) {
        return;
      }
      try {
        await call('GET', '/workflows', null, { token: t });
      } catch (ex) {
        err.textContent = ex.status === 401 || ex.status === 403
          ? 'This token is not accepted (it needs full access to the API).'
          : 'Sign-in failed: ' + ex.message;
        err.hidden = false;
        return;
      }
      setToken(t);
      if (!location.hash || location.hash === '#/signin') {
        location.hash = '#/events';
      }
      route();
    },
  },
  h('h1', null, 'hookgate'),
  h('label', { for: 'token' }, 'API token'),
  input,
  h('p', { class: 'hint' }, 'A full-access token of the management API. It is kept in this tab only and forgotten when the tab closes.'),
  h('button', { type: 'submit', id: 'signin' }, 'Sign in'),
  err);
  mount(form);
  input.focus();
}

export function route() {
  leave();
  leave = () => {};
  document.getElementById('flash').hidden = true;
  if (!token()) {
    signInView();
    return;
  }
  document.getElementById('top').hidden = false;
  const hash = location.hash || '#/events';
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', hash.startsWith('#/' + a.dataset.nav));
  }
  for (const [re, view] of routes) {
    const m = hash.match(re);
    if (m) {
      const cleanup = view(...m.slice(1).map(decodeURIComponent));
      if (typeof cleanup === 'function') {
        leave = cleanup;
      }
      return;
    }
  }
  location.hash = '#/events';
}

whenUnauthorized(() => {
  setToken('');
  flash('The token is no longer accepted: sign in again.', 'error');
  route();
});

document.getElementById('signout').addEventListener('click', () => {
  setToken('');
  route();
});
window.addEventListener('hashchange', route);
route();
