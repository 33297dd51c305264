// The dialog forms ("Deploy...", "Submit as job..."): labelled fields, the backend choice, an
// error line, and the loop that shows the form again - with what was typed and the reason -
// until a request is accepted or the user cancels (style/form.css).
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { el } from './panel';

/** A backend as the jobs and deploy services list it. */
export interface IBackendChoice {
  name: string;
  default?: boolean;
  /** Why it cannot take work now (it stays listed). */
  error?: string;
}

/** A form's body: `jp-CodespaceForm` plus its own class; the dialog reads `getValue`. */
export abstract class FormBody<V> extends Widget {
  constructor(className: string) {
    super();
    this.addClass('jp-CodespaceForm');
    this.addClass(className);
  }

  abstract getValue(): V;
}

/** A labelled control, with a hint under it. */
export function field(label: string, control: HTMLElement, hint = ''): HTMLLabelElement {
  const row = el('label', { className: 'jp-CodespaceForm-field' }, [
    el('span', { className: 'jp-CodespaceForm-label', textContent: label }),
    control
  ]);
  if (hint) {
    row.append(el('span', { className: 'jp-CodespaceForm-hint', textContent: hint }));
  }
  return row;
}

/** What the form does, in a sentence above its fields. */
export function what(text: string): HTMLParagraphElement {
  return el('p', { className: 'jp-CodespaceForm-what', textContent: text });
}

/** The line that says why the last try was refused (hidden when empty). */
export function errorLine(error: string): HTMLDivElement {
  const line = el('div', { className: 'jp-CodespaceForm-error', textContent: error });
  line.setAttribute('role', 'alert');
  return line;
}

/** The backend choice: the default marked, an unavailable one disabled with its reason
 * (unless it is the one already chosen, so the server says why it is refused). */
export function backendSelect(
  backends: IBackendChoice[],
  selected: string,
  disabled = false
): HTMLSelectElement {
  return el(
    'select',
    { name: 'backend', disabled },
    backends.map(b =>
      el('option', {
        value: b.name,
        textContent:
          b.name + (b.default ? ' (default)' : '') + (b.error ? ` - unavailable: ${b.error}` : ''),
        title: b.error ?? '',
        disabled: !!b.error && b.name !== selected,
        selected: b.name === selected
      })
    )
  );
}

/** The backend a form starts with: the default if it can take work, else the first that can. */
export function usableBackend(backends: IBackendChoice[]): IBackendChoice | undefined {
  return backends.find(b => b.default && !b.error) ?? backends.find(b => !b.error);
}

export interface IFormDialog<V, Req, R> {
  title: string;
  /** The accept button's label. */
  accept: string;
  values: V;
  form: (values: V, error: string) => FormBody<V>;
  /** The request from what was typed, or what is wrong with it. */
  check: (values: V) => Req | string;
  send: (request: Req) => Promise<R>;
  /** Put before the server's reason when `send` fails: "Not deployed". */
  refused: string;
}

/** Show the form until `send` succeeds (its result) or the user cancels (null). */
export async function formDialog<V, Req, R>(o: IFormDialog<V, Req, R>): Promise<R | null> {
  let values = o.values;
  let error = '';
  for (;;) {
    const answer = await showDialog({
      title: o.title,
      body: o.form(values, error),
      focusNodeSelector: 'input[name="name"]',
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: o.accept })]
    });
    if (!answer.button.accept || !answer.value) {
      return null;
    }
    values = answer.value;
    const request = o.check(values);
    if (typeof request === 'string') {
      error = request;
      continue;
    }
    try {
      return await o.send(request);
    } catch (err) {
      error = `${o.refused}: ${(err as Error).message}`;
    }
  }
}
