// Drives Debian's Chromium through playwright-core: spawn a codespace, right-click its notebook
// in the file browser -> "Submit as job...", fill the dialog (parameters as JSON, the local
// backend), submit, watch the Jobs sidebar (at its default width) show the job running then
// succeeded with its log, open the executed output notebook from the panel and read the value
// its cell printed.
// Environment: HUB_URL, HUB_USER, HUB_PASSWORD, REPO, SERVER, NOTEBOOK, PARAMETERS, EXPECT,
// ARTIFACTS. Prints one JSON line per milestone; exits non-zero on the first failure.
import { say, shot, withSpawnForm } from './hub_browser.mjs';

const { NOTEBOOK, PARAMETERS, EXPECT } = process.env;
const JOBS_TAB = '.jp-SideBar.jp-mod-left li[data-id="codespace-jobs"]';

// The Jobs sidebar's layout: nothing wider than the panel (no sideways scrolling), the states
// and times not cut, the title and the detail's actions inside the panel's box.
const layout = (page) => page.evaluate(() => {
  const panel = document.querySelector('.jp-CodespaceJobs');
  const box = panel.getBoundingClientRect();
  const inside = (node) => {
    if (!node) return null;
    const r = node.getBoundingClientRect();
    return r.width > 0 && r.left >= box.left - 0.5 && r.right <= box.right + 0.5;
  };
  const cells = [...panel.querySelectorAll('.jp-CodespaceJobs-list :is('
    + '.jp-CodespaceJobs-state, .jp-CodespaceJobs-time)')];
  return {
    width: panel.clientWidth,
    scrollWidth: panel.scrollWidth,
    scrollLeft: panel.scrollLeft,
    titleInside: inside(panel.querySelector('.jp-CodespaceJobs-header h2')),
    cells: cells.map((c) => ({
      text: c.textContent, cut: c.scrollWidth > c.clientWidth + 0.5 || !inside(c) })),
    actionsInside: [...panel.querySelectorAll('.jp-CodespaceJobs-action')].map(inside),
    logInside: inside(panel.querySelector('.jp-CodespaceJobs-log')),
  };
});

await withSpawnForm('jobs-99-failure', async ({ page }) => {
  await Promise.all([page.waitForNavigation(), page.click('form [type=submit]')]);
  await page.waitForURL(/\/user\/[^/]+\/[^/]+\/lab/, { timeout: 300000 });
  await page.waitForSelector('.jp-MarkdownViewer', { timeout: 120000 });
  say('lab', { url: page.url() });

  // The file browser (the lab opens with it shown; its tab would hide it): right-click the
  // notebook -> Submit as job...
  if (!await page.evaluate(() => !!document.querySelector('#filebrowser')?.checkVisibility())) {
    await page.click('.jp-SideBar.jp-mod-left li[data-id="filebrowser"]');
  }
  const item = page.locator('#filebrowser .jp-DirListing-item[data-file-type="notebook"]',
    { has: page.locator('.jp-DirListing-itemText', { hasText: NOTEBOOK }) });
  await item.waitFor({ timeout: 60000 });
  await item.click({ button: 'right' });
  await page.waitForSelector('.lm-Menu-item[data-command="codespace:submit-job"]');
  const menu = await page.$$eval('.lm-Menu-item[data-command="codespace:submit-job"]',
    (items) => items.map((i) => i.textContent.trim()));
  await page.click('.lm-Menu-item[data-command="codespace:submit-job"]');
  await page.waitForSelector('.jp-CodespaceJobForm');
  const form = await page.evaluate(() => {
    const f = document.querySelector('.jp-CodespaceJobForm');
    return {
      title: document.querySelector('.jp-Dialog-header')?.textContent.trim(),
      name: f.querySelector('input[name="name"]').value,
      backends: [...f.querySelectorAll('select[name="backend"] option')].map((o) => o.value),
      backend: f.querySelector('select[name="backend"]').value,
      parameters: !!f.querySelector('textarea[name="parameters"]'),
    };
  });
  if (await page.isEnabled('.jp-CodespaceJobForm select[name="backend"]')) {
    await page.selectOption('.jp-CodespaceJobForm select[name="backend"]', 'local');
  } // else a single backend: the select is disabled, on it
  await page.fill('.jp-CodespaceJobForm input[name="timeLimit"]', '10m');
  await page.fill('.jp-CodespaceJobForm textarea[name="parameters"]', PARAMETERS);
  await shot(page, 'jobs-01-submit');
  say('submit', { menu, form });

  // Submit: the dialog closes and the Jobs sidebar shows the new job, selected. Every state
  // its row shows is noted in the page from the start (the panel polls every few seconds).
  const row = `.jp-CodespaceJobs-item[data-name="${form.name}"]`;
  await page.evaluate((selector) => {
    window.__jobStates = [];
    window.__jobWatch = setInterval(() => {
      const state = document.querySelector(selector)?.dataset.state;
      if (state && window.__jobStates.at(-1) !== state) window.__jobStates.push(state);
    }, 50);
  }, row);
  await page.click('.jp-Dialog .jp-mod-accept');
  // The job's row, or the form back with the server's refusal.
  const formError = '.jp-CodespaceJobForm .jp-CodespaceForm-error';
  await page.waitForSelector(`${row}, ${formError}:not(:empty)`, { timeout: 60000 });
  const refused = await page.$eval(formError, (e) => e.textContent).catch(() => '');
  if (refused) throw new Error(`not submitted: ${refused}`);
  const final = ['succeeded', 'failed', 'cancelled'].map((s) => `[data-state="${s}"]`);
  await page.waitForSelector(`${row}:is([data-state="running"], ${final})`, { timeout: 300000 });
  const running = await layout(page);
  await page.waitForSelector(`${row}:is(${final})`, { timeout: 300000 });
  const states = await page.evaluate(() => {
    clearInterval(window.__jobWatch);
    return window.__jobStates;
  });
  say('states', { states });
  // The detail (selected on submit): its facts and the log's tail.
  await page.waitForFunction((name) =>
    document.querySelector('.jp-CodespaceJobs-detail h3')?.textContent.startsWith(name),
    form.name, { timeout: 30000 });
  await page.waitForFunction(
    () => document.querySelector('.jp-CodespaceJobs-detail')?.dataset.state !== 'running'
      && !!document.querySelector('button[data-action="Open output"]'), null, { timeout: 30000 });
  await page.waitForTimeout(500);
  const detail = await page.evaluate(() => {
    const facts = {};
    for (const dd of document.querySelectorAll('.jp-CodespaceJobs-detail dd')) {
      facts[dd.dataset.fact] = dd.textContent;
    }
    return {
      facts,
      row: document.querySelector('.jp-CodespaceJobs-item.jp-mod-selected')?.innerText,
      stateTitle: document.querySelector(
        '.jp-CodespaceJobs-item.jp-mod-selected .jp-CodespaceJobs-state')?.title,
      log: document.querySelector('.jp-CodespaceJobs-log')?.textContent ?? '',
      actions: [...document.querySelectorAll('.jp-CodespaceJobs-action')]
        .map((b) => ({ label: b.textContent, disabled: b.disabled })),
    };
  });
  const done = await layout(page);
  await shot(page, 'jobs-02-panel');
  say('panel', { detail, layout: { running, done } });
  if (detail.facts.State !== 'succeeded') {
    throw new Error(`the job ended ${detail.facts.State}: ${detail.facts.Reason ?? ''}`);
  }

  // Open output: the executed notebook, with the value its cell printed.
  await page.click('button[data-action="Open output"]');
  const outputName = detail.facts.Output.split('/').pop();
  const opened = `.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current:has-text("${outputName}")`;
  await page.waitForSelector(`${opened}, .jp-CodespaceJobs-status.jp-mod-error`,
    { timeout: 60000 });
  const cannot = await page.$eval('.jp-CodespaceJobs-status.jp-mod-error', (e) => e.textContent)
    .catch(() => '');
  if (cannot) throw new Error(`Open output: ${cannot}`);
  const OUTPUTS = '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output';
  await page.waitForFunction(
    ([selector, expect]) => [...document.querySelectorAll(selector)]
      .some((o) => o.textContent.includes(expect)), [OUTPUTS, EXPECT], { timeout: 60000 })
    .catch(() => null);
  const output = await page.evaluate((selector) => ({
    tab: document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current')
      ?.textContent.trim(),
    outputs: [...document.querySelectorAll(selector)].map((o) => o.textContent.trim()),
  }), OUTPUTS);
  await shot(page, 'jobs-03-output');
  say('output', output);
});
