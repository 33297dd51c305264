// Deploy in the lab: the Deployments sidebar, and "Deploy..." on model files and folders in the
// file browser's context menu and in the command palette (the file browser's selected model,
// else a path asked for). Only the packages this extension already depends on: the file
// browser is reached through the shell.
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';

import { isModelFile } from './deploy';
import { deployModel } from './deploy-dialog';
import { DeploymentsPanel } from './deploy-panel';
import { addSidebar } from './sidebar';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161"><path d="M12 2c3 2 5 5.5 5 9.5V16l2 3v2h-4.5l-1-2h-3
l-1 2H5v-2l2-3v-4.5C7 7.5 9 4 12 2zm0 6a2 2 0 1 0 0 4 2 2 0 0 0 0-4z"/></g></svg>`;

export const deployIcon = new LabIcon({ name: '@codespace/lab:deploy', svgstr: ICON_SVG });

const DEPLOY = 'codespace:deploy-model';
const OPEN_DEPLOYMENTS = 'codespace:open-deployments';
const FILE_BROWSER = 'filebrowser';

interface IBrowserItem {
  name: string;
  path: string;
  type: string;
}

interface IBrowserLike {
  id: string;
  node: HTMLElement;
  selectedItems(): Iterable<IBrowserItem>;
}

const deployable = (i: IBrowserItem): boolean => i.type === 'directory' || isModelFile(i.path);

function browsers(app: JupyterFrontEnd): IBrowserLike[] {
  return ['left', 'right']
    .flatMap(area => Array.from(app.shell.widgets(area as 'left' | 'right')))
    .map(w => w as unknown as IBrowserLike)
    .filter(w => typeof w.selectedItems === 'function');
}

/** The file browser item under the context menu (a right-click selects what it lands on). */
function clickedItem(app: JupyterFrontEnd): IBrowserItem | undefined {
  const hit = app.contextMenuHitTest(node => node.classList.contains('jp-DirListing-item'));
  if (!hit) {
    return undefined;
  }
  const browser = browsers(app).find(b => b.node.contains(hit));
  const name = hit.querySelector('.jp-DirListing-itemText')?.textContent?.trim();
  if (!browser || !name) {
    return undefined;
  }
  return Array.from(browser.selectedItems()).find(i => i.name === name);
}

/** The model selected in the file browser, for the palette's command. */
function selectedModel(app: JupyterFrontEnd): string | undefined {
  const all = browsers(app);
  const browser = all.find(b => b.id === FILE_BROWSER) ?? all[0];
  return browser ? Array.from(browser.selectedItems()).find(deployable)?.path : undefined;
}

export const deployPlugin: JupyterFrontEndPlugin<void> = {
  id: '@codespace/lab:deploy',
  description: 'A Deployments sidebar, and Deploy... on model files in the file browser.',
  autoStart: true,
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null) => {
    const panel = new DeploymentsPanel();
    const place = {
      id: 'codespace-deployments',
      icon: deployIcon,
      caption: 'Deployments',
      rank: 620,
      command: OPEN_DEPLOYMENTS
    };
    addSidebar(app, panel, place, palette);
    app.commands.addCommand(DEPLOY, {
      label: args => (args.fromBrowser || args.path ? 'Deploy…' : 'Deploy a Model…'),
      caption: 'Serve this model at an authenticated endpoint (KServe V2/V1 protocol)',
      icon: deployIcon,
      // In the file browser's menu only on model files and folders.
      isVisible: args => {
        if (!args.fromBrowser) {
          return true;
        }
        const item = clickedItem(app);
        return !!item && deployable(item);
      },
      execute: async args => {
        let path =
          (args.path as string | undefined) ??
          (args.fromBrowser ? clickedItem(app)?.path : selectedModel(app));
        if (!path && !args.fromBrowser) {
          const answer = await InputDialog.getText({
            title: 'Deploy a model',
            label: 'The model file or folder (a path in the workspace)',
            placeholder: 'model.joblib'
          });
          path = answer.button.accept ? answer.value?.trim() || undefined : undefined;
        }
        if (!path) {
          return;
        }
        const created = await deployModel(path);
        if (created) {
          app.shell.activateById(panel.id);
          await panel.showCreated(created);
        }
      }
    });

    app.contextMenu.addItem({
      command: DEPLOY,
      args: { fromBrowser: true },
      selector: '.jp-DirListing-item',
      rank: 5
    });
    palette?.addItem({ command: DEPLOY, category: 'Codespace' });
  }
};
