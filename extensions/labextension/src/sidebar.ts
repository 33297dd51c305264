// What the Jobs and Deployments sidebars share: a header (title, a summary, a refresh button),
// a status line, notes on backends that did not answer, and the list of the user's items,
// re-read while one of them is still changing (queued, starting) and the panel is shown.
// Each element has the shared class (`jp-CodespaceSidebar-<part>`, style/sidebar.css) and
// the panel's own (`<prefix>-<part>`). `addSidebar` puts any of the three on the left.
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { LabIcon, refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { el } from './panel';

export interface ISidebarPlace {
  id: string;
  icon: LabIcon;
  /** The tab's tooltip and the command's noun: "Show Jobs". */
  caption: string;
  rank: number;
  /** The command that shows the panel (in the palette's Codespace category). */
  command: string;
}

/** Put `panel` in the left sidebar with a command (and palette item) that shows it. */
export function addSidebar(
  app: JupyterFrontEnd,
  panel: Widget,
  place: ISidebarPlace,
  palette?: ICommandPalette | null
): void {
  panel.id = place.id;
  panel.title.icon = place.icon;
  panel.title.caption = place.caption;
  app.shell.add(panel, 'left', { rank: place.rank });
  app.commands.addCommand(place.command, {
    label: `Show ${place.caption}`,
    execute: () => app.shell.activateById(panel.id)
  });
  palette?.addItem({ command: place.command, category: 'Codespace' });
}

export interface IBackendNote {
  name: string;
  /** Why the backend cannot answer now (it stays listed). */
  error?: string;
}

export interface IListAnswer<T, B> {
  items: T[];
  backends: B[];
}

/** What the list says while loading, when its service fails, and when it is empty. */
export interface IEmptyTexts {
  loading: string;
  failed: string;
  none: string;
}

/** How a state reads at a glance: under way, done well, failed, stopped by someone. */
export type Tone = 'busy' | 'good' | 'bad' | 'warn';

/** A state badge (``<prefix>-state``), coloured by its tone, its reason in the tooltip. */
export function stateBadge(
  prefix: string,
  state: string,
  reason: string,
  tones: Readonly<Record<string, Tone>>
): HTMLSpanElement {
  const badge = el('span', {
    className: `jp-CodespaceSidebar-state ${prefix}-state`,
    textContent: state,
    title: reason ? `${state}: ${reason}` : state
  });
  const tone = tones[state];
  if (tone) {
    badge.dataset.tone = tone;
  }
  return badge;
}

export abstract class ListSidebar<T, B extends IBackendNote> extends Widget {
  protected items: T[] = [];
  protected backends: B[] = [];
  protected loaded = false;
  protected listError: string | null = null;
  protected readonly list: HTMLDivElement;
  protected readonly statusLine: HTMLDivElement;
  protected readonly notes: HTMLDivElement;
  protected readonly summary: HTMLSpanElement;
  private pollTimer: number | null = null;
  private refreshing: Promise<void> | null = null;

  /**
   * @param prefix the panel's class prefix (`jp-CodespaceJobs`)
   * @param title the header's title
   * @param noun what the list holds, for its error (`jobs`)
   * @param pollMs how often the list is re-read while an item is changing
   */
  constructor(
    protected readonly prefix: string,
    title: string,
    private readonly noun: string,
    private readonly pollMs: number
  ) {
    super();
    this.addClass('jp-CodespaceSidebar');
    this.addClass(prefix);
    const refresh = el('button', {
      className: `jp-Button jp-mod-minimal jp-CodespaceSidebar-icon ${prefix}-refresh`,
      title: 'Refresh'
    });
    refresh.setAttribute('aria-label', 'Refresh');
    refresh.append(refreshIcon.element({ tag: 'span', elementPosition: 'center' }));
    refresh.addEventListener('click', () => void this.refresh());
    this.summary = el('span', { className: this.cls('summary') });
    this.statusLine = el('div', { className: this.cls('status') });
    this.statusLine.setAttribute('role', 'status');
    this.notes = el('div', { className: this.cls('notes') });
    this.list = el('div', { className: this.cls('list') });
    this.list.setAttribute('role', 'list');
    this.node.append(
      el('div', { className: this.cls('header') }, [
        el('h2', { textContent: title }),
        this.summary,
        refresh
      ]),
      this.statusLine,
      this.notes,
      this.list
    );
    document.addEventListener('visibilitychange', this.onVisibility);
  }

  /** The shared and the panel's class of a part (`header`, `status`...). */
  protected cls(part: string): string {
    return `jp-CodespaceSidebar-${part} ${this.prefix}-${part}`;
  }

  /** Read the list from the server. */
  protected abstract load(): Promise<IListAnswer<T, B>>;

  /** Whether an item is still changing: the list is re-read meanwhile. */
  protected abstract isChanging(item: T): boolean;

  /** Show the items (after a refresh, or when they changed here). */
  protected abstract render(): void;

  /** More to read after the list (a selected item's detail); before the next poll. */
  protected async afterRefresh(): Promise<void> {
    return;
  }

  /** Polling started (true) or stopped (false): a panel with clocks ticks them meanwhile. */
  protected onWatching(watching: boolean): void {
    return;
  }

  dispose(): void {
    document.removeEventListener('visibilitychange', this.onVisibility);
    this.stopPolling();
    super.dispose();
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  protected onAfterAttach(): void {
    if (this.isVisible) {
      void this.refresh();
    }
  }

  protected onBeforeHide(): void {
    this.stopPolling();
  }

  protected onBeforeDetach(): void {
    this.stopPolling();
  }

  private onVisibility = (): void => {
    if (document.visibilityState === 'visible' && this.isVisible) {
      void this.refresh();
    } else {
      this.stopPolling();
    }
  };

  /** Re-read the list; one refresh at a time. */
  refresh(): Promise<void> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    try {
      const answer = await this.load();
      this.items = answer.items;
      this.backends = answer.backends;
      this.listError = null;
    } catch (error) {
      this.listError = `Cannot list ${this.noun}: ${(error as Error).message}`;
    }
    this.loaded = true;
    this.render();
    await this.afterRefresh();
    this.schedule();
  }

  /** Say something in the status line; `kind` 'list' marks the list's own error. */
  protected say(message: string, isError = false, kind = ''): void {
    this.statusLine.textContent = message;
    this.statusLine.classList.toggle('jp-mod-error', isError);
    this.statusLine.dataset.kind = kind;
  }

  /**
   * The parts every render shows: the summary, the list's error in the status line (gone
   * once the list answers again; an action's message stays), a note for each backend that
   * did not answer (its items are missing), and, for an empty list, why it is empty.
   * Returns false when the list is empty (nothing more to render).
   */
  protected renderFrame(summary: string, summaryTitle: string, empty: IEmptyTexts): boolean {
    this.summary.textContent = summary;
    this.summary.title = summaryTitle;
    if (this.listError) {
      this.say(this.listError, true, 'list');
    } else if (this.statusLine.dataset.kind === 'list') {
      this.say('');
    }
    this.notes.replaceChildren(
      ...this.backends
        .filter(b => b.error)
        .map(b => el('p', { textContent: `${b.name} is unavailable: ${b.error}` }))
    );
    if (this.items.length) {
      return true;
    }
    const text = !this.loaded ? empty.loading : this.listError ? empty.failed : empty.none;
    this.list.replaceChildren(el('p', { className: this.cls('empty'), textContent: text }));
    return false;
  }

  private schedule(): void {
    this.stopPolling();
    const watching =
      this.isVisible &&
      document.visibilityState === 'visible' &&
      this.items.some(item => this.isChanging(item));
    if (watching) {
      this.pollTimer = window.setTimeout(() => void this.refresh(), this.pollMs);
      this.onWatching(true);
    }
  }

  protected stopPolling(): void {
    if (this.pollTimer !== null) {
      window.clearTimeout(this.pollTimer);
      this.pollTimer = null;
    }
    this.onWatching(false);
  }
}
