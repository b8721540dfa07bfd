// A real OpenID provider (panva/oidc-provider, OpenID Certified) on loopback, for vestibule-oidc's tests and
// benchmark. It is started by the Rust tests themselves (`node server.mjs`); nothing here is for production.
//
// Environment:
//   OP_PORT            port to listen on (0 or unset: any free port; the chosen one is printed)
//   OP_CLIENT_ID       the broker's client id       (default "vestibule")
//   OP_CLIENT_SECRET   the broker's client secret   (required; the tests generate one per run)
//   OP_REDIRECT_URI    the broker's callback URL    (required; exact match, as a real provider does), or `-`:
//                      read it from the first line of stdin once listening (see below)
//   OP_CLAIMS_IN       "id_token" (default): email/profile claims are in the ID token and at userinfo;
//                      "userinfo": they are only at the userinfo endpoint (oidc-provider's conformant default)
//
// When ready it prints one line `OIDC_PROVIDER_READY <issuer>` on stdout; everything else goes to stderr. With
// OP_REDIRECT_URI=- it first prints `OIDC_PROVIDER_LISTENING <issuer>` and waits for the callback URL on stdin: a
// test that must configure a broker with the issuer before the broker (and so its callback URL) exists starts us
// on port 0 all the same, instead of guessing a free port for us.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

// The provider prints development warnings through console.info/warn; keep stdout for the ready line only.
console.info = console.error;
console.warn = console.error;
console.log = console.error;

const clientSecret = process.env.OP_CLIENT_SECRET;
let redirectUri = process.env.OP_REDIRECT_URI;
if (!clientSecret || !redirectUri) {
  process.stderr.write('OP_CLIENT_SECRET and OP_REDIRECT_URI are required\n');
  process.exit(2);
}
const claimsIn = process.env.OP_CLAIMS_IN ?? 'id_token';
if (claimsIn !== 'id_token' && claimsIn !== 'userinfo') {
  process.stderr.write('OP_CLAIMS_IN must be id_token or userinfo\n');
  process.exit(2);
}

// Accounts by login name. devInteractions use the typed login as the account id, so `sub` is the login here; the
// preferred_username differs on purpose so a test can tell which claim became which field.
const ACCOUNTS = {
  alice: {
    email: 'alice@example.com', email_verified: true, name: 'Alice Liddell', preferred_username: 'alice.l',
  },
  bob: {
    email: 'bob@example.com', email_verified: false, name: 'Bob Unverified', preferred_username: 'bob.u',
  },
  carol: {
    email: 'carol@example.com', email_verified: true, name: 'Carol Twofactor', preferred_username: 'carol.t',
    groups: ['admins'],
  },
  dave: {
    email: 'dave@example.com', email_verified: true, name: 'Dave Earlier', preferred_username: 'dave.e',
  },
};

// How the provider says each person signed in (the ID token's `amr`, RFC 8176): carol with a second factor, for
// the broker's `trust_upstream_mfa`; the others with a password only.
const AMR = { alice: ['pwd'], bob: ['pwd'], carol: ['pwd', 'otp', 'mfa'], dave: ['pwd', 'otp', 'mfa'] };

// How long ago each person's login at the provider was (the ID token's `auth_time`): dave's sign-in is answered
// from a single sign-on session two hours old, as a provider with a remembered login would.
const AUTH_AGE_SECS = { dave: 2 * 3600 };

// A fresh signing key per run: no key material is committed.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `k-${randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' };

const server = createServer();
// A fixed OP_PORT was held by the test and released just before this start; in that instant an outgoing loopback
// connection elsewhere on the machine may have picked it as its (ephemeral) source port. Such a connection is
// short-lived, so a taken port is retried for a few seconds rather than failing the test.
const port = Number(process.env.OP_PORT ?? 0);
for (let attempt = 0; ; attempt++) {
  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    break;
  } catch (e) {
    if (e.code !== 'EADDRINUSE' || port === 0 || attempt >= 50) throw e;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
const issuer = `http://127.0.0.1:${server.address().port}`;

// Our stdin is the parent's lifeline (see the end of this file); with OP_REDIRECT_URI=- its first line is the URI.
let stdinText = '';
const firstLine = new Promise((resolve) => {
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk) => {
    stdinText += chunk;
    const end = stdinText.indexOf('\n');
    if (end >= 0) resolve(stdinText.slice(0, end).trim());
  });
});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
if (redirectUri === '-') {
  process.stdout.write(`OIDC_PROVIDER_LISTENING ${issuer}\n`);
  redirectUri = await firstLine;
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.OP_CLIENT_ID ?? 'vestibule',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    // Every ID token says when the person authenticated (`auth_time`), as Google's and most providers' do.
    require_auth_time: true,
  }],
  async findAccount(ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
  claims: {
    // `amr` with the openid scope: oidc-provider puts a claim in the ID token only when a requested scope (or the
    // claims parameter) names it.
    openid: ['sub', 'amr'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'groups'],
  },
  conformIdTokenClaims: claimsIn === 'userinfo',
  cookies: { keys: [randomBytes(32).toString('hex')] },
  jwks: { keys: [signingKey] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
});

// devInteractions finish a login with `{ login: { accountId } }` only; the `amr` a real login screen would record
// is added here, so that it reaches the session and the ID token as a real provider's would.
const interactionFinished = provider.interactionFinished.bind(provider);
provider.interactionFinished = (req, res, result, options) => {
  if (result?.login && AMR[result.login.accountId]) {
    result.login.amr = AMR[result.login.accountId];
  }
  if (result?.login && AUTH_AGE_SECS[result.login.accountId]) {
    result.login.ts = Math.floor(Date.now() / 1000) - AUTH_AGE_SECS[result.login.accountId];
  }
  return interactionFinished(req, res, result, options);
};

server.on('request', provider.callback());
process.stdout.write(`OIDC_PROVIDER_READY ${issuer}\n`);

// The tests kill this process; it also exits when the parent closes our stdin (handlers above), so no stray node
// outlives a crashed test.
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
