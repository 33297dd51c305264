// A real OpenID Connect provider (npm oidc-provider 9, ESM-only) for tests; started by
// tests/helpers/oidc.py as `node oidc_provider.mjs CONFIG.json`.
//
// CONFIG.json: {"node_modules": ".../.tools/node/node_modules", "host": "127.0.0.1",
//   "port": 0, "client": {"client_id", "client_secret", "redirect_uris": [...]},
//   "accounts": {"alice": {"groups": [...], "email": "..."}}, "access_token_ttl": 3600}
// It listens on host:port (0 = a free port), builds the issuer http://host:PORT from the
// port it got, and prints one JSON line {"issuer": ...} on stdout once it answers.
// devInteractions: the login form accepts any password and the login name is the account id;
// a login name missing from "accounts" is a user without groups.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
// ESM ignores NODE_PATH: resolve the package from the tools directory given in the config.
const require = createRequire(join(config.node_modules, 'noop.js'));
const { default: Provider } = await import(pathToFileURL(require.resolve('oidc-provider')).href);

const host = config.host || '127.0.0.1';
const accounts = config.accounts || {};
const accessTokenTtl = config.access_token_ttl || 3600;

function claimsOf(id) {
  const account = accounts[id] || {};
  return {
    sub: id,
    preferred_username: id,
    name: account.name || id,
    email: account.email || `${id}@example.invalid`,
    groups: account.groups || [],
  };
}

const server = createServer();
await new Promise((resolve) => server.listen(config.port || 0, host, resolve));
const issuer = `http://${host}:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client.client_id,
    client_secret: config.client.client_secret,
    redirect_uris: config.client.redirect_uris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups'],
  },
  features: { devInteractions: { enabled: true } },
  // Signed cookies; not `secure`, so they work over plain http on 127.0.0.1.
  cookies: { keys: ['codespace-tests-only-cookie-key'] },
  // Refresh tokens whenever the client may use the grant, with or without offline_access
  // (the default demands offline_access, which is dropped unless prompt=consent).
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  // The in-memory adapter keeps a token for TTL + clockTolerance (default 15 s): with 0 an
  // access token stops working at /me exactly when it expires.
  clockTolerance: 0,
  ttl: {
    AccessToken: accessTokenTtl,
    AuthorizationCode: 600,
    IdToken: 3600,
    RefreshToken: 86400,
    Grant: 86400,
    Interaction: 3600,
    Session: 86400,
  },
  async findAccount(ctx, id) {
    return { accountId: id, claims: async () => claimsOf(id) };
  },
  renderError(ctx, out, error) {
    ctx.type = 'html';
    ctx.body = `<h1>oidc error</h1><pre>${JSON.stringify(out)}</pre>`;
    console.error(`render error: ${error && error.stack}`);
  },
});

for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
  provider.on(event, (ctx, error) => {
    console.error(`${event}: ${error && error.message} ${(error && error.error_detail) || ''}`);
  });
}
provider.on('grant.success', (ctx) => console.error(`grant.success ${ctx.oidc.params.grant_type}`));

const handle = provider.callback();
server.on('request', (req, res) => {
  // Log method and path only: query strings carry codes and state.
  console.error(`${req.method} ${req.url.split('?')[0]}`);
  handle(req, res);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => { server.close(); process.exit(0); });
}
console.log(JSON.stringify({ issuer }));
