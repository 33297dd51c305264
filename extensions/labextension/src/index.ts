import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';

import { deployPlugin } from './deploy-plugin';
import { jobsPlugin } from './jobs-plugin';
import { openerPlugin } from './opener';
import { DatasetsPanel, IPanelActions } from './panel';
import { addSidebar } from './sidebar';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161"><ellipse cx="12" cy="5" rx="8" ry="3"/>
<path d="M4 7v5c0 1.7 3.6 3 8 3s8-1.3 8-3V7c0 1.7-3.6 3-8 3S4 8.7 4 7z"/>
<path d="M4 14v5c0 1.7 3.6 3 8 3s8-1.3 8-3v-5c0 1.7-3.6 3-8 3s-8-1.3-8-3z"/></g></svg>`;

export const datasetsIcon = new LabIcon({
  name: '@codespace/lab:datasets',
  svgstr: ICON_SVG
});

interface INotebookLike {
  content?: { activeCell?: { model: { sharedModel: { setSource(s: string): void } } } | null };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: '@codespace/lab:datasets',
  description: 'A Datasets sidebar: browse, prewarm and mount datasets.',
  autoStart: true,
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null) => {
    const actions: IPanelActions = {
      openInFileBrowser: async (path: string) => {
        await app.commands.execute('filebrowser:go-to-path', { path });
      },
      insertSnippet: async (code: string) => {
        // The notebook in the main area, if any (no hard dependency on @jupyterlab/notebook).
        const current = app.shell.currentWidget as unknown as INotebookLike | null;
        if (!current?.content || !('activeCell' in current.content)) {
          return false;
        }
        await app.commands.execute('notebook:insert-cell-below');
        const cell = current.content.activeCell;
        if (!cell) {
          return false;
        }
        cell.model.sharedModel.setSource(code);
        return true;
      }
    };
    const place = {
      id: 'codespace-datasets',
      icon: datasetsIcon,
      caption: 'Datasets',
      rank: 600,
      command: 'codespace:open-datasets'
    };
    addSidebar(app, new DatasetsPanel(actions), place, palette);
  }
};

export default [plugin, openerPlugin, jobsPlugin, deployPlugin];
