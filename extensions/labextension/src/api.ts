// The codespace server extension's REST API (see extensions/datasets_handlers.py).
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IDatasetStatus {
  phase: string;
  ufsTotal: string | null;
  fileNum: number | null;
  cached: string | null;
  cacheCapacity: string | null;
  cachedPercentage: string | null;
  cacheHitRatio: string | null;
  runtimePhases: Record<string, string>;
  message: string | null;
}

export interface IDataset {
  name: string;
  description: string;
  source: string;
  readOnly: boolean;
  tags: string[];
  backend: string;
  status: IDatasetStatus;
  mountPath: string | null;
  mounted: boolean;
  /** The mount path relative to the server's root, when it lies inside (file browser). */
  contentsPath: string | null;
}

export interface IFileEntry {
  name: string;
  path: string;
  type: 'file' | 'directory';
  size: number | null;
  modified: number | null;
}

export interface IFilePage {
  dataset: string;
  path: string;
  entries: IFileEntry[];
  total: number;
  nextCursor: string | null;
}

export interface IPrewarmOperation {
  id: string;
  dataset: string;
  paths: string[];
  phase: 'Pending' | 'Executing' | 'Complete' | 'Failed';
  bytesDone: number;
  bytesTotal: number | null;
  filesDone: number;
  filesTotal: number | null;
  message: string | null;
}

export interface IMountResult {
  dataset: string;
  mountPath: string;
  mounted: boolean;
  pendingRestart: boolean;
  readOnlyEnforced: boolean;
  message: string;
}

/** A JSON request to one of the server extension's APIs (`codespace/api/<api>/<path>`); an
 * error answer throws its `message`. Shared by the Datasets and Jobs panels. */
export async function apiRequest<T>(
  api: string,
  path: string,
  init: RequestInit = {},
  query: Record<string, string> = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const search = new URLSearchParams(query).toString();
  const url =
    URLExt.join(settings.baseUrl, 'codespace/api', api, path) + (search ? `?${search}` : '');
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (error) {
    if (response.ok) {
      throw error;
    }
  }
  if (!response.ok) {
    throw new Error((data && data.message) || `${response.status} ${response.statusText}`);
  }
  return data as T;
}

const request = <T>(path: string, init: RequestInit = {}, query: Record<string, string> = {}) =>
  apiRequest<T>('datasets', path, init, query);

const item = (name: string, ...rest: string[]): string =>
  [encodeURIComponent(name), ...rest].join('/');

export const datasetsApi = {
  list: () => request<{ backend: string; datasets: IDataset[] }>(''),
  get: (name: string) => request<IDataset>(item(name)),
  files: (name: string, path: string, cursor?: string) =>
    request<IFilePage>(item(name, 'files'), {}, cursor ? { path, cursor } : { path }),
  prewarm: (name: string, paths?: string[]) =>
    request<IPrewarmOperation>(item(name, 'prewarm'), {
      method: 'POST',
      body: JSON.stringify({ paths: paths ?? null })
    }),
  prewarmHistory: (name: string) =>
    request<{ operations: IPrewarmOperation[] }>(item(name, 'prewarm')),
  mount: (name: string) =>
    request<IMountResult>(item(name, 'mount'), { method: 'POST', body: '{}' })
};
