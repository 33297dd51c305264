// Drives Debian's Chromium through playwright-core: spawn a codespace whose onCreateCommand
// trained a scikit-learn model, right-click a corrupt model file in the file browser ->
// "Deploy..." (refused with the server's reason, no form), then the model -> "Deploy...": the
// form shows the detected format; Deploy -> the Deployments sidebar (at its default width)
// follows the deployment until it is ready; Test request sends the example built from the
// model's signature and shows the model server's answer; Copy curl and Copy Python put the
// snippets on the clipboard; Share token mints a token (the test calls the endpoint with it).
// Environment: HUB_URL, HUB_USER, HUB_PASSWORD, REPO, SERVER, MODEL, CORRUPT, ARTIFACTS.
// Prints one JSON line per milestone; exits non-zero on the first failure.
import { say, shot, withSpawnForm } from './hub_browser.mjs';

const { MODEL, CORRUPT, HUB_URL } = process.env;
const DEPLOY = '.lm-Menu-item[data-command="codespace:deploy-model"]';

// The Deployments sidebar's layout: nothing wider than the panel (no sideways scrolling), the
// state badges not cut, the title, the actions and the test request's answer inside the box.
const layout = (page) => page.evaluate(() => {
  const panel = document.querySelector('.jp-CodespaceDeploy');
  const box = panel.getBoundingClientRect();
  const inside = (node) => {
    if (!node) return null;
    const r = node.getBoundingClientRect();
    return r.width > 0 && r.left >= box.left - 0.5 && r.right <= box.right + 0.5;
  };
  const badges = [...panel.querySelectorAll('.jp-CodespaceDeploy-state')];
  return {
    width: panel.clientWidth,
    scrollWidth: panel.scrollWidth,
    scrollLeft: panel.scrollLeft,
    titleInside: inside(panel.querySelector('.jp-CodespaceDeploy-header h2')),
    badges: badges.map((b) => ({
      text: b.textContent, cut: b.scrollWidth > b.clientWidth + 0.5 || !inside(b) })),
    actionsInside: [...panel.querySelectorAll('.jp-CodespaceDeploy-action')].map(inside),
    copyInside: inside(panel.querySelector('.jp-CodespaceDeploy-copy')),
    responseInside: inside(panel.querySelector('.jp-CodespaceDeploy-responseBody')),
  };
});

await withSpawnForm('deploy-99-failure', async ({ context, page }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write'],
    { origin: new URL(HUB_URL).origin });
  await Promise.all([page.waitForNavigation(), page.click('form [type=submit]')]);
  await page.waitForURL(/\/user\/[^/]+\/[^/]+\/lab/, { timeout: 600000 });
  await page.waitForSelector('.jp-MarkdownViewer', { timeout: 120000 });
  say('lab', { url: page.url() });

  if (!await page.evaluate(() => !!document.querySelector('#filebrowser')?.checkVisibility())) {
    await page.click('.jp-SideBar.jp-mod-left li[data-id="filebrowser"]');
  }
  const item = (name) => page.locator('#filebrowser .jp-DirListing-item',
    { has: page.locator('.jp-DirListing-itemText', { hasText: name }) });
  const deployMenu = async (name) => {
    await item(name).waitFor({ timeout: 60000 });
    await item(name).click({ button: 'right' });
    await page.waitForSelector('.lm-Menu');
    const shown = await page.$$eval(`${DEPLOY}:not(.lm-mod-hidden)`,
      (items) => items.map((i) => i.textContent.trim()));
    return shown;
  };

  // The README is no model: no Deploy... in its menu.
  const readmeMenu = await deployMenu('README.md');
  await page.keyboard.press('Escape');

  // A corrupt model: refused up front with the server's reason.
  const corruptMenu = await deployMenu(CORRUPT);
  await page.click(DEPLOY);
  await page.waitForSelector('.jp-Dialog');
  const refused = await page.$eval('.jp-Dialog', (d) => ({
    title: d.querySelector('.jp-Dialog-header')?.textContent.trim(),
    body: d.querySelector('.jp-Dialog-body')?.textContent.trim(),
    form: !!d.querySelector('.jp-CodespaceDeployForm'),
  }));
  await shot(page, 'deploy-00-corrupt');
  await page.click('.jp-Dialog-footer button');
  await page.waitForSelector('.jp-Dialog', { state: 'detached' });
  say('corrupt', { readmeMenu, corruptMenu, refused });

  // The model: Deploy... -> the form with the detected format.
  const menu = await deployMenu(MODEL);
  await page.click(DEPLOY);
  await page.waitForSelector('.jp-CodespaceDeployForm, .jp-Dialog-body', { timeout: 60000 });
  const notForm = await page.$('.jp-CodespaceDeployForm') ? '' :
    await page.$eval('.jp-Dialog-body', (e) => e.textContent);
  if (notForm) throw new Error(`no deploy form: ${notForm}`);
  const form = await page.evaluate(() => {
    const f = document.querySelector('.jp-CodespaceDeployForm');
    return {
      title: document.querySelector('.jp-Dialog-header')?.textContent.trim(),
      name: f.querySelector('input[name="name"]').value,
      format: f.querySelector('input[name="format"]').value,
      formatReadOnly: f.querySelector('input[name="format"]').readOnly,
      hint: [...f.querySelectorAll('.jp-CodespaceForm-hint')].map((h) => h.textContent),
      protocols: [...f.querySelectorAll('select[name="protocol"] option')].map((o) => o.value),
      protocol: f.querySelector('select[name="protocol"]').value,
      scaleToZero: f.querySelector('input[name="scaleToZero"]').checked,
      idleTimeout: f.querySelector('input[name="idleTimeout"]').value,
    };
  });
  await shot(page, 'deploy-01-form');
  say('form', { menu, form });

  // Deploy: the dialog closes and the sidebar shows the deployment; every state its card
  // shows is noted in the page from the start.
  const card = `.jp-CodespaceDeploy-item[data-name="${form.name}"]`;
  await page.evaluate((selector) => {
    window.__deployStates = [];
    window.__deployWatch = setInterval(() => {
      const state = document.querySelector(selector)?.dataset.state;
      if (state && window.__deployStates.at(-1) !== state) window.__deployStates.push(state);
    }, 50);
  }, card);
  await page.click('.jp-Dialog .jp-mod-accept');
  const formError = '.jp-CodespaceDeployForm .jp-CodespaceForm-error';
  await page.waitForSelector(`${card}, ${formError}:not(:empty)`, { timeout: 120000 });
  const notDeployed = await page.$eval(formError, (e) => e.textContent).catch(() => '');
  if (notDeployed) throw new Error(notDeployed);
  await page.waitForSelector(`${card}:is([data-state="ready"], [data-state="idle"], `
    + '[data-state="failed"])', { timeout: 480000 });
  const states = await page.evaluate(() => {
    clearInterval(window.__deployWatch);
    return window.__deployStates;
  });
  const shown = await page.$eval(card, (c) => ({
    state: c.dataset.state,
    reason: c.querySelector('.jp-CodespaceDeploy-reason')?.textContent ?? '',
    sub: c.querySelector('.jp-CodespaceDeploy-sub')?.textContent,
    url: c.querySelector('.jp-CodespaceDeploy-url')?.textContent ?? '',
    status: document.querySelector('.jp-CodespaceDeploy-status')?.textContent,
  }));
  await shot(page, 'deploy-02-panel');
  say('states', { states, card: shown });
  if (shown.state === 'failed') {
    await page.click(`${card} button[data-action="Logs"]`);
    await page.waitForTimeout(1000);
    const log = await page.$eval(`${card} .jp-CodespaceDeploy-log`, (e) => e.textContent);
    throw new Error(`the deployment failed: ${shown.reason}\n${log}`);
  }

  // Test request: the example from the signature, sent; the model server's answer.
  await page.click(`${card} button[data-action="Test request"]`);
  await page.waitForFunction((c) => document.querySelector(`${c} textarea`)?.value
    && !document.querySelector(`${c} .jp-CodespaceDeploy-note`)?.textContent.startsWith(
      'Reading'), card, { timeout: 120000 });
  const request = await page.$eval(card, (c) => ({
    note: c.querySelector('.jp-CodespaceDeploy-note')?.textContent,
    body: c.querySelector('textarea').value,
  }));
  await page.click(`${card} button[data-action="Send"]`);
  await page.waitForSelector(`${card} .jp-CodespaceDeploy-response[data-status]`,
    { timeout: 300000 });
  const response = await page.$eval(card, (c) => ({
    status: c.querySelector('.jp-CodespaceDeploy-response').dataset.status,
    head: c.querySelector('.jp-CodespaceDeploy-responseHead')?.textContent,
    body: c.querySelector('.jp-CodespaceDeploy-responseBody')?.textContent ?? '',
  }));
  const tested = await layout(page);
  await shot(page, 'deploy-03-test-request');
  say('test', { request, response, layout: tested });

  // Copy curl and Copy Python: the snippets on the clipboard.
  const copied = async (action) => {
    await page.evaluate(() => navigator.clipboard.writeText(''));
    await page.click(`${card} button[data-action="${action}"]`);
    await page.waitForFunction(async () => !!await navigator.clipboard.readText(), null,
      { timeout: 60000 });
    return page.evaluate(() => navigator.clipboard.readText());
  };
  const curl = await copied('Copy curl');
  const python = await copied('Copy Python');
  say('snippet', { curl, python });

  // Share token: minted, shown once with a copy button.
  await page.click(`${card} button[data-action="Share token"]`);
  await page.fill(`${card} input[name="note"]`, 'browser test');
  await page.click(`${card} button[data-action="Create token"]`);
  await page.waitForSelector(`${card} :is(.jp-CodespaceDeploy-token, `
    + '.jp-CodespaceDeploy-tokenResult .jp-mod-error)', { timeout: 60000 });
  const token = await page.$eval(card, (c) => ({
    token: c.querySelector('.jp-CodespaceDeploy-token')?.value ?? '',
    error: c.querySelector('.jp-CodespaceDeploy-tokenResult .jp-mod-error')?.textContent ?? '',
    copy: !!c.querySelector('.jp-CodespaceDeploy-tokenResult .jp-CodespaceDeploy-copy'),
  }));
  await shot(page, 'deploy-04-share-token');
  say('share', token);
});
