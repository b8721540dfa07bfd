// Vestibule's passkey script, served from /static/passkey.js and allowed by the pages' CSP (`script-src 'self'`;
// nothing inline). A page holds the ceremony's options in <script type="application/json"> (data, never run) and a
// form marked data-passkey="create" or "get": on submit (or at once with data-autostart), this asks the browser for
// the passkey, puts its answer into the form's `credential` field and submits the form, CSRF token and all.
(function () {
  "use strict";

  // base64url without padding, as the server's options and answers use it.
  function enc(buffer) {
    const bytes = new Uint8Array(buffer);
    let text = "";
    for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function dec(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  // The credential as the server reads it (webauthn-rs's RegisterPublicKeyCredential / PublicKeyCredential).
  function answer(cred, response) {
    return {
      id: cred.id,
      rawId: enc(cred.rawId),
      type: cred.type,
      extensions: cred.getClientExtensionResults(),
      response: response,
    };
  }

  async function create(options) {
    const pk = options.publicKey;
    pk.challenge = dec(pk.challenge);
    pk.user.id = dec(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = dec(c.id); });
    const cred = await navigator.credentials.create({ publicKey: pk });
    const r = cred.response;
    return answer(cred, {
      attestationObject: enc(r.attestationObject),
      clientDataJSON: enc(r.clientDataJSON),
      transports: r.getTransports ? r.getTransports() : [],
    });
  }

  async function get(options) {
    const pk = options.publicKey;
    pk.challenge = dec(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = dec(c.id); });
    const request = { publicKey: pk };
    if (options.mediation) request.mediation = options.mediation;
    const cred = await navigator.credentials.get(request);
    const r = cred.response;
    return answer(cred, {
      authenticatorData: enc(r.authenticatorData),
      clientDataJSON: enc(r.clientDataJSON),
      signature: enc(r.signature),
      userHandle: r.userHandle ? enc(r.userHandle) : null,
    });
  }

  function wire(form) {
    const data = document.getElementById(form.dataset.options);
    const status = form.querySelector(".passkey-status");
    const field = form.querySelector("input[name=credential]");
    if (!data || !field) return;
    if (!window.PublicKeyCredential) {
      // The words come from the page (data-msg-*, in its language).
      if (status) status.textContent = form.dataset.msgUnsupported || "";
      return;
    }
    let busy = false;
    async function run(event) {
      if (event) event.preventDefault();
      if (busy) return;
      busy = true;
      if (status) status.textContent = form.dataset.msgWaiting || "";
      try {
        // Parsed afresh each time: the ceremony functions decode the options in place.
        const options = JSON.parse(data.textContent);
        const answer = form.dataset.passkey === "create" ? await create(options) : await get(options);
        field.value = JSON.stringify(answer);
        // form.submit() fires no submit event: this handler does not run again.
        form.submit();
      } catch (e) {
        busy = false;
        if (status) status.textContent = (form.dataset.msgFailed || "") + " (" + (e && e.name ? e.name : "error") + ")";
      }
    }
    form.addEventListener("submit", run);
    if (form.dataset.autostart === "true") run();
  }

  document.querySelectorAll("form[data-passkey]").forEach(wire);
})();
