// Drives Debian's Chromium through playwright-core: the codespaces home page (its rows, the
// copied launch link, the share box with the README badge, a refused New-codespace form),
// then a launch link opened by the logged-in browser: the page that says what will happen,
// the progress page, and JupyterLab with the linked notebook open.
// Environment: HUB_URL, HUB_USER, HUB_PASSWORD, ARTIFACTS, LAUNCH (the launch link),
// NOTEBOOK (its `open` path). Prints one JSON line per milestone; exits non-zero on the first
// failure.
import { say, shot, withLoggedIn } from './hub_browser.mjs';

const { HUB_URL, LAUNCH, NOTEBOOK } = process.env;

const rowsOf = (page) => page.$$eval('#my-codespaces .codespace-row', (rows) => rows.map((row) => ({
  name: row.dataset.server,
  state: row.dataset.state,
  repo: row.querySelector('.codespace-repo-url')?.textContent.trim(),
  ref: row.querySelector('.codespace-ref')?.textContent.trim(),
  environment: row.querySelector('.codespace-env')?.textContent.trim(),
  activity: row.querySelector('.time-col')?.textContent.trim(),
  buttons: [...row.querySelectorAll('.codespace-actions .btn:not([hidden])')]
    .map((b) => b.textContent.trim() || b.getAttribute('aria-label')),
})));

await withLoggedIn('home-99-failure', async ({ page }) => {
  await page.goto(`${HUB_URL}hub/home`);
  await page.waitForFunction(() => window._codespaces_page_loaded === true);
  const rows = await rowsOf(page);
  await shot(page, 'home-01-codespaces');

  // the first row's "Copy link" puts the absolute launch link on the clipboard
  await page.click('#my-codespaces .codespace-row .copy-link');
  await page.waitForSelector('#my-codespaces .copy-link[data-copied]');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  await page.click('#my-codespaces .codespace-share summary');
  const share = await page.$eval('#my-codespaces .codespace-share-row', (row) => ({
    link: row.querySelector('.launch-link').value,
    badge: row.querySelector('.launch-badge').value,
    badgeLoaded: row.querySelector('img').naturalWidth > 0,
  }));
  await shot(page, 'home-02-share');
  say('home', { rows, copied, share });

  // a repository the spawner refuses: the error on the page, nothing created
  await page.fill('#codespace-repo', 'relative/path');
  await Promise.all([page.waitForNavigation(), page.click('#create-codespace')]);
  const refused = {
    error: (await page.textContent('#codespace-error')).trim(),
    kept: await page.inputValue('#codespace-repo'),
    rows: (await rowsOf(page)).map((row) => row.name),
  };
  await shot(page, 'home-03-refused');
  say('refused', refused);

  // a launch link: what will happen, one click, the progress, the notebook in the lab
  await page.goto(LAUNCH);
  const plan = (await page.textContent('#launch-plan')).replace(/\s+/g, ' ').trim();
  await shot(page, 'launch-01-confirm');
  say('confirm', { plan });
  await Promise.all([page.waitForNavigation(), page.click('#launch-codespace')]);
  const pending = page.url();
  if (pending.includes('/spawn-pending/')) {
    await page.waitForSelector('#progress-message', { timeout: 60000 }).catch(() => null);
    await page.waitForTimeout(1000);
    await shot(page, 'launch-02-progress').catch(() => {});
  }
  await page.waitForURL(/\/user\/[^/]+\/[^/]+\/lab/, { timeout: 300000 });
  await page.waitForSelector('.jp-NotebookPanel', { timeout: 120000 });
  await page.waitForSelector('.jp-NotebookPanel .jp-Cell', { timeout: 60000 });
  // the notebook names the codespace's kernel: it starts without asking
  await page.waitForFunction(() => document.querySelector('.jp-NotebookPanel')
    ?.textContent.includes('Idle') || document.body.textContent.includes('| Idle'),
  null, { timeout: 60000 }).catch(() => null);
  await page.waitForTimeout(1000);
  const lab = await page.evaluate(() => ({
    url: location.pathname,
    tab: document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel')
      ?.textContent,
    cells: [...document.querySelectorAll('.jp-NotebookPanel .jp-Cell .jp-InputArea-editor')]
      .map((cell) => cell.textContent.trim()),
  }));
  await shot(page, 'launch-03-notebook');
  say('lab', { pending, notebook: NOTEBOOK, ...lab });
}, { permissions: ['clipboard-read', 'clipboard-write'] });
