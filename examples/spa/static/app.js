// The page script of example-spa: signs in through Vestibule's JSON API (the broker is nested at /auth, so its
// API is at /auth/api/) with fetch, then shows the account, the app's own /api/hello and the account's sessions.
// Plain JavaScript, no build step. It is served from this origin under a CSP that allows no inline script, and it
// writes text with textContent only, so nothing the server answers is ever read as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

// One request to the broker's API or to the app's own. Cookies go to this origin only ("same-origin"), and every
// request that changes something carries X-Vestibule-Request: the API refuses it without that header, which a
// page of another origin cannot add without a CORS preflight that is never granted (see the README).
async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-Vestibule-Request"] = "1";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  // 204 has no body; every other answer is JSON, errors too: {"error": code, "message": words to show}.
  const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

// Shows one of the page's three states.
function show(state) {
  $("loading").hidden = true;
  for (const id of ["sign-in", "second-factor", "signed-in"]) $(id).hidden = id !== state;
}

function showError(message) {
  $("error").textContent = message || "Something went wrong. Try again.";
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function listItem(text) {
  const item = document.createElement("li");
  item.textContent = text;
  return item;
}

// Signed out: a form per password source, a button per redirect source.
async function showSignIn() {
  const { ok, data } = await call("GET", "/auth/api/sources");
  if (!ok) return showError(data.message);
  $("password-sources").replaceChildren();
  $("redirect-sources").replaceChildren();
  for (const source of data.sources) {
    if (source.kind === "password") $("password-sources").append(passwordForm(source));
    else if (source.kind === "redirect") $("redirect-sources").append(redirectButton(source));
  }
  show("sign-in");
}

function passwordForm(source) {
  const form = $("password-source").content.firstElementChild.cloneNode(true);
  form.querySelector("h3").textContent = source.name;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const answer = await call("POST", "/auth/api/login", {
      source: source.id,
      username: form.elements.username.value,
      password: form.elements.password.value,
    });
    form.elements.password.value = "";
    await afterSignIn(answer);
  });
  return form;
}

function redirectButton(source) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = `Sign in with ${source.name}`;
  button.addEventListener("click", async () => {
    clearError();
    // The provider sends the browser back to /auth/callback/{source}, which goes on to `next`: this page.
    await afterSignIn(await call("POST", "/auth/api/login", { source: source.id, next: "/" }));
  });
  return button;
}

// What a sign-in answered: the app, the second step, or a page of the broker's to send the browser to.
async function afterSignIn({ ok, data }) {
  // Every failed sign-in is the same `invalid_credentials`, with the same words; `throttled` says when to retry.
  if (!ok) return showError(data.message);
  if (data.status === "signed_in") return showApp(data.account);
  if (data.status === "second_factor") {
    // The code goes to /auth/api/login/second-factor; a passkey, or setting a factor up when policy requires
    // one, happens on the broker's own page at `location`.
    $("other-ways").href = data.location;
    show("second-factor");
    $("code").focus();
    return;
  }
  // `redirect` (a provider's sign-in page) or `link` (confirming a new way in): the broker's pages take over.
  window.location.assign(data.location);
}

$("code-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError();
  const answer = await call("POST", "/auth/api/login/second-factor", { code: $("code").value.trim() });
  $("code").value = "";
  if (answer.ok) return showApp(null, answer.data.recovery_codes);
  showError(answer.data.message);
  // `invalid_code`: try again. `expired`: the half-signed-in state is gone (too slow, or too many wrong codes).
  if (answer.data.error === "expired") await showSignIn();
});

// Signed in: the account (from the sign-in's answer, or /auth/api/me), the app's own data, the sessions.
async function showApp(account, recoveryCodes) {
  if (!account) {
    const me = await call("GET", "/auth/api/me");
    if (!me.ok) return showSignIn();
    account = me.data;
  }
  $("account-name").textContent = account.display_name || account.email || account.id;
  const codes = recoveryCodes || [];
  $("recovery-codes").replaceChildren(...codes.map(listItem));
  $("recovery").hidden = codes.length === 0;
  show("signed-in");
  const hello = await call("GET", "/api/hello");
  $("hello").textContent = hello.data.message || "";
  await listSessions();
}

async function listSessions() {
  const { ok, data } = await call("GET", "/auth/api/sessions");
  if (!ok) return showError(data.message);
  $("sessions").replaceChildren(...data.sessions.map(sessionItem));
}

function sessionItem(session) {
  const since = new Date(session.created_at * 1000).toLocaleString();
  const browser = session.user_agent || "an unknown browser";
  const item = listItem(
    `${session.current ? "This session" : "Another session"}: ${browser}, from ${session.ip || "an unknown address"}, ` +
      `since ${since}`,
  );
  item.className = session.current ? "current" : "other";
  if (!session.current) {
    const end = document.createElement("button");
    end.type = "button";
    end.textContent = "End";
    end.setAttribute("aria-label", `End the session of ${browser} since ${since}`);
    end.addEventListener("click", async () => {
      clearError();
      const answer = await call("DELETE", `/auth/api/sessions/${encodeURIComponent(session.id)}`);
      if (!answer.ok) showError(answer.data.message);
      await listSessions();
    });
    item.append(" ", end);
  }
  return item;
}

$("sign-out").addEventListener("click", async () => {
  clearError();
  const answer = await call("POST", "/auth/api/logout");
  if (!answer.ok) return showError(answer.data.message);
  for (const id of ["account-name", "hello", "sessions", "recovery-codes"]) $(id).replaceChildren();
  await showSignIn();
});

// A request that never got an answer (the server is down, the network is gone).
window.addEventListener("unhandledrejection", () => showError("The server could not be reached. Try again."));

(async () => {
  const me = await call("GET", "/auth/api/me");
  if (me.ok) await showApp(me.data);
  else await showSignIn();
})();
