// Deployments: the REST API of the server extension (codespace/api/deployments), and the
// snippets the Deployments panel copies (curl, Python) built from a deployment's endpoint and
// its model's example request.
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { apiRequest } from './api';
import { limitSeconds } from './jobs';

// ---- The REST API ---------------------------------------------------------------------------

export type DeploymentState = 'creating' | 'loading' | 'ready' | 'idle' | 'failed';
export type Protocol = 'v1' | 'v2';

export interface IEndpoint {
  /** The deployment's base URL (absolute, or relative to the hub's origin). */
  url: string;
  /** V2: .../v2/models/<name>/infer; V1: .../v1/models/<name>:predict. */
  infer: string;
  ready: string;
  protocol: Protocol;
}

export interface IDeploymentSpec {
  name: string;
  artifact: string;
  format?: string | null;
  protocol?: Protocol;
  minReplicas?: number;
  maxReplicas?: number;
  idleTimeout?: number;
  backend?: string | null;
  [key: string]: unknown;
}

export interface IDeployment {
  name: string;
  owner: string;
  backend: string;
  state: DeploymentState;
  reason: string;
  format: string;
  protocol: Protocol;
  created: string;
  lastRequest: string | null;
  endpoint: IEndpoint | null;
  warnings: string[];
  spec: IDeploymentSpec;
}

export interface IDeployBackend {
  name: string;
  default?: boolean;
  error?: string;
}

/** What the server makes of a model file or directory (`_detect`). */
export interface IDetected {
  path: string;
  format: string;
  description: string;
  /** A deployment name suggested from the path. */
  name: string;
  /** The protocols the format is served with, the preferred first. */
  protocols: Protocol[];
}

export interface ISignature {
  inputs: Record<string, unknown>[];
  outputs: Record<string, unknown>[];
  /** A request body to send to `predict`. */
  example: Record<string, unknown>;
  note: string;
}

export interface IShareToken {
  token: string;
  deployment: string;
  note: string;
  expires: string | null;
}

export interface ICreateRequest {
  artifact: string;
  name?: string;
  format?: string;
  protocol?: Protocol;
  minReplicas?: number;
  idleTimeout?: number;
  backend?: string;
}

/** A test request's answer: the model server's status and body, passed through. */
export interface IPredictAnswer {
  status: number;
  statusText: string;
  ok: boolean;
  /** The body parsed as JSON, or undefined when it is not JSON (then see `text`). */
  json: unknown;
  text: string;
  milliseconds: number;
}

const API = 'deployments';

const request = <T>(path: string, init: RequestInit = {}, query: Record<string, string> = {}) =>
  apiRequest<T>(API, path, init, query);

const item = (name: string, ...rest: string[]): string =>
  [encodeURIComponent(name), ...rest].join('/');

export const deployApi = {
  list: () => request<{ backends: IDeployBackend[]; deployments: IDeployment[] }>(''),
  detect: (path: string) => request<IDetected>('_detect', {}, { path }),
  create: (body: ICreateRequest) =>
    request<IDeployment>('', { method: 'POST', body: JSON.stringify(body) }),
  get: (name: string) => request<IDeployment>(item(name)),
  remove: (name: string) => request<null>(item(name), { method: 'DELETE' }),
  logs: (name: string, tail = 200) =>
    request<{ text: string }>(item(name, 'logs'), {}, { tail: String(tail) }),
  signature: (name: string) => request<ISignature>(item(name, 'signature')),
  share: (name: string, note: string, expiresIn: number | null) =>
    request<IShareToken>(item(name, 'tokens'), {
      method: 'POST',
      body: JSON.stringify({ note, expiresIn })
    }),
  /** Send `body` to the model; any answer (an error status too) comes back as it is. */
  async predict(name: string, body: string): Promise<IPredictAnswer> {
    const settings = ServerConnection.makeSettings();
    const url = URLExt.join(settings.baseUrl, 'codespace/api', API, item(name, 'predict'));
    const started = performance.now();
    const response = await ServerConnection.makeRequest(
      url,
      { method: 'POST', body, headers: { 'Content-Type': 'application/json' } },
      settings
    );
    const text = await response.text();
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return {
      status: response.status,
      statusText: response.statusText,
      ok: response.ok,
      json,
      text,
      milliseconds: Math.round(performance.now() - started)
    };
  }
};

// ---- Names, files and durations --------------------------------------------------------------

/** A deployment name: a DNS-1035 label of at most 45 characters (KServe adds suffixes). */
export const DEPLOYMENT_NAME = /^[a-z]([-a-z0-9]{0,43}[a-z0-9])?$/;

/** The model files the file browser offers to deploy (directories too: MLflow, Hugging Face). */
export const MODEL_EXTENSIONS = [
  '.joblib',
  '.pkl',
  '.pickle',
  '.json',
  '.ubj',
  '.bst',
  '.txt',
  '.lgb',
  '.lgbm',
  '.onnx'
];

export const isModelFile = (path: string): boolean => {
  const lower = path.toLowerCase();
  return MODEL_EXTENSIONS.some(ext => lower.endsWith(ext));
};

/** Seconds from "15m", "2h", "900", "900s" or "HH:MM:SS"; null when it is none of these. */
export function durationSeconds(text: string): number | null {
  const value = text.trim();
  if (/^\d+$/.test(value)) {
    return Number(value);
  }
  return limitSeconds(value);
}

/** 900 -> "15m", 3600 -> "1h", 90 -> "90s". */
export function shortDuration(seconds: number): string {
  if (seconds >= 3600 && seconds % 3600 === 0) {
    return `${seconds / 3600}h`;
  }
  if (seconds >= 60 && seconds % 60 === 0) {
    return `${seconds / 60}m`;
  }
  return `${seconds}s`;
}

// ---- Snippets ---------------------------------------------------------------------------------

/** A URL the way a user can call it from anywhere: relative ones on the hub's origin. */
export function absoluteUrl(url: string): string {
  try {
    return new URL(url, window.location.href).href;
  } catch {
    return url;
  }
}

/** A request body to show when the model's signature is unknown. */
export function placeholderBody(protocol: Protocol): Record<string, unknown> {
  return protocol === 'v1'
    ? { instances: [[0.0, 0.0, 0.0, 0.0]] }
    : {
        inputs: [{ name: 'input-0', shape: [1, 4], datatype: 'FP64', data: [0.0, 0.0, 0.0, 0.0] }]
      };
}

const shellQuote = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;

export function curlSnippet(d: IDeployment, body: unknown): string {
  const infer = d.endpoint ? absoluteUrl(d.endpoint.infer) : '<the endpoint, once it is ready>';
  return [
    '# TOKEN: your hub API token (the hub\'s Token page) or a share token of this deployment',
    `curl -X POST ${shellQuote(infer)} \\`,
    '  -H "Authorization: token $TOKEN" \\',
    '  -H "Content-Type: application/json" \\',
    `  -d ${shellQuote(JSON.stringify(body))}`
  ].join('\n');
}

/** JSON indented, with arrays of numbers, strings and booleans kept on one line (a tensor's
 * shape and data stay readable in a narrow panel). */
export function prettyJson(value: unknown, indent = ''): string {
  const inner = indent + '  ';
  if (Array.isArray(value)) {
    if (value.every(v => v === null || typeof v !== 'object')) {
      return JSON.stringify(value).replace(/,/g, ', ');
    }
    return `[\n${value.map(v => inner + prettyJson(v, inner)).join(',\n')}\n${indent}]`;
  }
  if (value && typeof value === 'object') {
    const entries = Object.entries(value);
    if (!entries.length) {
      return '{}';
    }
    const body = entries
      .map(([k, v]) => `${inner}${JSON.stringify(k)}: ${prettyJson(v, inner)}`)
      .join(',\n');
    return `{\n${body}\n${indent}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** JSON as a Python literal (true/false/null -> True/False/None; strings stay JSON's). */
export function pythonLiteral(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) {
    return 'None';
  }
  return json.replace(/"(?:\\.|[^"\\])*"|\btrue\b|\bfalse\b|\bnull\b/g, token =>
    token === 'true' ? 'True' : token === 'false' ? 'False' : token === 'null' ? 'None' : token
  );
}

/** The rows of an example body (V1 instances, or one V2 tensor of shape [rows, columns]) for
 * `Deployment.predict`; null when the body is something else. */
export function exampleRows(body: unknown): unknown[] | null {
  if (!body || typeof body !== 'object') {
    return null;
  }
  const b = body as { instances?: unknown; inputs?: unknown };
  if (Array.isArray(b.instances)) {
    return b.instances;
  }
  if (!Array.isArray(b.inputs) || b.inputs.length !== 1) {
    return null;
  }
  const { shape, data } = b.inputs[0] as { shape?: unknown; data?: unknown };
  if (!Array.isArray(shape) || !Array.isArray(data)) {
    return null;
  }
  const [rows, columns] = shape as number[];
  if (shape.length !== 2 || rows * columns !== data.length || data.some(Array.isArray)) {
    return null;
  }
  return Array.from({ length: rows }, (_, i) => data.slice(i * columns, (i + 1) * columns));
}

export function pythonSnippet(d: IDeployment, body: unknown): string {
  const rows = exampleRows(body);
  return [
    'from codespace import deploy',
    '',
    `ep = deploy.get(${JSON.stringify(d.name)})`,
    rows
      ? `ep.predict(${pythonLiteral(rows)})  # rows in, predictions out`
      : `ep.predict_raw(${pythonLiteral(body)})  # a request body in, the answer out`
  ].join('\n');
}
