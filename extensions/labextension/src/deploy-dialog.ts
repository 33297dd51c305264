// "Deploy...": the server detects the model's format first (a file it cannot serve is refused
// there, with the server's reason, before any form); then a small form - the name (suggested
// from the path), the detected format (read only), the protocol, scale to zero and its idle
// time, the backend where there are several - posted to codespace/api/deployments. A refused
// request shows the server's message in the form, with what was typed kept.
import { showErrorMessage } from '@jupyterlab/apputils';

import {
  DEPLOYMENT_NAME,
  deployApi,
  durationSeconds,
  ICreateRequest,
  IDeployBackend,
  IDeployment,
  IDetected,
  Protocol,
  shortDuration
} from './deploy';
import {
  backendSelect,
  errorLine,
  field,
  FormBody,
  formDialog,
  usableBackend,
  what
} from './form';
import { el } from './panel';

/** The idle time offered before a scale-to-zero deployment stops (the server's default). */
const DEFAULT_IDLE = 900;
const MIN_IDLE = 10;

const PROTOCOL_LABELS: Record<string, string> = {
  v2: 'V2 - Open Inference Protocol (/v2/models/…/infer)',
  v1: 'V1 - KServe V1 (/v1/models/…:predict)'
};

interface IFormValues {
  name: string;
  protocol: string;
  scaleToZero: boolean;
  idleTimeout: string;
  backend: string;
}

type Control = HTMLElement & { value: string };
type FormKey = 'name' | 'protocol' | 'idleTimeout' | 'backend';

class DeployForm extends FormBody<IFormValues> {
  private inputs: Record<FormKey, Control>;
  private scaleToZero: HTMLInputElement;

  constructor(
    readonly detected: IDetected,
    backends: IDeployBackend[],
    values: IFormValues,
    error: string
  ) {
    super('jp-CodespaceDeployForm');
    const protocols = detected.protocols.length ? detected.protocols : ['v2'];
    const protocol = el(
      'select',
      { name: 'protocol', disabled: protocols.length < 2 },
      protocols.map(p =>
        el('option', {
          value: p,
          textContent: PROTOCOL_LABELS[p] ?? p,
          selected: p === values.protocol
        })
      )
    );
    const backend = backendSelect(backends, values.backend);
    this.scaleToZero = el('input', {
      type: 'checkbox',
      name: 'scaleToZero',
      checked: values.scaleToZero
    });
    const idle = el('input', {
      name: 'idleTimeout',
      value: values.idleTimeout,
      placeholder: 'e.g. 15m',
      disabled: !values.scaleToZero,
      spellcheck: false
    });
    this.scaleToZero.addEventListener('change', () => {
      idle.disabled = !this.scaleToZero.checked;
    });
    this.inputs = {
      name: el('input', {
        name: 'name',
        value: values.name,
        required: true,
        maxLength: 45,
        spellcheck: false
      }),
      protocol,
      idleTimeout: idle,
      backend
    };
    const format = el('input', {
      name: 'format',
      value: detected.format,
      readOnly: true,
      title: detected.description
    });
    format.setAttribute('aria-readonly', 'true');
    this.node.append(
      what(
        `Serves ${detected.path} behind the hub at an authenticated URL that stays when ` +
          'this codespace stops, in this codespace’s environment.'
      ),
      field('Name', this.inputs.name, 'a-z, 0-9 and -, a letter first'),
      field('Format', format, detected.description),
      field('Protocol', protocol),
      el('label', { className: 'jp-CodespaceForm-check' }, [
        this.scaleToZero,
        el('span', {
          textContent: 'Scale to zero when idle (the next request starts it again)'
        })
      ]),
      field('Idle time before it stops', idle),
      ...(backends.length > 1 ? [field('Backend', backend)] : []),
      errorLine(error)
    );
  }

  getValue(): IFormValues {
    const v = (k: FormKey) => this.inputs[k].value.trim();
    return {
      name: v('name'),
      protocol: v('protocol'),
      scaleToZero: this.scaleToZero.checked,
      idleTimeout: v('idleTimeout'),
      backend: v('backend')
    };
  }
}

/** The request from the form, or the first thing wrong with it. */
export function requestFrom(detected: IDetected, values: IFormValues): ICreateRequest | string {
  if (!DEPLOYMENT_NAME.test(values.name)) {
    return (
      'The name must be a-z, 0-9 and "-", starting with a letter and ending with a letter ' +
      'or digit, at most 45 characters.'
    );
  }
  const body: ICreateRequest = {
    artifact: detected.path,
    name: values.name,
    format: detected.format,
    minReplicas: values.scaleToZero ? 0 : 1
  };
  if (values.protocol) {
    body.protocol = values.protocol as Protocol;
  }
  if (values.scaleToZero) {
    const idle = durationSeconds(values.idleTimeout || shortDuration(DEFAULT_IDLE));
    if (idle === null) {
      return `Idle time "${values.idleTimeout}" is not a duration such as 90s, 15m or 1h.`;
    }
    if (idle < MIN_IDLE) {
      return `The idle time must be at least ${MIN_IDLE} seconds.`;
    }
    body.idleTimeout = idle;
  }
  if (values.backend) {
    body.backend = values.backend;
  }
  return body;
}

/** Detect the model at `path`, ask for the deployment's settings and create it; the new
 * deployment, or null when refused up front or cancelled. */
export async function deployModel(path: string): Promise<IDeployment | null> {
  const file = path.split('/').pop() || path;
  let detected: IDetected;
  let backends: IDeployBackend[] = [];
  try {
    const [found, listed] = await Promise.all([
      deployApi.detect(path),
      deployApi.list().catch(() => ({ backends: [] as IDeployBackend[] }))
    ]);
    detected = found;
    backends = listed.backends;
  } catch (error) {
    await showErrorMessage(`Cannot deploy ${file}`, (error as Error).message);
    return null;
  }
  const usable = usableBackend(backends);
  return formDialog<IFormValues, ICreateRequest, IDeployment>({
    title: `Deploy ${file}`,
    accept: 'Deploy',
    values: {
      name: detected.name,
      protocol: detected.protocols[0] ?? 'v2',
      scaleToZero: true,
      idleTimeout: shortDuration(DEFAULT_IDLE),
      backend: backends.length > 1 && usable ? usable.name : ''
    },
    form: (values, error) => new DeployForm(detected, backends, values, error),
    check: values => requestFrom(detected, values),
    send: body => deployApi.create(body),
    refused: 'Not deployed'
  });
}
