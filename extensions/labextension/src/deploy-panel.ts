// The Deployments sidebar: one card per deployment of the user (deploy-card.ts), refreshed
// while a deployment is being created or loaded and the panel is shown; the deployment just
// created is followed in the status line until it serves or fails.
import { Dialog, showDialog } from '@jupyterlab/apputils';

import { deployApi, IDeployBackend, IDeployment } from './deploy';
import { DeploymentCard, ICardHost, isStarting } from './deploy-card';
import { ListSidebar } from './sidebar';

/** Refresh this often while a deployment is being created or loaded (and the panel is shown). */
const POLL_MS = 2000;

export class DeploymentsPanel extends ListSidebar<IDeployment, IDeployBackend> {
  private cards = new Map<string, DeploymentCard>();
  private host: ICardHost;
  /** The deployment just created, followed in the status line until it serves or fails. */
  private following: string | null = null;

  constructor() {
    super('jp-CodespaceDeploy', 'Deployments', 'deployments', POLL_MS);
    this.host = {
      say: (message, isError = false) => this.say(message, isError),
      remove: d => this.remove(d),
      refresh: () => this.refresh()
    };
  }

  protected async load(): Promise<{ items: IDeployment[]; backends: IDeployBackend[] }> {
    const answer = await deployApi.list();
    return { items: answer.deployments, backends: answer.backends };
  }

  protected isChanging(d: IDeployment): boolean {
    return isStarting(d);
  }

  /** A deployment just created: list it first and follow it until it is ready or failed. */
  async showCreated(d: IDeployment): Promise<void> {
    this.items = [d, ...this.items.filter(x => x.name !== d.name)];
    this.loaded = true;
    this.following = d.name;
    this.say(`Deploying ${d.name}…`);
    this.render();
    this.cards.get(d.name)?.node.scrollIntoView({ block: 'nearest' });
    await this.refresh();
  }

  protected render(): void {
    const starting = this.items.filter(isStarting).length;
    const listed = this.renderFrame(
      this.items.length ? `${this.items.length}${starting ? `, ${starting} starting` : ''}` : '',
      `${this.items.length} deployments, ${starting} starting`,
      {
        loading: 'Loading deployments…',
        failed: 'The deployments service did not answer. Refresh to try again.',
        none:
          'No deployments yet. Right-click a model file (.joblib, .pkl, .json, .onnx, …) ' +
          'or an MLflow or Hugging Face model folder in the file browser and choose ' +
          '“Deploy…”.'
      }
    );
    const followed = this.items.find(d => d.name === this.following);
    if (followed && !isStarting(followed)) {
      this.following = null;
      if (followed.state === 'failed') {
        this.say(`${followed.name} failed: ${followed.reason || 'no reason given'}`, true);
      } else {
        this.say(`${followed.name} is ${followed.state}: send it a test request`);
      }
    }
    if (!listed) {
      this.cards.clear();
      return;
    }
    const cards = this.items.map(d => {
      let card = this.cards.get(d.name);
      if (card) {
        card.update(d);
      } else {
        card = new DeploymentCard(d, this.host);
        this.cards.set(d.name, card);
      }
      return card;
    });
    const names = new Set(this.items.map(d => d.name));
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
      this.items = this.items.filter(x => x.name !== d.name);
      this.render();
      this.say(`Deleted ${d.name}`);
    } catch (error) {
      this.say(`Delete failed: ${(error as Error).message}`, true);
    }
    await this.refresh();
  }
}
