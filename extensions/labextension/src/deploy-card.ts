// One deployment in the Deployments sidebar: a card with its state (and reason), format,
// protocol and backend, the endpoint's URL with a copy button, and its actions - copy a curl
// or Python snippet, send a test request built from the model's signature, read the log,
// mint a share token, delete. The card's drawer (the test request being edited, the log, a
// token just minted) stays as it is when the record is updated.
import { Clipboard } from '@jupyterlab/apputils';
import { copyIcon } from '@jupyterlab/ui-components';

import {
  absoluteUrl,
  curlSnippet,
  deployApi,
  DeploymentState,
  IDeployment,
  ISignature,
  placeholderBody,
  prettyJson,
  pythonSnippet,
  shortDuration
} from './deploy';
import { el } from './panel';
import { stateBadge, Tone } from './sidebar';

const STARTING: DeploymentState[] = ['creating', 'loading'];
// idle (scaled to zero) keeps the plain badge: nothing is wrong with it
const TONES: Partial<Record<DeploymentState, Tone>> = {
  creating: 'busy',
  loading: 'busy',
  ready: 'good',
  failed: 'bad'
};
export const isStarting = (d: IDeployment): boolean => STARTING.includes(d.state);

const LOG_TAIL = 200;

const EXPIRIES: [string, number | null][] = [
  ['1 day', 86400],
  ['7 days', 7 * 86400],
  ['30 days', 30 * 86400],
  ['never', null]
];

function when(iso: string | null): string {
  if (!iso) {
    return '';
  }
  const date = new Date(iso);
  return isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** "sklearn · v2 · local · scale to zero after 15m" */
function summary(d: IDeployment): string {
  const idle = d.spec.idleTimeout;
  const scaling =
    d.spec.minReplicas === 0
      ? `scale to zero${typeof idle === 'number' ? ` after ${shortDuration(idle)}` : ''}`
      : 'always on';
  return [d.format, d.protocol, d.backend, scaling].filter(Boolean).join(' · ');
}

/** A tensor of a signature, short: "input-0 FP64 [-1,4] (a, b, c, d)",
 * "predict (classes 0, 1, 2)". */
function tensor(t: Record<string, unknown>): string {
  const head = [t.name, t.datatype, t.shape ? JSON.stringify(t.shape) : '']
    .filter(v => v !== undefined && v !== null && v !== '')
    .join(' ');
  const names = Array.isArray(t.features) && t.features.length ? t.features : null;
  const classes = Array.isArray(t.classes) && t.classes.length ? t.classes : null;
  return (
    head +
    (names ? ` (${names.join(', ')})` : '') +
    (classes ? ` (classes ${classes.map(c => JSON.stringify(c)).join(', ')})` : '')
  );
}

function button(label: string, action: () => void, props: Partial<HTMLButtonElement> = {}) {
  const b = el('button', {
    className: 'jp-mod-styled jp-CodespaceDeploy-action',
    textContent: label,
    ...props
  });
  b.dataset.action = label;
  b.addEventListener('click', action);
  return b;
}

/** Copy `text`: the async clipboard API where the page may use it (it needs no fresh click,
 * so a snippet can be copied after its example was fetched), else the lab's fallback. */
async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    Clipboard.copyToSystem(text);
  }
}

function copyButton(what: string, text: () => string, say: (m: string) => void) {
  const b = el('button', {
    className: 'jp-Button jp-mod-minimal jp-CodespaceSidebar-icon jp-CodespaceDeploy-copy',
    title: `Copy ${what}`
  });
  b.setAttribute('aria-label', `Copy ${what}`);
  b.append(copyIcon.element({ tag: 'span', elementPosition: 'center' }));
  b.addEventListener('click', async () => {
    await copyText(text());
    say(`Copied ${what}`);
  });
  return b;
}

export interface ICardHost {
  say(message: string, isError?: boolean): void;
  remove(d: IDeployment): Promise<void>;
  refresh(): Promise<void>;
}

type DrawerKind = 'test' | 'logs' | 'share';

/** One deployment's card; its drawer survives updates of the record. */
export class DeploymentCard {
  readonly node: HTMLDivElement;
  private body: HTMLDivElement;
  private drawer: HTMLDivElement;
  private signature: Promise<ISignature> | null = null;

  constructor(
    public record: IDeployment,
    private host: ICardHost
  ) {
    this.body = el('div', { className: 'jp-CodespaceDeploy-body' });
    this.drawer = el('div', { className: 'jp-CodespaceDeploy-drawer' });
    this.node = el('div', { className: 'jp-CodespaceDeploy-item' }, [this.body, this.drawer]);
    this.node.setAttribute('role', 'listitem');
    this.update(record);
  }

  get drawerKind(): string {
    return this.drawer.dataset.kind ?? '';
  }

  update(d: IDeployment): void {
    this.record = d;
    this.node.dataset.name = d.name;
    this.node.dataset.state = d.state;
    const say = (m: string, e = false) => this.host.say(m, e);
    const endpoint = d.endpoint
      ? el('div', { className: 'jp-CodespaceDeploy-endpoint' }, [
          el('code', {
            className: 'jp-CodespaceDeploy-url',
            textContent: absoluteUrl(d.endpoint.url),
            title: `${absoluteUrl(d.endpoint.url)}\n${d.endpoint.protocol} inference: ` +
              absoluteUrl(d.endpoint.infer)
          }),
          copyButton(`the URL of ${d.name}`, () => absoluteUrl(d.endpoint!.url), say)
        ])
      : el('div', {
          className: 'jp-CodespaceDeploy-endpoint jp-CodespaceDeploy-none',
          textContent: d.state === 'failed' ? 'no endpoint' : 'no endpoint yet'
        });
    const pressed = (kind: DrawerKind, label: string, enabled = true) => {
      const b = button(label, () => void this.toggle(kind), { disabled: !enabled });
      b.setAttribute('aria-pressed', String(this.drawerKind === kind));
      return b;
    };
    const reason = d.reason
      ? [el('div', { className: 'jp-CodespaceDeploy-reason', textContent: d.reason })]
      : [];
    this.body.replaceChildren(
      el('div', { className: 'jp-CodespaceDeploy-head' }, [
        el('span', { className: 'jp-CodespaceDeploy-name', textContent: d.name, title: d.name }),
        stateBadge('jp-CodespaceDeploy', d.state, d.reason, TONES)
      ]),
      el('div', {
        className: 'jp-CodespaceDeploy-sub',
        textContent: summary(d),
        title: `${d.spec.artifact}\ncreated ${when(d.created)}` +
          (d.lastRequest ? `\nlast request ${when(d.lastRequest)}` : '')
      }),
      ...reason,
      ...d.warnings.map(w =>
        el('div', { className: 'jp-CodespaceDeploy-warning', textContent: w })
      ),
      endpoint,
      el('div', { className: 'jp-CodespaceDeploy-actions' }, [
        button('Copy curl', () => void this.copySnippet('curl')),
        button('Copy Python', () => void this.copySnippet('python')),
        pressed('test', 'Test request', d.state !== 'failed'),
        pressed('logs', 'Logs'),
        pressed('share', 'Share token'),
        button('Delete', () => void this.host.remove(this.record))
      ])
    );
    if (this.drawer.querySelector('.jp-CodespaceDeploy-log')) {
      void this.readLog();
    }
  }

  private async exampleBody(): Promise<unknown> {
    try {
      return (await this.getSignature()).example;
    } catch {
      return placeholderBody(this.record.protocol);
    }
  }

  private getSignature(): Promise<ISignature> {
    if (!this.signature) {
      this.signature = deployApi.signature(this.record.name);
      this.signature.catch(() => {
        this.signature = null; // ask again next time
      });
    }
    return this.signature;
  }

  private async copySnippet(kind: 'curl' | 'python'): Promise<void> {
    const body = await this.exampleBody();
    const d = this.record;
    await copyText(kind === 'curl' ? curlSnippet(d, body) : pythonSnippet(d, body));
    this.host.say(`Copied the ${kind === 'curl' ? 'curl' : 'Python'} snippet for ${d.name}`);
  }

  /** Open the drawer of `kind` (or close it when it is open). */
  private async toggle(kind: DrawerKind): Promise<void> {
    if (this.drawerKind === kind) {
      delete this.drawer.dataset.kind;
      this.drawer.replaceChildren();
      this.update(this.record);
      return;
    }
    this.drawer.dataset.kind = kind;
    this.drawer.replaceChildren();
    this.update(this.record);
    if (kind === 'test') {
      await this.openTest();
    } else if (kind === 'logs') {
      this.drawer.append(
        el('div', { className: 'jp-CodespaceDeploy-drawerHead' }, [
          el('h4', { textContent: `Log (last ${LOG_TAIL} lines)` }),
          button('Refresh', () => void this.readLog())
        ]),
        el('pre', { className: 'jp-CodespaceDeploy-log', textContent: 'Reading the log…' })
      );
      await this.readLog();
    } else {
      this.openShare();
    }
  }

  private async openTest(): Promise<void> {
    const d = this.record;
    const note = el('p', {
      className: 'jp-CodespaceDeploy-note',
      textContent: 'Reading the model’s signature…'
    });
    const text = el('textarea', {
      className: 'jp-CodespaceDeploy-request',
      name: 'request',
      rows: 8,
      spellcheck: false
    });
    text.setAttribute('aria-label', `Request body for ${d.name}`);
    const response = el('div', { className: 'jp-CodespaceDeploy-response' });
    response.setAttribute('role', 'status');
    let example: unknown = placeholderBody(d.protocol);
    const send = button('Send', () => void this.send(text.value, response, send));
    const reset = button('Reset', () => {
      text.value = prettyJson(example);
    });
    this.drawer.append(
      el('h4', { textContent: `Test request (${d.protocol})` }),
      note,
      text,
      el('div', { className: 'jp-CodespaceDeploy-actions' }, [send, reset]),
      response
    );
    try {
      const signature = await this.getSignature();
      example = signature.example;
      const parts = [
        signature.inputs.length ? `inputs: ${signature.inputs.map(tensor).join(', ')}` : '',
        signature.outputs.length ? `outputs: ${signature.outputs.map(tensor).join(', ')}` : '',
        signature.note
      ].filter(Boolean);
      note.textContent = parts.join(' · ') || 'An example request built from the model.';
    } catch (error) {
      note.textContent = `No signature (${(error as Error).message}): edit the example.`;
    }
    if (!text.value) {
      text.value = prettyJson(example);
    }
  }

  private async send(body: string, out: HTMLDivElement, send: HTMLButtonElement): Promise<void> {
    const d = this.record;
    try {
      JSON.parse(body);
    } catch (error) {
      out.dataset.status = 'invalid';
      out.replaceChildren(
        el('div', {
          className: 'jp-CodespaceDeploy-responseHead jp-mod-error',
          textContent: `Not JSON: ${(error as Error).message}`
        })
      );
      return;
    }
    send.disabled = true;
    delete out.dataset.status;
    const cold = d.state === 'idle' || isStarting(d);
    out.replaceChildren(
      el('div', {
        className: 'jp-CodespaceDeploy-responseHead',
        textContent: cold ? 'Sending… (the model server starts first)' : 'Sending…'
      })
    );
    try {
      const answer = await deployApi.predict(d.name, body);
      out.dataset.status = String(answer.status);
      const shown =
        answer.json === undefined ? answer.text : prettyJson(answer.json);
      out.replaceChildren(
        el('div', {
          className:
            'jp-CodespaceDeploy-responseHead' + (answer.ok ? ' jp-mod-ok' : ' jp-mod-error'),
          textContent: `${answer.status} ${answer.statusText} · ${answer.milliseconds} ms`
        }),
        el('pre', { className: 'jp-CodespaceDeploy-responseBody', textContent: shown })
      );
    } catch (error) {
      out.dataset.status = 'error';
      out.replaceChildren(
        el('div', {
          className: 'jp-CodespaceDeploy-responseHead jp-mod-error',
          textContent: `Not sent: ${(error as Error).message}`
        })
      );
    } finally {
      send.disabled = false;
    }
    void this.host.refresh(); // the state (idle -> ready) and the last request changed
  }

  private async readLog(): Promise<void> {
    let text: string;
    try {
      text = (await deployApi.logs(this.record.name, LOG_TAIL)).text || '(no output yet)';
    } catch (error) {
      text = `(no log: ${(error as Error).message})`;
    }
    const log = this.drawer.querySelector<HTMLPreElement>('.jp-CodespaceDeploy-log');
    if (!log || log.textContent === text) {
      return;
    }
    const following = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = text;
    if (following) {
      log.scrollTop = log.scrollHeight;
    }
  }

  private openShare(): void {
    const d = this.record;
    const note = el('input', { name: 'note', placeholder: 'for whom (a note)', spellcheck: false });
    const expires = el(
      'select',
      { name: 'expiresIn' },
      EXPIRIES.map(([label, seconds]) =>
        el('option', { value: seconds === null ? '' : String(seconds), textContent: label })
      )
    );
    const result = el('div', { className: 'jp-CodespaceDeploy-tokenResult' });
    const create = button('Create token', () => void mint());
    const mint = async () => {
      create.disabled = true;
      try {
        const seconds = expires.value ? Number(expires.value) : null;
        const token = await deployApi.share(d.name, note.value.trim(), seconds);
        const shown = el('input', {
          className: 'jp-CodespaceDeploy-token',
          value: token.token,
          readOnly: true,
          spellcheck: false
        });
        shown.setAttribute('aria-label', 'Share token');
        result.replaceChildren(
          el('div', { className: 'jp-CodespaceDeploy-endpoint' }, [
            shown,
            copyButton('the token', () => token.token, m => this.host.say(m))
          ]),
          el('p', {
            className: 'jp-CodespaceDeploy-note',
            textContent:
              'Shown once: copy it now. It calls only this deployment' +
              (token.expires ? `, until ${when(token.expires)}.` : ', and does not expire.') +
              ' Send it as "Authorization: token …".'
          })
        );
      } catch (error) {
        result.replaceChildren(
          el('p', {
            className: 'jp-CodespaceDeploy-note jp-mod-error',
            textContent: `No token: ${(error as Error).message}`
          })
        );
      } finally {
        create.disabled = false;
      }
    };
    this.drawer.append(
      el('h4', { textContent: 'Share token' }),
      el('p', {
        className: 'jp-CodespaceDeploy-note',
        textContent: 'A token that calls this endpoint and nothing else.'
      }),
      el('div', { className: 'jp-CodespaceDeploy-shareForm' }, [note, expires, create]),
      result
    );
  }
}
