// Shared by the browser drivers: Debian Chromium through playwright-core, the hub's login
// form, and the spawn form with the repository filled in.
// Environment: HUB_URL, HUB_USER, HUB_PASSWORD, REPO, SERVER, ARTIFACTS, CHROMIUM,
// PLAYWRIGHT_CORE_DIR. Drivers print one JSON line per milestone (`say`).
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(process.env.PLAYWRIGHT_CORE_DIR + '/');
const { chromium } = require('playwright-core');

const { HUB_URL, HUB_USER, HUB_PASSWORD, REPO, SERVER, ARTIFACTS } = process.env;

export const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
export const say = (step, extra = {}) => console.log(JSON.stringify({ step, ...extra }));

// Log in with a fresh browser, then run `body({ context, page })`, for drivers that do not
// start on the spawn form. `permissions` are granted to the hub's origin (e.g.
// ['clipboard-read', 'clipboard-write']). On the first failure, save `<failureShot>.png` and
// exit non-zero.
export async function withLoggedIn(failureShot, body, { permissions = [] } = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  if (permissions.length) {
    await context.grantPermissions(permissions, { origin: new URL(HUB_URL).origin });
  }
  const page = await context.newPage();
  page.setDefaultTimeout(120000);
  try {
    await page.goto(`${HUB_URL}hub/login`);
    await page.fill('#username_input', HUB_USER);
    await page.fill('#password_input', HUB_PASSWORD);
    await Promise.all([page.waitForNavigation(), page.click('#login_submit')]);
    say('logged-in', { url: page.url() });
    await body({ context, page });
  } catch (error) {
    await shot(page, failureShot).catch(() => {});
    console.error(error);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

// Log in, open the spawn form of SERVER with REPO filled in, then run `body({ context, page })`.
// On the first failure, save `<failureShot>.png` and exit non-zero.
export async function withSpawnForm(failureShot, body) {
  await withLoggedIn(failureShot, async ({ context, page }) => {
    await page.goto(`${HUB_URL}hub/spawn/${HUB_USER}/${SERVER}`);
    await page.fill('#codespace-repo', REPO);
    await body({ context, page });
  });
}
