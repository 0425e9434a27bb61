// Passkeys on the sign-in pages (/oauth/authorize): the one script they load. It asks this
// server for request options bound to this browser (POST /oauth/passkey with the form's csrf
// field and, on the second-factor page, its mfa_token), calls navigator.credentials.get, and
// posts the answer with the page's own form. Without it (or without WebAuthn) the pages work
// with a password and a code as before.
'use strict';

(function () {
  const form = document.getElementById('passkey-form');
  if (!form || !window.PublicKeyCredential || !navigator.credentials) {
    return;
  }
  const button = document.getElementById('passkey-button');
  const status = document.getElementById('passkey-status');
  const secondStep = Boolean(form.elements.mfa_token);

  function b64url(buffer) {
    let s = '';
    for (const b of new Uint8Array(buffer)) {
      s += String.fromCharCode(b);
    }
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function bytes(text) {
    const s = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
    return Uint8Array.from(s, (c) => c.charCodeAt(0));
  }

  // Request options bound to this browser, or null (no passkey for this account).
  async function options() {
    const body = new URLSearchParams();
    body.set('csrf', form.elements.csrf.value);
    if (secondStep) {
      body.set('mfa_token', form.elements.mfa_token.value);
    }
    const res = await fetch('/oauth/passkey', {
      method: 'POST',
      body,
      credentials: 'same-origin',
    });
    return res.ok ? res.json() : null;
  }

  async function use(opts) {
    const publicKey = {
      challenge: bytes(opts.challenge),
      rpId: opts.rpId,
      timeout: opts.timeout,
      userVerification: opts.userVerification,
      allowCredentials: opts.allowCredentials.map((c) => ({ type: c.type, id: bytes(c.id) })),
    };
    const cred = await navigator.credentials.get({ publicKey });
    const r = cred.response;
    form.elements.passkey_id.value = b64url(cred.rawId);
    form.elements.passkey_client_data.value = b64url(r.clientDataJSON);
    form.elements.passkey_authenticator_data.value = b64url(r.authenticatorData);
    form.elements.passkey_signature.value = b64url(r.signature);
    form.elements.passkey_user_handle.value = r.userHandle ? b64url(r.userHandle) : '';
    form.submit();
  }

  async function start() {
    let opts = null;
    if (secondStep) {
      // Offered only when the account has a passkey.
      opts = await options().catch(() => null);
      if (!opts) {
        return;
      }
    }
    form.hidden = false;
    button.addEventListener('click', async () => {
      button.disabled = true;
      status.textContent = 'Waiting for your passkey…';
      try {
        await use(opts || (await options()));
      } catch (e) {
        status.textContent = 'The passkey was not used. Try again, or use the form above.';
        button.disabled = false;
        opts = null;
      }
    });
  }

  start();
})();
