// imangor security console. One ES module, no dependency, no build step.
//
// Its own security:
// - It signs in as the server's built-in first-party OAuth client: the authorization code flow
//   with PKCE (RFC 6749 §4.1, RFC 7636) through the server's sign-in page, so this script never
//   sees a password. Only the PKCE verifier, the state and the page to come back to wait in
//   sessionStorage during the trip to that page, and are removed when the answer comes back.
// - The tokens live in this module's scope only (never in web storage or a cookie): an
//   injected script cannot read them back later, and a reload signs out.
// - Every value from the API is put in the page as text (textContent, createElement); no
//   markup is ever parsed from data. The page runs under a CSP without 'unsafe-inline'.
// - Every action is an API call with the bearer token, so the server's policy decides; the
//   controls the policy forbids to a role are not shown, and the API refuses them anyway.

let session = null; // { access, refresh, me: {id, email, full_name, role} }

// The console's OAuth client, built into the server (service::oauth::CONSOLE_CLIENT_ID).
const CLIENT_ID = 'c0a5c01e-0000-4000-8000-000000000001';
// The one sessionStorage entry: { verifier, state, back } while the sign-in page is open.
const FLOW_KEY = 'imangor.console.signin';

// What each role may do, as in docs/authorization.md (the API enforces it; this only hides controls).
const RIGHTS = {
  admin: { audit: true, review: true, setRole: true, disable: ['user', 'manager', 'admin'], incidents: true, evidence: true },
  manager: { audit: false, review: false, setRole: false, disable: ['user'], incidents: true, evidence: false },
};
const LEVELS = ['low', 'medium', 'high', 'critical'];
const STATUSES = ['open', 'contained', 'resolved'];
const ROLES = ['user', 'manager', 'admin'];
// A name of an affected system, as the API checks it.
const SYSTEM = /^[a-z0-9_-]{1,32}$/;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- DOM building (text only)

/** An element with attributes and children; strings become text nodes, never markup. */
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = String(v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function when(iso) {
  if (!iso) return 'never';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

function table(columns, rows, caption) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'stack' },
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.title)))),
      h('tbody', {}, rows.length === 0
        ? h('tr', {}, h('td', { colspan: columns.length }, 'Nothing to show.'))
        : rows.map((r) => h('tr', {}, columns.map((c) => {
          const v = c.cell(r);
          return h('td', { 'data-label': c.title, class: c.num ? 'num' : (c.wrap ? 'wrap' : null) }, v);
        }))))));
}

function say(message) {
  $('status').textContent = message;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { $('status').textContent = ''; }, 6000);
}

function levelBadge(level) {
  return h('span', { class: `level level-${LEVELS.includes(level) ? level : 'low'}` }, level);
}

/** An incident's level, and the level a plain user's report asked for while it waits for triage. */
function levelOf(i) {
  return i.requested_level && i.requested_level !== i.level
    ? [levelBadge(i.level), ` (asked: ${i.requested_level})`]
    : levelBadge(i.level);
}

/** The affected systems, as text. */
function systemsOf(i) {
  return (i.affected_systems || []).join(', ') || '—';
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, body) {
    const detail = body && (body.detail || body.error_description || body.error);
    super(detail ? `${status}: ${detail}` : `request failed (${status})`);
    this.status = status;
    this.body = body;
  }
}

async function call(method, path, { form, json } = {}) {
  const headers = { Accept: 'application/json' };
  // The token endpoints take credentials in the form, never the bearer token.
  if (session && !path.startsWith('/api/v1/token')) headers.Authorization = `Bearer ${session.access}`;
  let body;
  if (form) body = new URLSearchParams(form);
  else if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  const res = await fetch(path, { method, headers, body, credentials: 'omit', cache: 'no-store', redirect: 'error' });
  const type = res.headers.get('content-type') || '';
  const data = type.includes('json') ? await res.json() : null;
  return { res, data };
}

/** An API call as the signed-in person; one refresh when the access token has expired. */
async function api(method, path, options) {
  const sent = session && session.access;
  let { res, data } = await call(method, path, options);
  // A sensitive operation asks for a recent second factor (RFC 9470): the session is fine.
  if (res.status === 401 && stepUpAsked(res)) throw new ApiError(401, { detail: STEP_UP });
  // Expired: refresh once (unless another call already did) and send again.
  if (res.status === 401 && session && (session.access !== sent || await refresh())) {
    ({ res, data } = await call(method, path, options));
  }
  if (res.status === 401) {
    signOut('Your session ended; sign in again.');
    throw new ApiError(401, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

const STEP_UP = 'this needs a recent second factor: sign out, then sign in again with your authenticator code or a passkey';

/** A 401 that asks for a recent second factor (RFC 9470), not a new session. */
function stepUpAsked(res) {
  return /error="insufficient_user_authentication"/.test(res.headers.get('www-authenticate') || '');
}

// One refresh at a time: a refresh token is single-use, and presenting a spent one again is
// treated by the server as theft (the session is revoked and an incident raised).
let refreshing = null;
function refresh() {
  if (!refreshing) {
    const current = session;
    const form = { grant_type: 'refresh_token', refresh_token: current.refresh, client_id: CLIENT_ID };
    refreshing = call('POST', '/api/v1/token', { form })
      .then(({ res, data }) => {
        if (!res.ok || session !== current) return false;
        current.access = data.access_token;
        current.refresh = data.refresh_token;
        return true;
      })
      .catch(() => false)
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

// ---------------------------------------------------------------- signing in and out

/** base64url without padding (RFC 4648 §5), as PKCE writes it. */
function base64url(bytes) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** 32 random bytes in base64url: a PKCE verifier (43 characters) or a state. */
function randomText() {
  const bytes = new Uint8Array(32);
  crypto.getRandomValues(bytes);
  return base64url(bytes);
}

/** The server's RFC 8414 metadata: where to sign in, and the issuer its answers name. */
async function metadata() {
  const res = await fetch('/.well-known/oauth-authorization-server',
    { headers: { Accept: 'application/json' }, credentials: 'omit', cache: 'no-store', redirect: 'error' });
  if (!res.ok) throw new Error(`The server's OAuth metadata could not be read (${res.status}).`);
  return res.json();
}

/** Where the sign-in page sends the browser back: this page, without query or fragment. */
function redirectUri() {
  return `${location.origin}/console`;
}

/** The "Sign in" button: a PKCE pair and a state, kept for the return, then the sign-in page. */
async function startSignIn() {
  const error = $('signin-error');
  const button = $('signin-start');
  error.textContent = '';
  button.disabled = true;
  try {
    if (!window.isSecureContext || !crypto.subtle) {
      throw new Error('Signing in needs a secure page: open the console over https (or on 127.0.0.1).');
    }
    const meta = await metadata();
    const home = meta.authorization_endpoint.replace(/\/oauth\/authorize$/, '/console');
    if (home !== redirectUri()) {
      // The server sends the browser back to its public URL only (IMANGOR_PUBLIC_URL).
      error.replaceChildren('Sign-in returns to ', h('a', { href: home }, home), ': open the console there.');
      button.disabled = false;
      return;
    }
    const verifier = randomText();
    const state = randomText();
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
    sessionStorage.setItem(FLOW_KEY, JSON.stringify({ verifier, state, back: location.hash }));
    const query = new URLSearchParams({
      response_type: 'code',
      client_id: CLIENT_ID,
      redirect_uri: redirectUri(),
      state,
      code_challenge: base64url(new Uint8Array(digest)),
      code_challenge_method: 'S256',
    });
    location.assign(`${meta.authorization_endpoint}?${query}`);
  } catch (e) {
    error.textContent = e.message;
    button.disabled = false;
  }
}

/**
 * The return from the sign-in page (`/console?code=..&state=..&iss=..`, or `error=..`): the
 * query leaves the address bar and the history at once; the state must be this tab's and the
 * issuer the server's (RFC 9207) before the code is exchanged with the verifier. False when the
 * page was not opened by such a return.
 */
async function finishSignIn() {
  const params = new URLSearchParams(location.search);
  const saved = sessionStorage.getItem(FLOW_KEY);
  sessionStorage.removeItem(FLOW_KEY);
  if (!params.has('code') && !params.has('error')) return false;
  let flow = null;
  try {
    flow = JSON.parse(saved);
  } catch (_) { /* none, or not ours */ }
  const back = flow && typeof flow.back === 'string' && flow.back.startsWith('#/') ? flow.back : '';
  history.replaceState(null, '', location.pathname + back);
  const error = $('signin-error');
  const button = $('signin-start');
  button.disabled = true;
  try {
    if (!flow || typeof flow.state !== 'string' || params.get('state') !== flow.state) {
      throw new Error('This sign-in was not started from this tab. Sign in again.');
    }
    const meta = await metadata();
    if (params.get('iss') !== meta.issuer) {
      throw new Error('The sign-in answer names another issuer than this server. Sign in again.');
    }
    if (params.has('error')) {
      throw new Error(`Sign-in refused: ${params.get('error_description') || params.get('error')}.`);
    }
    const form = {
      grant_type: 'authorization_code',
      code: params.get('code'),
      redirect_uri: redirectUri(),
      code_verifier: flow.verifier,
      client_id: CLIENT_ID,
    };
    const { res, data } = await call('POST', '/api/v1/token', { form });
    if (res.status === 429) {
      throw new Error(`Too many attempts. Retry in ${res.headers.get('retry-after') || 'a few'} seconds.`);
    }
    if (!res.ok) {
      const why = data && (data.error_description || data.error);
      throw new Error(`Sign-in failed (${res.status}${why ? `: ${why}` : ''}). Sign in again.`);
    }
    session = { access: data.access_token, refresh: data.refresh_token, me: null, enrolOnly: enrolOnly(data.scope) };
    const me = await api('GET', '/api/v1/users/me');
    if (!Object.hasOwn(RIGHTS, me.role)) {
      // A plain user gets no console: end the session that was just opened.
      await revoke();
      session = null;
      throw new Error(`This console is for admins and managers; your account's role is ${me.role}.`);
    }
    session.me = me;
    enter();
  } catch (e) {
    session = null;
    error.textContent = e.message;
    button.focus();
  } finally {
    button.disabled = false;
  }
  return true;
}

async function revoke() {
  if (!session) return;
  const refreshToken = session.refresh;
  try {
    await call('POST', '/api/v1/token/revoke', { form: { token: refreshToken } });
  } catch (_) { /* the session expires on its own */ }
}

function signOut(message) {
  const had = session;
  if (had) revoke();
  session = null;
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('who').textContent = '';
  const view = $('view');
  view.replaceChildren();
  view.hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message || '';
  if (location.hash) history.replaceState(null, '', location.pathname);
  $('signin-start').focus();
}

function enter() {
  const me = session.me;
  const rights = RIGHTS[me.role];
  for (const a of document.querySelectorAll('#nav a')) {
    a.hidden = (Boolean(a.dataset.needs) && !rights[a.dataset.needs]) || (session.enrolOnly && a.dataset.page !== 'security');
  }
  $('nav').hidden = false;
  $('signout').hidden = false;
  $('who').textContent = `${me.full_name} (${me.role})`;
  $('signin').hidden = true;
  $('view').hidden = false;
  const home = session.enrolOnly ? '#/security' : '#/dashboard';
  if (!location.hash || location.hash === '#/' || (session.enrolOnly && location.hash !== home)) location.hash = home;
  else route();
}

// ---------------------------------------------------------------- routing

const PAGES = {
  dashboard: { title: 'Dashboard', render: dashboard },
  incidents: { title: 'Incidents', render: incidents },
  incident: { title: 'Incident', render: incident, nav: 'incidents' },
  users: { title: 'Users', render: users },
  audit: { title: 'Audit trail', render: audit, needs: 'audit' },
  'access-review': { title: 'Access review', render: accessReview, needs: 'review' },
  security: { title: 'Sign-in security', render: security },
};

async function route() {
  if (!session || !session.me) return;
  const parts = location.hash.replace(/^#\/?/, '').split('?')[0].split('/');
  let name = parts[0] || 'dashboard';
  if (name === 'incidents' && parts[1]) name = 'incident';
  if (session.enrolOnly) name = 'security';
  const page = PAGES[name] || PAGES.dashboard;
  const rights = RIGHTS[session.me.role];
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === (page.nav || name)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const view = $('view');
  const heading = h('h1', { tabindex: '-1' }, page.title);
  // A reload of the browser signs out (the token is in memory only): this reloads the figures.
  const again = h('button', { type: 'button', class: 'secondary refresh', onclick: () => route() }, 'Refresh');
  view.replaceChildren(h('div', { class: 'page-head' }, heading, again));
  document.title = `${page.title} · imangor console`;
  if (page.needs && !rights[page.needs]) {
    append(view, [h('p', { class: 'error' }, 'Your role does not give access to this page.')]);
    return;
  }
  const body = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
  append(view, [body]);
  heading.focus();
  try {
    const content = await page.render(parts.slice(1));
    body.replaceChildren(...[content].flat());
  } catch (e) {
    body.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
  }
  body.removeAttribute('aria-busy');
}

// ---------------------------------------------------------------- dashboard

async function dashboard() {
  const sum = await api('GET', '/api/v1/security/summary');
  const unresolved = sum.incidents.reduce((n, l) => n + l.open + l.contained, 0);
  const throttled = sum.throttled.reduce((n, t) => n + t.requests, 0);
  const logins = sum.logins.reduce((n, x) => ({
    success: n.success + x.success, failure: n.failure + x.failure, throttled: n.throttled + x.throttled,
  }), { success: 0, failure: 0, throttled: 0 });
  return [
    h('div', { class: 'cards' },
      h('div', { class: 'card' },
        h('h2', {}, 'Unresolved incidents'),
        h('p', { class: 'big' }, unresolved),
        table([
          { title: 'Level', cell: (l) => levelBadge(l.level) },
          { title: 'Open', num: true, cell: (l) => h('a', { href: `#/incidents?level=${l.level}&status=open` }, l.open) },
          { title: 'Contained', num: true, cell: (l) => l.contained },
        ], sum.incidents.slice().reverse(), 'Unresolved incidents by level')),
      h('div', { class: 'card' },
        h('h2', {}, 'Active sessions'),
        h('p', { class: 'big', id: 'active-sessions' }, sum.active_sessions)),
      h('div', { class: 'card' },
        h('h2', {}, 'Throttled requests'),
        h('p', { class: 'big' }, throttled),
        h('p', { class: 'muted' }, 'Refused by a rate limit since this server started: ',
          sum.throttled.map((t) => `${t.limit} ${t.requests}`).join(', '), '.'))),
    h('h2', {}, 'Sign-in attempts, last 24 hours'),
    h('p', { class: 'muted' }, `${logins.success} succeeded, ${logins.failure} failed, ${logins.throttled} throttled.`),
    legend(),
    loginChart(sum.logins),
    h('details', {},
      h('summary', {}, 'The same figures as a table'),
      table([
        { title: 'Hour (UTC)', cell: (x) => when(x.start) },
        { title: 'Succeeded', num: true, cell: (x) => x.success },
        { title: 'Failed', num: true, cell: (x) => x.failure },
        { title: 'Throttled', num: true, cell: (x) => x.throttled },
      ], sum.logins, 'Sign-in attempts by hour')),
    h('p', { class: 'muted' }, `Figures taken ${when(sum.at)}.`),
  ];
}

function legend() {
  return h('p', { class: 'legend' },
    ['success', 'failure', 'throttled'].map((k) => h('span', {},
      h('span', { class: `swatch bar-${k}`, 'aria-hidden': 'true' }), { success: 'Succeeded', failure: 'Failed', throttled: 'Throttled' }[k])));
}

/** Stacked bars drawn as SVG elements (no chart library, no inline style). */
function loginChart(hours) {
  const W = 960; const H = 240; const left = 34; const bottom = 22; const top = 8;
  const max = Math.max(1, ...hours.map((x) => x.success + x.failure + x.throttled));
  const step = (W - left) / hours.length;
  const scale = (H - bottom - top) / max;
  const total = hours.reduce((n, x) => n + x.success + x.failure + x.throttled, 0);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `Sign-in attempts per hour over 24 hours: ${total} in all, at most ${max} in one hour.` });
  svg.append(s('line', { class: 'axis', x1: left, y1: H - bottom, x2: W, y2: H - bottom }));
  svg.append(s('text', { x: left - 4, y: top + 10, 'text-anchor': 'end' }, max));
  svg.append(s('text', { x: left - 4, y: H - bottom, 'text-anchor': 'end' }, 0));
  hours.forEach((x, i) => {
    let y = H - bottom;
    const g = s('g', {});
    g.append(s('title', {}, `${when(x.start)}: ${x.success} succeeded, ${x.failure} failed, ${x.throttled} throttled`));
    for (const k of ['success', 'failure', 'throttled']) {
      const bar = x[k] * scale;
      if (bar <= 0) continue;
      y -= bar;
      g.append(s('rect', { class: `bar-${k}`, x: (left + i * step + 2).toFixed(1), y: y.toFixed(1), width: Math.max(1, step - 4).toFixed(1), height: bar.toFixed(1) }));
    }
    svg.append(g);
    if (i % 6 === 0 || i === hours.length - 1) {
      svg.append(s('text', { x: (left + i * step + step / 2).toFixed(1), y: H - 6, 'text-anchor': 'middle' }, new Date(x.start).toISOString().slice(11, 16)));
    }
  });
  return svg;
}

// ---------------------------------------------------------------- incidents

function hashQuery() {
  const q = location.hash.indexOf('?');
  return new URLSearchParams(q >= 0 ? location.hash.slice(q + 1) : '');
}

async function incidents() {
  const wanted = hashQuery();
  const level = LEVELS.includes(wanted.get('level')) ? wanted.get('level') : '';
  const status = STATUSES.includes(wanted.get('status')) ? wanted.get('status') : '';
  const system = SYSTEM.test(wanted.get('affected_system') || '') ? wanted.get('affected_system') : '';
  const choice = (id, label, values, current) => h('div', {},
    h('label', { for: id }, label),
    h('select', { id, name: id.replace('filter-', '') },
      h('option', { value: '' }, 'any'),
      values.map((v) => h('option', { value: v, selected: v === current }, v))));
  const form = h('form', { class: 'inline', 'aria-label': 'Filter incidents' },
    choice('filter-level', 'Level', LEVELS, level),
    choice('filter-status', 'Status', STATUSES, status),
    h('div', {},
      h('label', { for: 'filter-system' }, 'Affected system'),
      h('input', { id: 'filter-system', name: 'system', value: system, size: '12', maxlength: '32' })),
    h('div', {}, h('button', { type: 'submit' }, 'Filter')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (form.elements.level.value) q.set('level', form.elements.level.value);
    if (form.elements.status.value) q.set('status', form.elements.status.value);
    const wantedSystem = form.elements.system.value.trim();
    if (wantedSystem && !SYSTEM.test(wantedSystem)) {
      say('An affected system is 1 to 32 characters of a-z, 0-9, _ and -.');
      form.elements.system.focus();
      return;
    }
    if (wantedSystem) q.set('affected_system', wantedSystem);
    const next = `#/incidents${q.toString() ? `?${q}` : ''}`;
    if (location.hash === next) route(); else location.hash = next;
  });
  const list = h('div', {});
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');
  let cursor = null;
  const rows = [];
  const load = async () => {
    const q = new URLSearchParams({ limit: '50' });
    if (level) q.set('level', level);
    if (status) q.set('status', status);
    if (system) q.set('affected_system', system);
    if (cursor) q.set('cursor', cursor);
    const page = await api('GET', `/api/v1/incidents?${q}`);
    rows.push(...page.items);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    list.replaceChildren(table([
      { title: 'Last seen', cell: (i) => when(i.last_seen) },
      { title: 'Kind', cell: (i) => [h('a', { href: `#/incidents/${encodeURIComponent(i.id)}` }, i.kind), i.recurrence_of ? ' (recurrence)' : null, i.drill ? ' (drill)' : null] },
      { title: 'Level', cell: (i) => levelOf(i) },
      { title: 'Status', cell: (i) => i.status },
      { title: 'Systems', wrap: true, cell: (i) => systemsOf(i) },
      { title: 'Count', num: true, cell: (i) => i.count },
      { title: 'Description', wrap: true, cell: (i) => (i.description.length > 160 ? `${i.description.slice(0, 160)}…` : i.description) },
    ], rows, 'Incidents'));
  };
  more.addEventListener('click', () => load().catch((e) => say(e.message)));
  await load();
  return [form, list, h('div', { class: 'pager' }, more)];
}

async function incident(parts) {
  const id = decodeURIComponent(parts[0] || '');
  const i = await api('GET', `/api/v1/incidents/${encodeURIComponent(id)}`);
  const out = [
    h('p', {}, h('a', { href: '#/incidents' }, '← All incidents')),
    h('dl', { class: 'fields' },
      h('dt', {}, 'Kind'), h('dd', {}, i.kind),
      h('dt', {}, 'Level'), h('dd', { id: 'incident-level' }, levelOf(i)),
      h('dt', {}, 'Status'), h('dd', { id: 'incident-status' }, i.status),
      h('dt', {}, 'Affected systems'), h('dd', { id: 'incident-systems' }, systemsOf(i)),
      h('dt', {}, 'Subject'), h('dd', {}, i.subject || '—'),
      h('dt', {}, 'Reported by'), h('dd', {}, i.reported_by || 'a detector'),
      h('dt', {}, 'Count'), h('dd', {}, i.count),
      h('dt', {}, 'First seen'), h('dd', {}, when(i.first_seen)),
      h('dt', {}, 'Last seen'), h('dd', {}, when(i.last_seen)),
      i.resolved_at ? [h('dt', {}, 'Resolved'), h('dd', {}, when(i.resolved_at))] : null,
      i.recurrence_of ? [h('dt', {}, 'Recurrence of'), h('dd', { id: 'incident-recurrence-of' }, incidentLink(i.recurrence_of))] : null,
      i.drill ? [h('dt', {}, 'Drill'), h('dd', { id: 'incident-drill' }, 'opened by imangor drill traffic, not an attack')] : null,
      h('dt', {}, 'Description'), h('dd', { class: 'pre', id: 'incident-description' }, i.description)),
  ];
  if (RIGHTS[session.me.role].evidence) {
    const button = h('button', { type: 'button', class: 'secondary', id: 'incident-evidence' }, 'Download evidence bundle');
    button.addEventListener('click', () => downloadEvidence(i).catch((e) => say(e.message)));
    out.push(h('p', {}, button, ' ',
      h('span', { class: 'muted' }, 'The incident, its audit events and their signed chain, checked offline with ',
        h('code', {}, 'imangor evidence verify FILE'), '.')));
  }
  // The chain of recurrences, when this incident is part of one (oldest first, this one marked).
  const chain = i.recurrences || [];
  if (chain.length > 1) {
    out.push(h('h2', { id: 'recurrences-title' }, 'Recurrences'));
    out.push(h('div', { id: 'incident-recurrences' }, table([
      { title: 'Incident', cell: (l) => (l.id === i.id ? 'this one' : incidentLink(l.id)) },
      { title: 'Level', cell: (l) => levelBadge(l.level) },
      { title: 'Status', cell: (l) => l.status },
      { title: 'First seen', cell: (l) => when(l.first_seen) },
      { title: 'Resolved', cell: (l) => (l.resolved_at ? when(l.resolved_at) : '—') },
    ], chain, 'Chain of recurrences')));
  }
  // What to do: the kind's runbook, the guide's five steps.
  if (i.runbook) {
    out.push(h('h2', { id: 'runbook-title' }, 'Runbook'));
    out.push(h('ol', { id: 'incident-runbook', class: 'runbook', 'aria-labelledby': 'runbook-title' },
      i.runbook.map((s) => h('li', {}, h('strong', {}, s.step), ': ', s.text))));
  }
  const next = { open: ['contained', 'resolved'], contained: ['resolved'], resolved: [] }[i.status] || [];
  if (next.length) {
    const form = h('form', { 'aria-labelledby': 'workflow-title' },
      h('h2', { id: 'workflow-title' }, 'Contain or resolve'),
      h('label', { for: 'incident-next' }, 'New status'),
      h('select', { id: 'incident-next', name: 'status' }, next.map((v) => h('option', { value: v }, v))),
      h('label', { for: 'incident-new-level' }, 'Level (triage)'),
      h('select', { id: 'incident-new-level', name: 'level' },
        LEVELS.map((v) => h('option', { value: v, selected: v === i.level }, v))),
      h('label', { for: 'incident-note' }, 'Note (why; required)'),
      h('textarea', { id: 'incident-note', name: 'note', required: true, maxlength: '2000' }),
      h('div', {}, h('button', { type: 'submit' }, 'Save')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const note = form.elements.note.value;
      if (!note.trim()) { say('A note is required.'); form.elements.note.focus(); return; }
      const json = { status: form.elements.status.value, note };
      if (form.elements.level.value !== i.level) json.level = form.elements.level.value;
      try {
        await api('PATCH', `/api/v1/incidents/${encodeURIComponent(i.id)}`, { json });
        say(`Incident ${form.elements.status.value}.`);
        route();
      } catch (err) { say(err.message); }
    });
    out.push(form);
  }
  out.push(containment(i));
  out.push(h('h2', {}, 'Notes'));
  out.push(table([
    { title: 'When', cell: (n) => when(n.at) },
    { title: 'Status', cell: (n) => n.status },
    { title: 'By', cell: (n) => n.author_id || 'system' },
    { title: 'Note', wrap: true, cell: (n) => h('span', { class: 'pre' }, n.note) },
  ], i.notes || [], 'Notes'));
  if (i.events) {
    out.push(h('h2', {}, 'Events'));
    out.push(eventTable(i.events, 'Events of this incident'));
  }
  return out;
}

/**
 * Downloads an incident's evidence bundle as a file. It needs the bearer token, so it is fetched
 * here rather than linked; re-indenting it keeps its digests (the manifest hashes a canonical form).
 */
async function downloadEvidence(i) {
  const bundle = await api('GET', `/api/v1/incidents/${encodeURIComponent(i.id)}/evidence`);
  const blob = new Blob([`${JSON.stringify(bundle, null, 2)}\n`], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: `incident-${i.id}-evidence.json` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  say('Evidence bundle downloaded.');
}

/** A link to another incident's page. */
function incidentLink(id) {
  return h('a', { href: `#/incidents/${encodeURIComponent(id)}`, class: 'id' }, id);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ADDRESS = /^[0-9a-f.:]+(\/\d+)?$/i;

/** Containment actions, prefilled from the incident's subject (an account id or an address). */
function containment(i) {
  const subject = i.subject || '';
  const isAccount = UUID.test(subject);
  const isAddress = !isAccount && ADDRESS.test(subject);
  const form = h('form', { 'aria-labelledby': 'contain-title' },
    h('h2', { id: 'contain-title' }, 'Containment'),
    h('label', { for: 'contain-action' }, 'Action'),
    h('select', { id: 'contain-action', name: 'action' },
      h('option', { value: 'revoke_sessions', selected: isAccount }, 'End every session of an account'),
      h('option', { value: 'disable_user' }, 'Disable an account'),
      h('option', { value: 'block_address', selected: isAddress }, 'Block an address or network')),
    h('label', { for: 'contain-target' }, 'Account id, or address / network (CIDR)'),
    h('input', { id: 'contain-target', name: 'target', value: subject, required: true, autocomplete: 'off' }),
    h('label', { for: 'contain-seconds' }, 'Block for (seconds)'),
    h('input', { id: 'contain-seconds', name: 'seconds', type: 'number', min: '1', max: '2592000', value: '900' }),
    h('label', { for: 'contain-reason' }, 'Reason (for the audit trail)'),
    h('input', { id: 'contain-reason', name: 'reason', maxlength: '200', value: `incident ${i.id}` }),
    h('div', {}, h('button', { type: 'submit', class: 'danger' }, 'Apply')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const action = form.elements.action.value;
    const target = form.elements.target.value.trim();
    const body = { action };
    if (action === 'block_address') {
      body.cidr = target;
      body.seconds = Number(form.elements.seconds.value) || 900;
      body.reason = form.elements.reason.value || 'containment';
    } else body.user_id = target;
    try {
      const r = await api('POST', '/api/v1/containment', { json: body });
      say(r.sessions_revoked !== undefined ? `${r.sessions_revoked} session(s) ended.`
        : r.blocked_until ? `Blocked until ${when(r.blocked_until)}.` : 'Done.');
    } catch (err) { say(err.message); }
  });
  return form;
}

function eventTable(items, caption) {
  return table([
    { title: 'Seq', num: true, cell: (e) => (e.seq ? e.seq : 'pending') },
    { title: 'When', cell: (e) => when(e.at) },
    { title: 'Action', cell: (e) => e.action },
    { title: 'Outcome', cell: (e) => e.outcome },
    { title: 'Severity', cell: (e) => e.severity },
    { title: 'Actor', wrap: true, cell: (e) => e.actor_id || '—' },
    { title: 'Target', wrap: true, cell: (e) => e.target || '—' },
    { title: 'Address', cell: (e) => e.ip || '—' },
    { title: 'Detail', wrap: true, cell: (e) => e.detail || '' },
  ], items, caption);
}

// ---------------------------------------------------------------- users

async function users() {
  const me = session.me;
  const rights = RIGHTS[me.role];
  let accounts = [];
  let cursor = null;
  let query = '';
  const search = h('input', { id: 'user-search', type: 'search', autocomplete: 'off', placeholder: 'email or name', maxlength: '100' });
  const list = h('div', {});
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');

  const update = async (a, change, done) => {
    try {
      const updated = await api('PATCH', `/api/v1/users/${encodeURIComponent(a.id)}`, { json: change });
      Object.assign(a, updated);
      say(done);
      draw();
    } catch (err) { say(err.message); }
  };
  const endSessions = async (a) => {
    try {
      const r = await api('POST', '/api/v1/containment', { json: { action: 'revoke_sessions', user_id: a.id } });
      say(`${r.sessions_revoked} session(s) of ${a.email} ended.`);
    } catch (err) { say(err.message); }
  };
  const roleCell = (a) => {
    if (!rights.setRole || a.id === me.id) return a.role;
    const select = h('select', { 'aria-label': `Role of ${a.email}`, class: 'role-select' },
      ROLES.map((r) => h('option', { value: r, selected: r === a.role }, r)));
    const save = h('button', { type: 'button', class: 'secondary' }, 'Set role');
    save.addEventListener('click', () => update(a, { role: select.value }, `${a.email} is now ${select.value}.`));
    return h('span', { class: 'row-actions' }, select, save);
  };
  const actions = (a) => {
    if (a.id === me.id || !rights.disable.includes(a.role)) return '';
    const toggle = h('button', { type: 'button', class: a.disabled ? 'secondary' : 'danger' }, a.disabled ? 'Enable' : 'Disable');
    toggle.setAttribute('aria-label', `${a.disabled ? 'Enable' : 'Disable'} ${a.email}`);
    toggle.addEventListener('click', () => update(a, { disabled: !a.disabled }, `${a.email} ${a.disabled ? 'enabled' : 'disabled'}.`));
    const end = h('button', { type: 'button', class: 'secondary', 'aria-label': `End sessions of ${a.email}` }, 'End sessions');
    end.addEventListener('click', () => endSessions(a));
    return h('span', { class: 'row-actions' }, toggle, end);
  };
  const draw = () => {
    const shown = accounts;
    list.replaceChildren(
      h('p', { class: 'muted' }, query ? `${shown.length} account(s) match “${query}”${cursor ? ' so far' : ''}.`
        : `${shown.length} account(s)${cursor ? ' so far' : ''}.`),
      table([
        { title: 'Email', wrap: true, cell: (a) => a.email },
        { title: 'Name', wrap: true, cell: (a) => h('span', { class: 'user-name' }, a.full_name) },
        { title: 'Role', cell: roleCell },
        { title: 'Status', cell: (a) => (a.disabled ? h('span', { class: 'bad' }, 'disabled') : 'active') },
        { title: 'Last login', cell: (a) => when(a.last_login) },
        { title: 'Second factor', cell: secondFactorCell },
        { title: 'Actions', cell: actions },
      ], shown, 'Accounts'));
  };
  let generation = 0;
  const load = async () => {
    const mine = ++generation;
    const q = new URLSearchParams({ limit: '100' });
    if (query) q.set('q', query);
    if (cursor) q.set('cursor', cursor);
    const page = await api('GET', `/api/v1/users?${q}`);
    if (mine !== generation) return; // a newer search answered first, or will
    accounts.push(...page.items);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    draw();
  };
  // The server searches every account; a new search starts from the first page.
  const find = () => {
    const wanted = search.value.trim();
    if (wanted === query) return;
    query = wanted;
    accounts = [];
    cursor = null;
    load().catch((e) => say(e.message));
  };
  let typing;
  search.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(find, 250); });
  more.addEventListener('click', () => load().catch((e) => say(e.message)));
  await load();
  return [
    h('form', { class: 'inline', role: 'search', onsubmit: (e) => { e.preventDefault(); clearTimeout(typing); find(); } },
      h('div', {}, h('label', { for: 'user-search' }, 'Search accounts (email or name)'), search),
      h('div', {}, h('button', { type: 'submit', class: 'secondary' }, 'Search'))),
    list,
    h('div', { class: 'pager' }, more),
  ];
}

/** Whether an account signs in with a second factor; an admin or manager without one stands out. */
function secondFactorCell(a) {
  if (a.second_factor) return h('span', { class: 'ok' }, 'yes');
  return a.role === 'user' ? 'no' : h('span', { class: 'bad' }, 'no (privileged)');
}

// ---------------------------------------------------------------- audit trail

async function audit() {
  const holder = h('div', {});
  const cursors = [null];
  const show = async (index) => {
    const q = new URLSearchParams({ limit: '50' });
    if (cursors[index]) q.set('cursor', cursors[index]);
    const page = await api('GET', `/api/v1/audit?${q}`);
    cursors[index + 1] = page.next_cursor;
    const c = page.chain;
    const pending = !c.verified && !c.first_problem && !c.full_check_at;
    const banner = pending
      ? h('p', { class: 'banner', id: 'chain-check' }, 'Chain check pending: this server has not walked the whole chain since it started (it does within a minute).')
      : c.verified
      ? h('p', { class: 'banner ok', id: 'chain-check' }, `Chain intact: ${c.rows} rows after checkpoint ${c.since_seq} hashed now`
        + ` (${c.unsigned} awaiting a checkpoint, ${c.unsealed} not sealed yet); `
        + (c.full_check_at ? `whole chain walked by this server at ${c.full_check_at}, holds through row ${c.verified_through}.` : 'whole-chain walk of this server pending.'))
      : h('p', { class: 'banner bad', id: 'chain-check', role: 'alert' }, c.first_problem
        ? `Chain BROKEN at row ${c.first_problem.seq} (${c.first_problem.kind}): ${c.first_problem.message}`
        : 'Chain check failed.');
    const newer = h('button', { type: 'button', class: 'secondary', disabled: index === 0 }, 'Newer');
    const older = h('button', { type: 'button', class: 'secondary', disabled: !page.next_cursor }, 'Older');
    newer.addEventListener('click', () => show(index - 1).catch((e) => say(e.message)));
    older.addEventListener('click', () => show(index + 1).catch((e) => say(e.message)));
    holder.replaceChildren(banner, h('p', { class: 'muted' }, `Page ${index + 1}, newest first.`),
      eventTable(page.items, 'Audit trail'), h('div', { class: 'pager' }, newer, older));
  };
  await show(0);
  return holder;
}

// ---------------------------------------------------------------- access review

async function accessReview() {
  const holder = h('div', {});
  const days = h('input', { id: 'review-days', type: 'number', min: '1', max: '3650', value: '90' });
  const form = h('form', { class: 'inline', 'aria-label': 'Review settings' },
    h('div', {}, h('label', { for: 'review-days' }, 'Dormant after (days)'), days),
    h('div', {}, h('button', { type: 'submit' }, 'Review')));
  const show = async () => {
    const r = await api('GET', `/api/v1/access-review?dormant_days=${encodeURIComponent(days.value || '90')}`);
    holder.replaceChildren(
      h('p', { class: 'muted' }, `${r.items.length} account(s) to review: every admin and manager, and accounts not used for ${r.dormant_days} days or never.`),
      table([
        { title: 'Email', wrap: true, cell: (f) => f.email },
        { title: 'Name', wrap: true, cell: (f) => f.full_name },
        { title: 'Role', cell: (f) => f.role },
        { title: 'Status', cell: (f) => (f.disabled ? 'disabled' : 'active') },
        { title: 'Last login', cell: (f) => when(f.last_login) },
        { title: 'Why listed', cell: (f) => f.flags.join(', ') },
      ], r.items, 'Access review'));
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); show().catch((err) => say(err.message)); });
  await show();
  return [form, holder];
}

// ---------------------------------------------------------------- sign-in security (second factors)
//
// The signed-in person's own second factors (API.md "Multi-factor authentication"). The API asks
// the current password again for every change, so this page, and only this page, has password
// fields: what is typed goes in the JSON body of one call and the form is emptied after it.
// The QR code is the server's SVG shown through an <img> from a data: URL (the CSP's img-src
// allows data:): an image runs no script and loads nothing, and this script parses no markup.

/**
 * A token narrowed to the profile: the role must have a second factor and this sign-in had none
 * (IMANGOR_MFA_REQUIRED_ROLES). The console then offers the enrolment page only.
 */
function enrolOnly(scope) {
  return typeof scope === 'string' && scope.split(' ').every((x) => x === 'profile');
}

async function security() {
  const state = await api('GET', '/api/v1/users/me/mfa');
  const totp = h('section', { id: 'totp', 'aria-labelledby': 'totp-title' });
  const show = (next) => totp.replaceChildren(...next);
  show(totpStatus(state, show));
  const out = [totp, passkeysSection(state)];
  if (session.enrolOnly) {
    out.unshift(h('p', { class: 'banner', id: 'enrol-only' },
      'Your role must sign in with a second factor. Set up an authenticator app here; then sign out and sign in again with its code to use the rest of the console.'));
  }
  return out;
}

/**
 * The caller's passkeys (WebAuthn, docs/mfa.md "Passkeys"): listed from `state.passkeys`,
 * registered with the current password and this browser's authenticator, removed with the
 * current password (the API also asks a second factor used within 15 minutes).
 */
function passkeysSection(state) {
  const list = Array.isArray(state.passkeys) ? state.passkeys : [];
  const holder = h('div', { id: 'passkeys' },
    h('p', { id: 'passkeys-state' }, list.length
      ? `${list.length} passkey(s): each signs you in alone, or as the second factor after your password.`
      : 'None: a passkey signs you in without a password, or as the second factor after it.'),
    list.length ? table([
      { title: 'Name', wrap: true, cell: (p) => h('span', { class: 'passkey-name' }, p.name) },
      { title: 'Registered', cell: (p) => when(p.created_at) },
      { title: 'Last used', cell: (p) => when(p.last_used_at) },
    ], list, 'Passkeys') : null);
  if (window.PublicKeyCredential && navigator.credentials) holder.append(passkeyRegisterForm());
  else holder.append(h('p', { class: 'muted' }, 'This browser cannot make passkeys.'));
  if (list.length) holder.append(passkeyRemoveForm(list));
  return h('section', { id: 'passkeys-section', 'aria-labelledby': 'passkeys-title' },
    h('h2', { id: 'passkeys-title' }, 'Passkeys'), holder);
}

/** A name, the current password, then the browser's authenticator makes the passkey. */
function passkeyRegisterForm() {
  const name = h('input', { id: 'passkey-name', name: 'passkey_name', required: true, maxlength: '64', autocomplete: 'off' });
  const form = secretForm('passkey-new', 'Register a passkey', false, 'Register passkey', async (fields) => {
    const options = await api('POST', '/api/v1/users/me/passkeys/options', { json: { current_password: fields.password } });
    const credential = await createPasskey(options);
    const made = await api('POST', '/api/v1/users/me/passkeys', { json: { name: name.value.trim(), credential } });
    say(`The passkey “${made.name}” was registered.`);
    route();
  }, 'Your browser or your phone keeps it; it signs you in without a password.');
  form.querySelector('label[for="passkey-new-password"]')
    .before(h('label', { for: 'passkey-name' }, 'Name (such as the device that keeps it)'), name);
  return form;
}

/** Which passkey, and the current password. */
function passkeyRemoveForm(list) {
  const which = h('select', { id: 'passkey-remove-which', name: 'passkey' },
    list.map((p) => h('option', { value: p.id }, p.name)));
  const form = secretForm('passkey-remove', 'Remove a passkey', false, 'Remove passkey', async (fields) => {
    const gone = list.find((p) => p.id === which.value);
    await api('DELETE', `/api/v1/users/me/passkeys/${encodeURIComponent(which.value)}`,
      { json: { current_password: fields.password } });
    say(`The passkey “${gone ? gone.name : which.value}” was removed; your other sessions were ended.`);
    route();
  }, 'Needs a second factor used in the last 15 minutes; your other sessions end.', 'danger');
  form.querySelector('label[for="passkey-remove-password"]')
    .before(h('label', { for: 'passkey-remove-which' }, 'Passkey'), which);
  return form;
}

/** base64url (with or without padding) to bytes. */
function unbase64url(text) {
  const raw = atob(String(text).replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

/**
 * navigator.credentials.create with the server's creation options (binary fields in
 * base64url); the answer with its binary fields in base64url, as the API takes it.
 */
async function createPasskey(o) {
  const publicKey = {
    rp: o.rp,
    user: { id: unbase64url(o.user.id), name: o.user.name, displayName: o.user.displayName },
    challenge: unbase64url(o.challenge),
    pubKeyCredParams: o.pubKeyCredParams,
    timeout: o.timeout,
    attestation: o.attestation,
    authenticatorSelection: o.authenticatorSelection,
    excludeCredentials: (o.excludeCredentials || []).map((c) => ({ type: c.type, id: unbase64url(c.id) })),
  };
  let cred;
  try {
    cred = await navigator.credentials.create({ publicKey });
  } catch (e) {
    throw new Error(`No passkey was made (${e.name || 'refused'}): ${e.message}`);
  }
  if (!cred) throw new Error('No passkey was made.');
  const bytes = (buffer) => base64url(new Uint8Array(buffer));
  return {
    id: cred.id,
    rawId: bytes(cred.rawId),
    type: cred.type,
    response: { clientDataJSON: bytes(cred.response.clientDataJSON), attestationObject: bytes(cred.response.attestationObject) },
  };
}

/** TOTP on or off, with what can be done from there. */
function totpStatus(state, show) {
  const out = [h('h2', { id: 'totp-title' }, 'Authenticator app')];
  if (!state.totp) {
    out.push(h('p', { id: 'totp-state' }, 'Off: signing in asks for your password only.'));
    const form = secretForm('totp-start', 'Set up an authenticator app', false, 'Start', async (fields) => {
      const e = await api('POST', '/api/v1/users/me/mfa/totp', { json: { current_password: fields.password } });
      show(totpEnrol(e, show));
    });
    out.push(form);
    return out;
  }
  out.push(h('p', { id: 'totp-state' }, 'On: signing in asks for a code from your authenticator app after your password. ',
    h('span', { id: 'recovery-left' }, `${state.recovery_codes_left} of 10 recovery codes left.`)));
  out.push(secretForm('recovery-new', 'New recovery codes', true, 'Make new recovery codes', async (fields) => {
    const r = await api('POST', '/api/v1/users/me/mfa/recovery-codes', { json: { current_password: fields.password, code: fields.code } });
    show(recoveryCodes(r.recovery_codes, 'New recovery codes: the old ones no longer work.'));
  }, 'The old codes stop working.'));
  out.push(secretForm('totp-remove', 'Remove the authenticator app', true, 'Remove', async (fields) => {
    await api('DELETE', '/api/v1/users/me/mfa/totp', { json: { current_password: fields.password, code: fields.code } });
    say('The authenticator app was removed; its recovery codes no longer work.');
    route();
  }, 'Signing in then asks for your password only, and the recovery codes stop working.', 'danger'));
  return out;
}

/** The enrolment: the QR code and the secret for typing, then the first code confirms it. */
function totpEnrol(e, show) {
  const qr = h('img', {
    id: 'totp-qr', class: 'qr', width: '224', height: '224',
    alt: 'QR code of the authenticator app secret (the same secret is written below)',
    src: `data:image/svg+xml;base64,${btoa(e.qr_svg)}`,
  });
  const grouped = (e.secret.match(/.{1,4}/g) || []).join(' ');
  const form = h('form', { 'aria-labelledby': 'totp-confirm-title' },
    h('h3', { id: 'totp-confirm-title' }, 'Confirm with a first code'),
    h('label', { for: 'totp-confirm-code' }, 'Code from the app (6 digits)'),
    codeInput('totp-confirm-code'),
    h('p', { class: 'error', role: 'alert' }),
    h('div', { class: 'row-actions' },
      h('button', { type: 'submit' }, 'Confirm'),
      h('button', { type: 'button', class: 'secondary', onclick: () => route() }, 'Cancel')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    submitting(form, async () => {
      const r = await api('POST', '/api/v1/users/me/mfa/totp/confirm', { json: { code: form.elements.code.value.trim() } });
      show(recoveryCodes(r.recovery_codes, 'The authenticator app is set up: signing in asks for its code from now on.'));
    });
  });
  return [
    h('h2', { id: 'totp-title' }, 'Set up an authenticator app'),
    h('p', {}, 'Scan this QR code with an authenticator app (any app that reads TOTP codes), or type the secret into it.'),
    h('div', { class: 'qr-box' }, qr,
      h('dl', { class: 'fields' },
        h('dt', {}, 'Secret'), h('dd', {}, h('code', { id: 'totp-secret', class: 'secret' }, grouped)),
        h('dt', {}, 'Kind'), h('dd', {}, 'time-based (TOTP), SHA-1, 6 digits, every 30 seconds'))),
    form,
  ];
}

/** Recovery codes, shown once. */
function recoveryCodes(codes, headline) {
  const done = h('button', { type: 'button', onclick: () => route() }, 'I have kept them');
  return [
    h('h2', { id: 'totp-title' }, 'Recovery codes'),
    h('p', { class: 'banner ok', role: 'status' }, headline),
    h('p', {}, 'Keep these ten codes somewhere safe, apart from your phone: each signs you in once instead of an app code if the app is lost. ',
      h('strong', {}, 'They are shown only now.')),
    h('ol', { id: 'recovery-codes', class: 'codes' }, codes.map((c) => h('li', {}, h('code', {}, c)))),
    h('p', {}, done),
  ];
}

/** A six-digit code field. */
function codeInput(id) {
  return h('input', {
    id, name: 'code', required: true, inputmode: 'numeric', autocomplete: 'one-time-code',
    pattern: '[0-9]{6}', maxlength: '6', class: 'code',
  });
}

/**
 * A form that asks the current password (and, when `withCode`, an app code) for `action`; the
 * fields are emptied whatever the answer, and an error is shown in the form.
 */
function secretForm(id, title, withCode, button, action, note, kind) {
  const form = h('form', { id, 'aria-labelledby': `${id}-title` },
    h('h3', { id: `${id}-title` }, title),
    note ? h('p', { class: 'muted' }, note) : null,
    // For password managers: whose password this is.
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: session.me.email, hidden: true, readonly: true }),
    h('label', { for: `${id}-password` }, 'Current password'),
    h('input', { id: `${id}-password`, name: 'password', type: 'password', required: true, autocomplete: 'current-password', maxlength: '1024' }),
    withCode ? [h('label', { for: `${id}-code` }, 'Code from the app (6 digits)'), codeInput(`${id}-code`)] : null,
    h('p', { class: 'error', role: 'alert' }),
    h('div', {}, h('button', { type: 'submit', class: kind || null }, button)));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const fields = { password: form.elements.password.value, code: withCode ? form.elements.code.value.trim() : undefined };
    form.elements.password.value = '';
    if (withCode) form.elements.code.value = '';
    submitting(form, () => action(fields));
  });
  return form;
}

/** Runs a form's call with its button disabled; a refusal is written in the form. */
async function submitting(form, action) {
  const button = form.querySelector('button[type="submit"]');
  const error = form.querySelector('.error');
  error.textContent = '';
  button.disabled = true;
  try {
    await action();
  } catch (e) {
    const fields = e.body && Array.isArray(e.body.errors) ? e.body.errors.map((x) => x.message).join('; ') : '';
    error.textContent = e.body && e.body.type === 'urn:imangor:problem:wrong_password' ? 'The password is not right.'
      : fields ? `Refused: ${fields}.` : e.message;
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- start

function start() {
  $('signin-start').addEventListener('click', startSignIn);
  $('signout').addEventListener('click', () => signOut('Signed out.'));
  window.addEventListener('hashchange', route);
  finishSignIn().then((answered) => { if (!answered) $('signin-start').focus(); });
}

start();
