// A sample single-page client of imangor (tests/browser, issue 18): a public client on an origin
// of its own. It signs in with the authorization code flow and PKCE S256 (RFC 6749 §4.1,
// RFC 7636), checks `state` and `iss` (RFC 9207) on the way back, exchanges the code, and calls
// the API with the token. The server and the client id come in the start page's query
// (`?server=..&client_id=..`); the token stays in memory. What it got is put on the page and in
// `window.spa` for the test to read.

const $ = (id) => document.getElementById(id);
const KEY = 'sample-spa.signin';

function base64url(bytes) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomText() {
  const bytes = new Uint8Array(32);
  crypto.getRandomValues(bytes);
  return base64url(bytes);
}

const redirectUri = () => `${location.origin}/callback.html`;

async function start() {
  const params = new URLSearchParams(location.search);
  const server = params.get('server');
  const clientId = params.get('client_id');
  $('go').addEventListener('click', async () => {
    const verifier = randomText();
    const state = randomText();
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
    sessionStorage.setItem(KEY, JSON.stringify({ server, clientId, verifier, state }));
    const query = new URLSearchParams({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirectUri(),
      scope: 'profile resources:read',
      state,
      code_challenge: base64url(new Uint8Array(digest)),
      code_challenge_method: 'S256',
    });
    location.assign(`${server}/oauth/authorize?${query}`);
  });
}

async function json(res) {
  return (res.headers.get('content-type') || '').includes('json') ? res.json() : null;
}

async function callback() {
  const params = new URLSearchParams(location.search);
  const flow = JSON.parse(sessionStorage.getItem(KEY) || 'null');
  sessionStorage.removeItem(KEY);
  history.replaceState(null, '', location.pathname);
  const got = { state_ok: false, iss_ok: false };
  window.spa = got;
  try {
    if (!flow || params.get('state') !== flow.state) throw new Error('state mismatch');
    got.state_ok = true;
    const meta = await json(await fetch(`${flow.server}/.well-known/oauth-authorization-server`));
    if (params.get('iss') !== meta.issuer) throw new Error('issuer mismatch');
    got.iss_ok = true;
    if (params.has('error')) throw new Error(`refused: ${params.get('error')}`);
    const tokenRes = await fetch(meta.token_endpoint, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: params.get('code'),
        redirect_uri: redirectUri(),
        code_verifier: flow.verifier,
        client_id: flow.clientId,
      }),
    });
    const token = await json(tokenRes);
    got.token_status = tokenRes.status;
    if (!tokenRes.ok) throw new Error(`token: ${tokenRes.status} ${token && token.error}`);
    got.scope = token.scope;
    got.refresh = typeof token.refresh_token === 'string';
    const auth = { Authorization: `Bearer ${token.access_token}` };
    const me = await fetch(`${flow.server}/api/v1/users/me`, { headers: auth });
    got.me_status = me.status;
    got.email = (await json(me)).email;
    const list = await fetch(`${flow.server}/api/v1/resources`, { headers: auth });
    got.resources_status = list.status;
    got.titles = (await json(list)).items.map((r) => r.title);
    // Its token carries no resources:write: the role would allow the write, the scope does not.
    const write = await fetch(`${flow.server}/api/v1/resources`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ title: 'from the SPA', content: 'x', is_public: false }),
    });
    got.write_status = write.status;
    got.write_challenge = write.headers.get('www-authenticate');
    $('email').textContent = got.email;
    $('scope').textContent = got.scope;
    $('resources').textContent = got.titles.join(', ');
    $('result').textContent = `Signed in as ${got.email}`;
  } catch (e) {
    got.error = e.message;
    $('result').textContent = 'Sign-in failed';
    $('error').textContent = e.message;
  }
  got.done = true;
}

if (location.pathname.endsWith('/callback.html')) callback();
else start();
