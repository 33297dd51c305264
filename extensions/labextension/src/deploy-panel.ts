// The Deployments sidebar: one card per deployment of the user (deploy-card.ts), refreshed
// while a deployment is being created or loaded and the panel is shown; the deployment just
// created is followed in the status line until it serves or fails.
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { deployApi, IDeployBackend, IDeployment } from './deploy';
import { DeploymentCard, ICardHost, isStarting } from './deploy-card';
import { el } from './panel';

/** Refresh this often while a deployment is being created or loaded (and the panel is shown). */
const POLL_MS = 2000;

export class DeploymentsPanel extends Widget {
  private deployments: IDeployment[] = [];
  private backends: IDeployBackend[] = [];
  private cards = new Map<string, DeploymentCard>();
  private loaded = false;
  private listError: string | null = null;
  private list: HTMLDivElement;
  private statusLine: HTMLDivElement;
  private notes: HTMLDivElement;
  private summary: HTMLSpanElement;
  private pollTimer: number | null = null;
  private refreshing: Promise<void> | null = null;
  private host: ICardHost;
  /** The deployment just created, followed in the status line until it serves or fails. */
  private following: string | null = null;

  constructor() {
    super();
    this.addClass('jp-CodespaceDeploy');
    const refresh = el('button', {
      className: 'jp-Button jp-mod-minimal jp-CodespaceDeploy-refresh',
      title: 'Refresh'
    });
    refresh.setAttribute('aria-label', 'Refresh');
    refresh.append(refreshIcon.element({ tag: 'span', elementPosition: 'center' }));
    refresh.addEventListener('click', () => void this.refresh());
    this.summary = el('span', { className: 'jp-CodespaceDeploy-summary' });
    this.statusLine = el('div', { className: 'jp-CodespaceDeploy-status' });
    this.statusLine.setAttribute('role', 'status');
    this.notes = el('div', { className: 'jp-CodespaceDeploy-notes' });
    this.list = el('div', { className: 'jp-CodespaceDeploy-list' });
    this.list.setAttribute('role', 'list');
    this.node.append(
      el('div', { className: 'jp-CodespaceDeploy-header' }, [
        el('h2', { textContent: 'Deployments' }),
        this.summary,
        refresh
      ]),
      this.statusLine,
      this.notes,
      this.list
    );
    this.host = {
      say: (message, isError = false) => this.say(message, isError),
      remove: d => this.remove(d),
      refresh: () => this.refresh()
    };
    document.addEventListener('visibilitychange', this.onVisibility);
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

  /** A deployment just created: list it first and follow it until it is ready or failed. */
  async showCreated(d: IDeployment): Promise<void> {
    this.deployments = [d, ...this.deployments.filter(x => x.name !== d.name)];
    this.loaded = true;
    this.following = d.name;
    this.say(`Deploying ${d.name}…`);
    this.render();
    this.cards.get(d.name)?.node.scrollIntoView({ block: 'nearest' });
    await this.refresh();
  }

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
      const answer = await deployApi.list();
      this.deployments = answer.deployments;
      this.backends = answer.backends;
      this.listError = null;
    } catch (error) {
      this.listError = `Cannot list deployments: ${(error as Error).message}`;
    }
    this.loaded = true;
    this.render();
    this.schedule();
  }

  private say(message: string, isError = false): void {
    this.statusLine.textContent = message;
    this.statusLine.classList.toggle('jp-mod-error', isError);
    this.statusLine.dataset.kind = '';
  }

  private schedule(): void {
    this.stopPolling();
    if (
      this.isVisible &&
      document.visibilityState === 'visible' &&
      this.deployments.some(isStarting)
    ) {
      this.pollTimer = window.setTimeout(() => void this.refresh(), POLL_MS);
    }
  }

  private stopPolling(): void {
    if (this.pollTimer !== null) {
      window.clearTimeout(this.pollTimer);
      this.pollTimer = null;
    }
  }

  private render(): void {
    const starting = this.deployments.filter(isStarting).length;
    this.summary.textContent = this.deployments.length
      ? `${this.deployments.length}${starting ? `, ${starting} starting` : ''}`
      : '';
    this.summary.title = `${this.deployments.length} deployments, ${starting} starting`;
    if (this.listError) {
      this.say(this.listError, true);
      this.statusLine.dataset.kind = 'list';
    } else if (this.statusLine.dataset.kind === 'list') {
      this.say(''); // the list answers again: its error goes (an action's message stays)
    }
    const followed = this.deployments.find(d => d.name === this.following);
    if (followed && !isStarting(followed)) {
      this.following = null;
      if (followed.state === 'failed') {
        this.say(`${followed.name} failed: ${followed.reason || 'no reason given'}`, true);
      } else {
        this.say(`${followed.name} is ${followed.state}: send it a test request`);
      }
    }
    this.notes.replaceChildren(
      ...this.backends
        .filter(b => b.error)
        .map(b => el('p', { textContent: `${b.name} is unavailable: ${b.error}` }))
    );
    if (!this.deployments.length) {
      this.cards.clear();
      const text = !this.loaded
        ? 'Loading deployments…'
        : this.listError
          ? 'The deployments service did not answer. Refresh to try again.'
          : 'No deployments yet. Right-click a model file (.joblib, .pkl, .json, .onnx, …) ' +
            'or an MLflow or Hugging Face model folder in the file browser and choose ' +
            '“Deploy…”.';
      this.list.replaceChildren(
        el('p', { className: 'jp-CodespaceDeploy-empty', textContent: text })
      );
      return;
    }
    const cards = this.deployments.map(d => {
      let card = this.cards.get(d.name);
      if (card) {
        card.update(d);
      } else {
        card = new DeploymentCard(d, this.host);
        this.cards.set(d.name, card);
      }
      return card;
    });
    const names = new Set(this.deployments.map(d => d.name));
    for (const name of Array.from(this.cards.keys())) {
      if (!names.has(name)) {
        this.cards.delete(name);
      }
    }
    // Keep the nodes that stay in the DOM (a focused textarea keeps its focus).
    const wanted = cards.map(c => c.node);
    for (const child of Array.from(this.list.children)) {
      if (!wanted.includes(child as HTMLDivElement)) {
        child.remove();
      }
    }
    wanted.forEach((node, index) => {
      if (this.list.children[index] !== node) {
        this.list.insertBefore(node, this.list.children[index] ?? null);
      }
    });
  }

  private async remove(d: IDeployment): Promise<void> {
    const answer = await showDialog({
      title: `Delete deployment ${d.name}?`,
      body:
        'Its endpoint stops answering and its share tokens stop working. The model file ' +
        `(${d.spec.artifact}) stays.`,
      buttons: [Dialog.cancelButton({ label: 'Keep' }), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await deployApi.remove(d.name);
      this.deployments = this.deployments.filter(x => x.name !== d.name);
      this.render();
      this.say(`Deleted ${d.name}`);
    } catch (error) {
      this.say(`Delete failed: ${(error as Error).message}`, true);
    }
    await this.refresh();
  }
}
