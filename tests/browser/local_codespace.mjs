// Drives Debian's Chromium through playwright-core: log in, fill the spawn form, watch the
// progress page, land in JupyterLab, open VS Code and see its workbench.
// Environment: HUB_URL, HUB_USER, HUB_PASSWORD, REPO, SERVER, ARTIFACTS.
// Prints one JSON line per milestone; exits non-zero on the first failure.
import { say, shot, withSpawnForm } from './hub_browser.mjs';

const { HUB_URL, HUB_USER, SERVER } = process.env;

await withSpawnForm('99-failure', async ({ context, page }) => {
  await shot(page, '01-spawn-form');
  await Promise.all([page.waitForNavigation(), page.click('form [type=submit]')]);
  say('submitted', { url: page.url() });

  // The event log (a collapsed <details>) accumulates every step: read textContent, which
  // includes it, and stop waiting as soon as the page leaves for the lab.
  let environment = false;
  if (page.url().includes('/spawn-pending/')) {
    await page.waitForFunction(
      () => document.body.textContent.includes('environment:') || !location.pathname.includes('/spawn-pending/'),
      null, { timeout: 300000, polling: 50 }).catch(() => null);
    environment = await page.evaluate(() => document.body.textContent.includes('environment:'))
      .catch(() => false);
    if (environment) await shot(page, '02-progress').catch(() => {});
  }
  say('progress', { environment });

  await page.waitForURL(/\/user\/[^/]+\/[^/]+\/lab/, { timeout: 300000 });
  await page.waitForSelector('.jp-LauncherCard', { timeout: 120000 });
  const cards = await page.$$eval('.jp-LauncherCard', (els) => els.map((e) => e.innerText.trim()));
  await shot(page, '03-jupyterlab');
  say('lab', { cards });
  if (!cards.some((text) => text.includes('VS Code'))) throw new Error('no VS Code launcher card');

  const code = await context.newPage();
  code.setDefaultTimeout(120000);
  await code.goto(`${HUB_URL}user/${HUB_USER}/${SERVER}/vscode/`);
  await code.waitForSelector('.monaco-workbench', { timeout: 120000 });
  await code.waitForSelector('.explorer-folders-view, .explorer-viewlet', { timeout: 60000 })
    .catch(() => null);
  await code.waitForTimeout(2000);
  await shot(code, '04-vscode');
  const title = await code.title();
  say('vscode', { title });
});
