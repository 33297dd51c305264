// "Submit as job...": a small form for a notebook or a Python script of the workspace (a name
// prefilled from the file's, the backend, an optional time limit, CPU and memory, and for a
// notebook its parameters as JSON), posted to codespace/api/jobs. A refused spec (400) shows
// the server's message in the form, with what was typed kept.
import { showErrorMessage } from '@jupyterlab/apputils';

import {
  backendSelect,
  errorLine,
  field,
  FormBody,
  formDialog,
  usableBackend,
  what
} from './form';
import { IJob, IJobBackend, IJobSpec, jobsApi, limitSeconds } from './jobs';
import { el } from './panel';

export const isNotebook = (path: string): boolean => /\.ipynb$/i.test(path);
export const isPythonScript = (path: string): boolean => /\.py$/i.test(path);
export const canSubmit = (path: string): boolean => isNotebook(path) || isPythonScript(path);

const JOB_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** A job name (a DNS label) from a file's: "Train Model.ipynb" -> "train-model". */
export function jobName(path: string): string {
  const base = path.split('/').pop()!.replace(/\.[^.]*$/, '');
  const name = base
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return name || 'job';
}

function randomKey(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('');
}

interface IFormValues {
  name: string;
  backend: string;
  timeLimit: string;
  cpu: string;
  memory: string;
  parameters: string;
}

/** The form, rebuilt with what was typed (and the error) when the server refuses a spec. */
class JobForm extends FormBody<IFormValues> {
  private inputs: Record<keyof IFormValues, HTMLElement & { value: string }>;

  constructor(
    readonly path: string,
    backends: IJobBackend[],
    values: IFormValues,
    error: string
  ) {
    super('jp-CodespaceJobForm');
    const notebook = isNotebook(path);
    const input = (name: keyof IFormValues, props: Partial<HTMLInputElement>) =>
      el('input', { name, value: values[name], ...props });
    const backend = backendSelect(backends, values.backend, backends.length < 2);
    const parameters = el('textarea', {
      name: 'parameters',
      value: values.parameters,
      rows: 3,
      placeholder: '{"epochs": 3}',
      spellcheck: false
    });
    this.inputs = {
      name: input('name', { required: true, maxLength: 63, spellcheck: false }),
      backend,
      timeLimit: input('timeLimit', { placeholder: 'e.g. 30m, 2h' }),
      cpu: input('cpu', { type: 'number', min: '0', step: 'any', placeholder: 'default' }),
      memory: input('memory', { placeholder: 'e.g. 2Gi' }),
      parameters
    };
    this.node.append(
      what(
        `Runs ${notebook ? 'the notebook' : 'the script'} ${path} in this codespace’s ` +
          'environment' +
          (notebook ? ', executed into an output notebook' : '') +
          '. Unsaved changes are saved first.'
      ),
      field('Name', this.inputs.name, 'a-z, 0-9 and -'),
      field('Backend', backend),
      el('div', { className: 'jp-CodespaceForm-row' }, [
        field('Time limit', this.inputs.timeLimit),
        field('CPU', this.inputs.cpu),
        field('Memory', this.inputs.memory)
      ]),
      ...(notebook
        ? [field('Parameters (JSON)', parameters, 'for the cell tagged “parameters”')]
        : []),
      errorLine(error)
    );
  }

  getValue(): IFormValues {
    const v = (k: keyof IFormValues) => this.inputs[k].value.trim();
    return {
      name: v('name'),
      backend: v('backend'),
      timeLimit: v('timeLimit'),
      cpu: v('cpu'),
      memory: v('memory'),
      parameters: v('parameters')
    };
  }
}

/** The job spec from the form, or the first thing wrong with it. */
export function specFrom(path: string, values: IFormValues): IJobSpec | string {
  if (!JOB_NAME.test(values.name)) {
    return (
      'The name must be a DNS label: a-z, 0-9 and "-", starting and ending with a letter or ' +
      'digit, at most 63 characters.'
    );
  }
  const spec: IJobSpec = { name: values.name };
  if (isNotebook(path)) {
    spec.notebook = path;
    if (values.parameters) {
      let parameters: unknown;
      try {
        parameters = JSON.parse(values.parameters);
      } catch (error) {
        return `Parameters are not JSON: ${(error as Error).message}`;
      }
      if (parameters === null || typeof parameters !== 'object' || Array.isArray(parameters)) {
        return 'Parameters must be a JSON object, such as {"epochs": 3}.';
      }
      spec.parameters = parameters as Record<string, unknown>;
    }
  } else {
    spec.script = path;
  }
  if (values.backend) {
    spec.backend = values.backend;
  }
  const resources: IJobSpec['resources'] = {};
  if (values.timeLimit) {
    if (limitSeconds(values.timeLimit) === null) {
      return `Time limit "${values.timeLimit}" is not a duration such as 30m, 2h or HH:MM:SS.`;
    }
    resources.timeLimit = values.timeLimit;
  }
  if (values.cpu) {
    const cpu = Number(values.cpu);
    if (!(cpu > 0)) {
      return 'CPU must be a number above 0.';
    }
    resources.cpu = cpu;
  }
  if (values.memory) {
    resources.memory = values.memory;
  }
  if (Object.keys(resources).length) {
    spec.resources = resources;
  }
  return spec;
}

/** Ask for the job's settings and submit it; the submitted jobs, or null when cancelled. */
export async function submitAsJob(
  path: string,
  beforeSubmit: () => Promise<void> = async () => undefined
): Promise<IJob[] | null> {
  let backends: IJobBackend[];
  try {
    backends = (await jobsApi.list()).backends;
  } catch (error) {
    await showErrorMessage(
      'Jobs are not available',
      `Cannot reach the jobs service: ${(error as Error).message}`
    );
    return null;
  }
  if (!backends.length) {
    await showErrorMessage(
      'Jobs are not available',
      'This codespace has no job backend configured.'
    );
    return null;
  }
  // One idempotency key per distinct request: a retry of the same one (after a timeout, say)
  // never makes a second job; a changed form is a new request.
  let sent = '';
  let key = randomKey();
  return formDialog<IFormValues, IJobSpec, IJob[]>({
    title: `Submit ${path.split('/').pop()} as a job`,
    accept: 'Submit',
    values: {
      name: jobName(path),
      backend: (usableBackend(backends) ?? backends[0]).name,
      timeLimit: '',
      cpu: '',
      memory: '',
      parameters: ''
    },
    form: (values, error) => new JobForm(path, backends, values, error),
    check: values => specFrom(path, values),
    send: async spec => {
      const body = JSON.stringify(spec);
      if (sent && body !== sent) {
        key = randomKey();
      }
      sent = body;
      await beforeSubmit();
      return (await jobsApi.submit([spec], key)).jobs;
    },
    refused: 'Not submitted'
  });
}
