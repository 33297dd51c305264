// Drives Debian's Chromium through playwright-core: log in, see a catalog dataset whose source
// is missing shown disabled on the spawn form (and refused with 400 when posted anyway), spawn
// a codespace with a local and a remote dataset picked in the form (the hub prewarms the remote
// one into its shared cache while the spawn page shows it), open the Datasets sidebar at its
// default width, measure its layout, read the rows, browse the files.
// Environment: HUB_URL, HUB_USER, HUB_PASSWORD, REPO, SERVER, PICK, REMOTE, GHOST, ARTIFACTS.
// Prints one JSON line per milestone; exits non-zero on the first failure.
import { say, shot, withSpawnForm } from './hub_browser.mjs';

const { PICK, REMOTE, GHOST, REPO } = process.env;
const cells = (page, name) =>
  page.$$eval(`.jp-CodespaceDatasets-row[data-name="${name}"] td`, (tds) =>
    tds.map((td) => td.textContent.trim()));

// The sidebar's layout: nothing wider than the panel (no sideways scrolling), the Phase cells
// not cut, and the title, filter and detail inside the panel's box.
const layout = (page) => page.evaluate(() => {
  const panel = document.querySelector('.jp-CodespaceDatasets');
  const box = panel.getBoundingClientRect();
  const inside = (selector) => {
    const node = panel.querySelector(selector);
    if (!node) return null;
    const r = node.getBoundingClientRect();
    return r.width > 0 && r.left >= box.left - 0.5 && r.right <= box.right + 0.5;
  };
  const shown = (node) => node.getClientRects().length > 0;
  const phases = [...panel.querySelectorAll('.jp-CodespaceDatasets-col-phase')].map((c) => ({
    text: c.textContent, shown: shown(c), cut: c.scrollWidth > c.clientWidth,
  }));
  return {
    width: panel.clientWidth,
    scrollWidth: panel.scrollWidth,
    scrollLeft: panel.scrollLeft,
    columns: [...panel.querySelectorAll('th')].filter(shown).map((th) => th.textContent),
    phases,
    titleInside: inside('.jp-CodespaceDatasets-header h2'),
    filterInside: inside('.jp-CodespaceDatasets-filter'),
    detailInside: inside('.jp-CodespaceDatasets-detail h3'),
  };
});

await withSpawnForm('datasets-99-failure', async ({ page }) => {
  const offered = await page.$$eval('#codespace-datasets option:not(:disabled)',
    (os) => os.map((o) => o.value));
  const unavailable = await page.$$eval('#codespace-datasets option:disabled',
    (os) => os.map((o) => ({ value: o.value, text: o.textContent.trim() })));
  await shot(page, 'datasets-00-unavailable-in-form');
  // Posted anyway (as a hand-made request would): the hub refuses it with 400 and the reason.
  await page.evaluate((name) => {
    const option = document.querySelector(`#codespace-datasets option[value="${name}"]`);
    option.disabled = false;
    option.selected = true;
  }, GHOST);
  const [response] = await Promise.all([
    page.waitForNavigation(), page.click('form [type=submit]')]);
  const refusal = {
    status: response?.status(),
    message: await page.textContent('.spawn-error-msg, .alert-danger').catch(() => ''),
  };
  await shot(page, 'datasets-00-unavailable-refused');
  say('unavailable', { unavailable, refusal });
  await page.goto(`${process.env.HUB_URL}hub/spawn/${process.env.HUB_USER}/${process.env.SERVER}`);
  await page.fill('#codespace-repo', REPO);
  await page.selectOption('#codespace-datasets', [PICK, REMOTE]);
  await shot(page, 'datasets-01-spawn-form');
  say('form', { offered });
  await Promise.all([page.waitForNavigation(), page.click('form [type=submit]')]);

  let mounting = false;
  let prewarming = false;
  if (page.url().includes('/spawn-pending/')) {
    const seen = (name) => document.body.textContent.includes(`datasets: mounting ${name}`)
      || !location.pathname.includes('/spawn-pending/');
    await page.waitForFunction(seen, REMOTE, { timeout: 300000, polling: 50 }).catch(() => null);
    [mounting, prewarming] = await page.evaluate(([local, remote]) => {
      const text = document.body.textContent;
      return [text.includes(`datasets: mounting ${local}`),
        text.includes(`datasets: mounting ${remote}`) && text.includes('prewarm')];
    }, [PICK, REMOTE]).catch(() => [false, false]);
  }
  say('progress', { mounting, prewarming });

  await page.waitForURL(/\/user\/[^/]+\/[^/]+\/lab/, { timeout: 300000 });
  // The lab opens on the repository (its README, rendered) before we use the sidebar.
  await page.waitForSelector('.jp-MarkdownViewer', { timeout: 120000 });
  // The Datasets sidebar: its tab in the left bar.
  await page.click('.jp-SideBar.jp-mod-left li[data-id="codespace-datasets"]');
  await page.waitForSelector(`.jp-CodespaceDatasets-row[data-name="${PICK}"]`);
  await page.waitForSelector(`.jp-CodespaceDatasets-row[data-name="${REMOTE}"]`);
  const picked = await cells(page, PICK);
  await shot(page, 'datasets-02-sidebar');
  say('sidebar', { picked, remote: await cells(page, REMOTE) });
  const before = await layout(page);

  // The picked (local) dataset: its files, then open it in the file browser.
  await page.click(`.jp-CodespaceDatasets-row[data-name="${PICK}"]`);
  await page.waitForFunction((name) =>
    document.querySelector('.jp-CodespaceDatasets-detail h3')?.textContent === name, PICK);
  await page.waitForSelector('.jp-CodespaceDatasets-files li');
  const after = await layout(page);
  const sidebar = await page.evaluate(() => {
    const r = document.querySelector('.jp-CodespaceDatasets').getBoundingClientRect();
    return { x: 0, y: 0, width: Math.ceil(r.right) + 8, height: Math.ceil(r.bottom) };
  });
  await page.screenshot({
    path: `${process.env.ARTIFACTS}/datasets-05-sidebar-default-width.png`, clip: sidebar });
  say('layout', { before, after });
  const pickedFiles = await page.$$eval('.jp-CodespaceDatasets-files li',
    (lis) => lis.map((li) => li.textContent.trim()));
  await page.click('button[data-action="Open in file browser"]');
  await page.waitForFunction(
    (name) => [...document.querySelectorAll('.jp-BreadCrumbs')].some(
      (b) => b.textContent.includes(name)), PICK, { timeout: 30000 }).catch(() => null);
  await shot(page, 'datasets-03-files-and-browser');
  const crumbs = await page.$$eval('.jp-BreadCrumbs', (bs) => bs.map((b) => b.textContent.trim()));
  say('files', { pickedFiles, crumbs });

  // The remote dataset: prewarmed by the hub at the start, all of it cached.
  await page.click('.jp-SideBar.jp-mod-left li[data-id="codespace-datasets"]');
  await page.waitForSelector(`.jp-CodespaceDatasets-row[data-name="${REMOTE}"]`);
  await page.click(`.jp-CodespaceDatasets-row[data-name="${REMOTE}"]`);
  await page.waitForFunction((name) =>
    document.querySelector('.jp-CodespaceDatasets-detail h3')?.textContent === name, REMOTE);
  await page.waitForFunction(
    () => [...document.querySelectorAll('.jp-CodespaceDatasets-detail dd')].some((dd) =>
      dd.previousElementSibling?.textContent === 'Cached' && dd.textContent.includes('100.0%')),
    null, { timeout: 30000 }).catch(() => null);
  const progress = await page.textContent('.jp-CodespaceDatasets-progress').catch(() => '');
  const detailCached = await page.evaluate(() => {
    const dts = [...document.querySelectorAll('.jp-CodespaceDatasets-detail dt')];
    return dts.find((dt) => dt.textContent === 'Cached')?.nextElementSibling?.textContent ?? '';
  });
  await page.waitForSelector('.jp-CodespaceDatasets-files li');
  const remoteFiles = await page.$$eval('.jp-CodespaceDatasets-files li',
    (lis) => lis.map((li) => li.textContent.trim()));
  await shot(page, 'datasets-04-prewarmed');
  say('prewarm', { progress, remote: await cells(page, REMOTE), detailCached, remoteFiles });
});
