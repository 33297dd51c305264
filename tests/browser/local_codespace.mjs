// Drives Debian's Chromium through playwright-core: log in, fill the spawn form, watch the
// progress page, land in JupyterLab (file browser shown, README rendered), open a launcher
// (VS Code in its own section), open VS Code and see its workbench.
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
  // The lab opens on the repository: the file browser shown, the README rendered in front.
  await page.waitForSelector('.jp-MarkdownViewer', { timeout: 120000 });
  await page.waitForSelector('#filebrowser .jp-DirListing-item', { timeout: 60000 });
  const opened = await page.evaluate(() => ({
    fileBrowser: !!document.querySelector('#filebrowser')?.checkVisibility(),
    files: [...document.querySelectorAll('#filebrowser .jp-DirListing-itemText')]
      .map((e) => e.textContent.trim()),
    current: document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current')
      ?.textContent.trim(),
  }));
  await shot(page, '03-jupyterlab');
  say('opened', opened);

  // A launcher (the tab bar's "+"): the kernel, and VS Code in its own section with its icon.
  await page.click('.lm-DockPanel-tabBar .lm-TabBar-addButton');
  await page.waitForSelector('.jp-LauncherCard', { timeout: 60000 });
  const cards = await page.$$eval('.jp-LauncherCard', (els) => els.map((e) => e.innerText.trim()));
  const sections = await page.$$eval('.jp-Launcher-section', (els) => els.map((section) => {
    const icon = section.querySelector('.jp-Launcher-sectionHeader > :first-child');
    const cardIcon = section.querySelector('.jp-LauncherCard-icon > *');
    const drawn = (node) => !!node && (node.querySelector('svg, img') !== null
      || getComputedStyle(node).backgroundImage.startsWith('url('));
    return {
      title: section.querySelector('.jp-Launcher-sectionTitle')?.textContent.trim(),
      cards: [...section.querySelectorAll('.jp-LauncherCard')].map((c) => c.innerText.trim()),
      icon: drawn(icon),
      cardIcon: drawn(cardIcon),
    };
  }));
  await shot(page, '03-launcher');
  say('lab', { cards, sections });
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
