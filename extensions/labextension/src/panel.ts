// The Datasets sidebar: a filterable table, a detail view with the file listing, actions.
import { Clipboard } from '@jupyterlab/apputils';
import { refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { datasetsApi, IDataset, IFilePage, IPrewarmOperation } from './api';

export interface IPanelActions {
  openInFileBrowser(path: string): Promise<void>;
  /** Insert code into the active notebook; false when there is none. */
  insertSnippet(code: string): Promise<boolean>;
}

const POLL_MS = 1000;

/** The table's columns: key (its CSS class, `jp-CodespaceDatasets-col-<key>`), heading, cell.
 * The stylesheet shows Name, Phase and Cached at the sidebar's default width and the others
 * as the sidebar grows (container queries); every column's text stays in the DOM. */
const COLUMNS: [string, string, (d: IDataset) => [string, string?]][] = [
  ['name', 'Name', d => [d.name, d.description]],
  ['source', 'Source', d => [d.source, d.source]],
  ['phase', 'Phase', d => [d.status.phase, d.status.message ?? d.status.phase]],
  ['size', 'Size', d => [d.status.ufsTotal ?? '']],
  ['files', 'Files', d => [d.status.fileNum?.toString() ?? '']],
  ['cached', 'Cached', d => [d.status.cachedPercentage ?? '']],
  ['mount', 'Mount path', d => [d.mounted ? d.mountPath ?? '' : '', d.mountPath ?? '']]
];

function column(key: string): string {
  return `jp-CodespaceDatasets-col-${key}`;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> & { className?: string } = {},
  children: (Node | string)[] = []
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) {
    node.append(child);
  }
  return node;
}

function bytes(n: number | null): string {
  if (n === null) {
    return '';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit ? `${value.toFixed(1)} ${units[unit]}` : `${value} B`;
}

export function pythonSnippet(dataset: IDataset): string {
  const path = dataset.mountPath ?? `/datasets/${dataset.name}`;
  return [
    'from pathlib import Path',
    'from codespace import datasets',
    '',
    `dataset = datasets.get(${JSON.stringify(dataset.name)})`,
    `root = Path(${JSON.stringify(path)})`,
    'sorted(root.iterdir())[:10]'
  ].join('\n');
}

export class DatasetsPanel extends Widget {
  private datasets: IDataset[] = [];
  private filterInput: HTMLInputElement;
  private tableBody: HTMLTableSectionElement;
  private detail: HTMLDivElement;
  private statusLine: HTMLDivElement;
  private selected: string | null = null;
  private poll: number | null = null;

  constructor(private actions: IPanelActions) {
    super();
    this.addClass('jp-CodespaceSidebar');
    this.addClass('jp-CodespaceDatasets');
    this.filterInput = el('input', {
      type: 'search',
      placeholder: 'Filter datasets',
      className: 'jp-CodespaceDatasets-filter'
    });
    this.filterInput.addEventListener('input', () => this.renderTable());
    // An icon button, like the file browser's: the header fits the sidebar's default width.
    const refresh = el('button', {
      className:
        'jp-Button jp-mod-minimal jp-CodespaceSidebar-icon jp-CodespaceDatasets-refresh',
      title: 'Refresh'
    });
    refresh.setAttribute('aria-label', 'Refresh');
    refresh.append(refreshIcon.element({ tag: 'span', elementPosition: 'center' }));
    refresh.addEventListener('click', () => void this.refresh());
    this.tableBody = el('tbody');
    const head = el('thead', {}, [
      el(
        'tr',
        {},
        COLUMNS.map(([key, heading]) => el('th', { className: column(key), textContent: heading }))
      )
    ]);
    this.statusLine = el('div', { className: 'jp-CodespaceDatasets-status' });
    this.detail = el('div', { className: 'jp-CodespaceDatasets-detail' });
    this.node.append(
      el('div', { className: 'jp-CodespaceSidebar-header jp-CodespaceDatasets-header' }, [
        el('h2', { textContent: 'Datasets' }),
        this.filterInput,
        refresh
      ]),
      el('table', { className: 'jp-CodespaceDatasets-table' }, [head, this.tableBody]),
      this.statusLine,
      this.detail
    );
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  protected onBeforeDetach(): void {
    this.stopPolling();
  }

  async refresh(): Promise<void> {
    try {
      this.datasets = (await datasetsApi.list()).datasets;
      this.say('');
    } catch (error) {
      this.say(`Cannot list datasets: ${(error as Error).message}`, true);
    }
    this.renderTable();
    if (this.selected !== null) {
      await this.refreshSelected(this.selected);
    }
  }

  /** Fetch one dataset's fresh status into its row and, while it is shown, its detail. */
  private async refreshSelected(name: string): Promise<void> {
    let fresh: IDataset;
    try {
      fresh = await datasetsApi.get(name);
    } catch (error) {
      this.say(`${name}: ${(error as Error).message}`, true);
      return;
    }
    this.datasets = this.datasets.map(d => (d.name === fresh.name ? fresh : d));
    this.renderTable();
    if (this.selected === fresh.name) {
      this.renderFacts(fresh);
    }
  }

  /** The latest known state of a dataset (the actions act on it, not on a stale copy). */
  private current(name: string): IDataset | undefined {
    return this.datasets.find(d => d.name === name);
  }

  private say(message: string, isError = false): void {
    this.statusLine.textContent = message;
    this.statusLine.classList.toggle('jp-mod-error', isError);
  }

  private renderTable(): void {
    const needle = this.filterInput.value.trim().toLowerCase();
    const rows = this.datasets.filter(d =>
      [d.name, d.description, d.source, ...d.tags].some(v => v.toLowerCase().includes(needle))
    );
    this.tableBody.replaceChildren(
      ...rows.map(d => {
        const row = el(
          'tr',
          { className: 'jp-CodespaceDatasets-row' },
          COLUMNS.map(([key, , cell]) => {
            const [text, title] = cell(d);
            return el('td', { className: column(key), textContent: text, title: title ?? text });
          })
        );
        row.dataset.name = d.name;
        row.classList.toggle('jp-mod-selected', d.name === this.selected);
        row.addEventListener('click', () => void this.select(d.name));
        return row;
      })
    );
  }

  async select(name: string): Promise<void> {
    this.selected = name;
    this.stopPolling();
    this.renderTable();
    try {
      const dataset = await datasetsApi.get(name);
      this.datasets = this.datasets.map(d => (d.name === name ? dataset : d));
      this.renderTable();
      this.renderDetail(dataset);
      const history = (await datasetsApi.prewarmHistory(name)).operations;
      if (history.length && !['Complete', 'Failed'].includes(history[0].phase)) {
        this.watchPrewarm(dataset);
      }
    } catch (error) {
      this.say(`${name}: ${(error as Error).message}`, true);
    }
  }

  /** The detail's facts (status, cache, mount); actions, progress and files stay as they are. */
  private renderFacts(dataset: IDataset): void {
    const box = this.detail.querySelector('.jp-CodespaceDatasets-facts');
    if (!box || this.detail.dataset.name !== dataset.name) {
      return;
    }
    const status = dataset.status;
    const facts: [string, string][] = [
      ['Description', dataset.description],
      ['Source', dataset.source],
      ['Backend', dataset.backend],
      ['Phase', status.phase],
      ['Size', status.ufsTotal ?? ''],
      ['Files', status.fileNum?.toString() ?? ''],
      ['Cached', [status.cached, status.cachedPercentage].filter(Boolean).join(' / ')],
      ['Cache capacity', status.cacheCapacity ?? ''],
      ['Cache hit ratio', status.cacheHitRatio ?? ''],
      ...Object.entries(status.runtimePhases).map(
        ([part, phase]) => [`Runtime ${part}`, phase] as [string, string]
      ),
      ['Read-only', dataset.readOnly ? 'yes' : 'no'],
      ['Mounted at', dataset.mounted ? dataset.mountPath ?? '' : 'not mounted'],
      ['Note', status.message ?? '']
    ];
    box.replaceChildren(
      el(
        'dl',
        {},
        facts
          .filter(([, v]) => v)
          .flatMap(([k, v]) => [el('dt', { textContent: k }), el('dd', { textContent: v })])
      )
    );
  }

  private renderDetail(dataset: IDataset): void {
    const name = dataset.name;
    const latest = () => this.current(name) ?? dataset;
    const button = (label: string, action: () => Promise<void>) => {
      const b = el('button', { className: 'jp-mod-styled', textContent: label });
      b.dataset.action = label;
      b.addEventListener('click', () => void action());
      return b;
    };
    const progress = el('div', { className: 'jp-CodespaceDatasets-progress' });
    const files = el('div', { className: 'jp-CodespaceDatasets-files' });
    this.detail.dataset.name = name;
    this.detail.replaceChildren(
      el('h3', { textContent: name }),
      el('div', { className: 'jp-CodespaceDatasets-facts' }),
      el('div', { className: 'jp-CodespaceDatasets-actions' }, [
        button('Open in file browser', () => this.openInBrowser(latest())),
        button('Copy path', async () => {
          const where = latest().mountPath ?? latest().source;
          Clipboard.copyToSystem(where);
          this.say(`Copied ${where}`);
        }),
        button('Insert snippet', async () => {
          const done = await this.actions.insertSnippet(pythonSnippet(latest()));
          this.say(done ? 'Snippet inserted' : 'Open a notebook to insert a snippet', !done);
        }),
        button('Prewarm', () => this.prewarm(latest())),
        button('Mount', () => this.mount(latest()))
      ]),
      progress,
      files
    );
    this.renderFacts(dataset);
    void this.showFiles(name, '');
  }

  private async openInBrowser(dataset: IDataset): Promise<void> {
    if (!dataset.mounted) {
      await this.mount(dataset);
      dataset = await datasetsApi.get(dataset.name);
    }
    if (dataset.contentsPath === null) {
      this.say(`${dataset.mountPath} is outside the file browser's root`, true);
      return;
    }
    await this.actions.openInFileBrowser(dataset.contentsPath);
  }

  private async showFiles(name: string, path: string, cursor?: string): Promise<void> {
    const box = this.detail.querySelector('.jp-CodespaceDatasets-files');
    if (!box) {
      return;
    }
    let page: IFilePage;
    try {
      page = await datasetsApi.files(name, path, cursor);
    } catch (error) {
      box.replaceChildren(el('p', { textContent: (error as Error).message }));
      return;
    }
    const up = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
    const items: HTMLElement[] = [];
    if (path) {
      const parent = el('li', { className: 'jp-CodespaceDatasets-dir', textContent: '..' });
      parent.addEventListener('click', () => void this.showFiles(name, up));
      items.push(parent);
    }
    for (const entry of page.entries) {
      const isDir = entry.type === 'directory';
      const li = el('li', {
        className: isDir ? 'jp-CodespaceDatasets-dir' : 'jp-CodespaceDatasets-file',
        textContent: isDir ? `${entry.name}/` : `${entry.name}  ${bytes(entry.size)}`
      });
      if (isDir) {
        li.addEventListener('click', () => void this.showFiles(name, entry.path));
      }
      items.push(li);
    }
    const children: HTMLElement[] = [
      el('h4', { textContent: `Files in /${page.path} (${page.total})` }),
      el('ul', {}, items)
    ];
    if (page.nextCursor) {
      const more = el('button', { className: 'jp-mod-styled', textContent: 'Next page' });
      more.addEventListener('click', () => void this.showFiles(name, path, page.nextCursor!));
      children.push(more);
    }
    box.replaceChildren(...children);
  }

  private async prewarm(dataset: IDataset): Promise<void> {
    try {
      const op = await datasetsApi.prewarm(dataset.name);
      this.renderProgress(op);
      this.watchPrewarm(dataset);
    } catch (error) {
      this.say(`Prewarm failed: ${(error as Error).message}`, true);
    }
  }

  private watchPrewarm(dataset: IDataset): void {
    this.stopPolling();
    const tick = async () => {
      const [op] = (await datasetsApi.prewarmHistory(dataset.name)).operations;
      if (!op || this.selected !== dataset.name) {
        return;
      }
      this.renderProgress(op);
      if (op.phase === 'Complete' || op.phase === 'Failed') {
        this.stopPolling();
        await this.refreshSelected(dataset.name); // the row and the detail's Cached line
      }
    };
    this.poll = window.setInterval(() => void tick(), POLL_MS);
    void tick();
  }

  private renderProgress(op: IPrewarmOperation): void {
    const box = this.detail.querySelector('.jp-CodespaceDatasets-progress');
    if (!box) {
      return;
    }
    const bar = el('progress', { max: op.bytesTotal || 1, value: op.bytesDone });
    const files = op.filesTotal !== null ? `${op.filesDone}/${op.filesTotal} files, ` : '';
    const amount = `${files}${bytes(op.bytesDone)} of ${bytes(op.bytesTotal)}`;
    box.replaceChildren(
      el('span', { textContent: `Prewarm ${op.phase}: ${amount}` }),
      bar,
      el('div', { textContent: op.message ?? '' })
    );
    box.setAttribute('data-phase', op.phase);
  }

  private async mount(dataset: IDataset): Promise<void> {
    try {
      const result = await datasetsApi.mount(dataset.name);
      this.say(`${result.mounted ? 'Mounted' : 'Recorded'}: ${result.message}`);
      await this.refresh();
    } catch (error) {
      this.say(`Mount failed: ${(error as Error).message}`, true);
    }
  }

  private stopPolling(): void {
    if (this.poll !== null) {
      window.clearInterval(this.poll);
      this.poll = null;
    }
  }
}
