// Jobs in the lab: the Jobs sidebar, and "Submit as job..." on notebooks and Python scripts -
// in the file browser's context menu, the notebook's and the Python editor's toolbar, the Run
// menu and the command palette. Only the packages this extension already depends on: the file
// browser, the main menu and the documents are reached through the shell and commands.
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import type { DocumentRegistry } from '@jupyterlab/docregistry';
import { LabIcon, ToolbarButton } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { canSubmit, submitAsJob } from './jobs-dialog';
import { JobsPanel } from './jobs';
import { addSidebar } from './sidebar';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161"><path d="M3 4h12v2H3zM3 9h12v2H3zM3 14h7v2H3zM3 19h7v2H3z"/>
<path d="M13 13.5v9l8-4.5z"/></g></svg>`;

export const jobsIcon = new LabIcon({ name: '@codespace/lab:jobs', svgstr: ICON_SVG });

const SUBMIT = 'codespace:submit-job';
const OPEN_JOBS = 'codespace:open-jobs';
const FILE_BROWSER = 'filebrowser';

interface IContextLike {
  path: string;
  model?: { dirty: boolean };
  save(): Promise<void>;
}

interface IBrowserLike {
  id: string;
  node: HTMLElement;
  selectedItems(): Iterable<{ name: string; path: string; type: string }>;
}

interface IMenuLike {
  id: string;
  addItem(options: { command: string; rank?: number }): unknown;
  addItem(options: { type: 'separator'; rank?: number }): unknown;
}

const contextOf = (widget: Widget | null): IContextLike | undefined =>
  (widget as unknown as { context?: IContextLike } | null)?.context;

/** The file right-clicked in a file browser: the browser's selected item under the pointer
 * (a right-click selects the item it lands on), else its first selected notebook or script. */
function browserPath(app: JupyterFrontEnd): string | undefined {
  const hit = app.contextMenuHitTest(node => node.classList.contains('jp-DirListing-item'));
  const browsers = ['left', 'right']
    .flatMap(area => Array.from(app.shell.widgets(area as 'left' | 'right')))
    .map(w => w as unknown as IBrowserLike)
    .filter(w => typeof w.selectedItems === 'function');
  const browser =
    (hit && browsers.find(b => b.node.contains(hit))) ?? browsers.find(b => b.id === FILE_BROWSER);
  if (!browser) {
    return undefined;
  }
  const items = Array.from(browser.selectedItems()).filter(i => i.type !== 'directory');
  const name = hit?.querySelector('.jp-DirListing-itemText')?.textContent?.trim();
  const item = items.find(i => i.name === name) ?? items.find(i => canSubmit(i.path));
  return item?.path;
}

/** The notebook or Python file in front in the main area. */
function currentPath(app: JupyterFrontEnd): string | undefined {
  const path = contextOf(app.shell.currentWidget)?.path;
  return path && canSubmit(path) ? path : undefined;
}

/** Save the open, modified views of `path` before a job runs it. */
async function saveOpen(app: JupyterFrontEnd, path: string): Promise<void> {
  for (const widget of Array.from(app.shell.widgets('main'))) {
    const context = contextOf(widget);
    if (context?.path === path && context.model?.dirty) {
      await context.save();
    }
  }
}

export const jobsPlugin: JupyterFrontEndPlugin<void> = {
  id: '@codespace/lab:jobs',
  description: 'A Jobs sidebar, and Submit as job... on notebooks and Python scripts.',
  autoStart: true,
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null) => {
    const panel = new JobsPanel({
      openFile: async (path: string) => {
        // Ask first: a missing file gets a line in the panel, not an empty document.
        try {
          await app.serviceManager.contents.get(path, { content: false });
        } catch (error) {
          const status = (error as { response?: { status?: number } }).response?.status;
          throw status === 404
            ? new Error('the server has no such file (or does not serve its hidden folder)')
            : error;
        }
        await app.commands.execute('docmanager:open', { path });
      }
    });
    const place = {
      id: 'codespace-jobs',
      icon: jobsIcon,
      caption: 'Jobs',
      rank: 610,
      command: OPEN_JOBS
    };
    addSidebar(app, panel, place, palette);
    app.commands.addCommand(SUBMIT, {
      label: args =>
        args.fromBrowser || args.path ? 'Submit as Job…' : 'Submit Notebook or Script as Job…',
      caption: 'Run this notebook or script as a job in the codespace’s environment',
      icon: jobsIcon,
      isEnabled: args =>
        !!args.path || !!args.fromBrowser || currentPath(app) !== undefined,
      execute: async args => {
        const path =
          (args.path as string | undefined) ??
          (args.fromBrowser ? browserPath(app) : currentPath(app));
        if (!path || !canSubmit(path)) {
          return;
        }
        const jobs = await submitAsJob(path, () => saveOpen(app, path));
        if (jobs) {
          app.shell.activateById(panel.id);
          await panel.showSubmitted(jobs);
        }
      }
    });

    for (const type of ['notebook', 'python']) {
      app.contextMenu.addItem({
        command: SUBMIT,
        args: { fromBrowser: true },
        selector: `.jp-DirListing-item[data-file-type="${type}"]`,
        rank: 4
      });
    }

    // A toolbar button on notebooks and Python files (before the spacer: next to Run and the
    // cell type on a notebook).
    const button = (context: IContextLike) =>
      new ToolbarButton({
        icon: jobsIcon,
        tooltip: 'Submit as job…',
        className: 'jp-CodespaceJobs-submitButton',
        onClick: () => void app.commands.execute(SUBMIT, { path: context.path })
      });
    const extension = (onlyPython: boolean): DocumentRegistry.WidgetExtension => ({
      createNew: (widget, context) => {
        if (onlyPython && !/\.py$/i.test(context.path)) {
          return;
        }
        const item = button(context as unknown as IContextLike);
        const toolbar = (widget as unknown as { toolbar?: ToolbarLike }).toolbar;
        if (toolbar && !toolbar.insertAfter('cellType', 'codespace-submit-job', item)) {
          if (!toolbar.insertBefore('spacer', 'codespace-submit-job', item)) {
            toolbar.addItem('codespace-submit-job', item);
          }
        }
        return item;
      }
    });
    app.docRegistry.addWidgetExtension('Notebook', extension(false));
    app.docRegistry.addWidgetExtension('Editor', extension(true));

    palette?.addItem({ command: SUBMIT, category: 'Codespace' });

    // The main menu's Run menu, when there is one (no dependency on @jupyterlab/mainmenu).
    void app.restored.then(() => {
      for (const bar of Array.from(app.shell.widgets('menu'))) {
        const menus = (bar as unknown as { menus?: IMenuLike[] }).menus ?? [];
        const run = menus.find(m => m.id === 'jp-mainmenu-run');
        if (run) {
          run.addItem({ type: 'separator', rank: 1000 });
          run.addItem({ command: SUBMIT, rank: 1000 });
          return;
        }
      }
    });
  }
};

interface ToolbarLike {
  insertAfter(at: string, name: string, widget: Widget): boolean;
  insertBefore(at: string, name: string, widget: Widget): boolean;
  addItem(name: string, widget: Widget): boolean;
}
