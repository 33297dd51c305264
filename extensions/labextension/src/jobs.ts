// The Jobs sidebar: the user's jobs (name, backend, state with its reason, elapsed / time limit),
// refreshed while any is queued or running and the panel is shown; a selected job's detail with
// a live log tail, Cancel, Resubmit and Open output (the executed notebook).
import { Dialog, showDialog } from '@jupyterlab/apputils';

import { apiRequest } from './api';
import { el } from './panel';
import { ListSidebar, stateBadge, Tone } from './sidebar';

// ---- The REST API (extensions/jobs_handlers.py) --------------------------------------------

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface IJobResources {
  cpu?: number | null;
  memory?: string | null;
  gpu?: unknown;
  timeLimit?: string | null;
}

export interface IJobSpec {
  name: string;
  script?: string | null;
  notebook?: string | null;
  command?: string[] | null;
  parameters?: Record<string, unknown>;
  args?: string[];
  backend?: string | null;
  resources?: IJobResources;
  [key: string]: unknown;
}

export interface IJob {
  id: string;
  name: string;
  owner: string;
  backend: string;
  backendId: string | null;
  submission: string;
  state: JobState;
  reason: string;
  submitted: string;
  started: string | null;
  finished: string | null;
  exitCode: number | null;
  logPath: string | null;
  /** The executed notebook, relative to the workspace (the file browser's root). */
  outputNotebook: string | null;
  spec: IJobSpec;
}

export interface IJobBackend {
  name: string;
  default?: boolean;
  /** Why the backend cannot take jobs now (it stays listed). */
  error?: string;
}

const request = <T>(path: string, init: RequestInit = {}, query: Record<string, string> = {}) =>
  apiRequest<T>('jobs', path, init, query);

const job = (id: string, ...rest: string[]): string =>
  [encodeURIComponent(id), ...rest].join('/');

export const jobsApi = {
  list: () => request<{ backends: IJobBackend[]; jobs: IJob[] }>(''),
  get: (id: string) => request<IJob>(job(id)),
  logs: (id: string, tail = 200) =>
    request<{ text: string }>(job(id, 'logs'), {}, { tail: String(tail) }),
  submit: (jobs: IJobSpec[], idempotencyKey: string) =>
    request<{ jobs: IJob[] }>('', {
      method: 'POST',
      body: JSON.stringify({ jobs, idempotencyKey })
    }),
  cancel: (id: string) => request<IJob>(job(id, 'cancel'), { method: 'POST', body: '{}' }),
  resubmit: (id: string) =>
    request<{ jobs: IJob[] }>(job(id, 'resubmit'), { method: 'POST', body: '{}' })
};

// ---- Formatting -------------------------------------------------------------------------------

const ACTIVE: JobState[] = ['queued', 'running'];
// queued keeps the plain badge: it waits for the engine
const TONES: Partial<Record<JobState, Tone>> = {
  running: 'busy',
  succeeded: 'good',
  failed: 'bad',
  cancelled: 'warn'
};
export const isActive = (j: IJob): boolean => ACTIVE.includes(j.state);

/** Refresh the list this often while a job is queued or running (and the panel is shown). */
const POLL_MS = 3000;
const LOG_TAIL = 200;

/** A time limit in seconds: '30m', '2h', '1d', '90s', 'HH:MM:SS', 'D-HH:MM:SS' (as the spec). */
export function limitSeconds(limit: string): number | null {
  const match = /^(?:(\d+)-)?(\d{1,2}):(\d{2}):(\d{2})$|^(\d+)([smhd])$/.exec(limit.trim());
  if (!match) {
    return null;
  }
  if (match[5]) {
    return Number(match[5]) * { s: 1, m: 60, h: 3600, d: 86400 }[match[6] as 's' | 'm' | 'h' | 'd'];
  }
  const [days, hours, minutes, secs] = [1, 2, 3, 4].map(i => Number(match[i] ?? 0));
  return ((days * 24 + hours) * 60 + minutes) * 60 + secs;
}

/** A duration, short: 42s, 3m 05s, 1h 02m, 2d 3h. */
export function duration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 60) {
    return `${s}s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  }
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

const time = (iso: string | null): number | null => (iso ? Date.parse(iso) : null);

/** How long the job has run (or ran); null before it starts. */
function elapsedSeconds(j: IJob, now: number): number | null {
  const started = time(j.started);
  if (started === null) {
    return null;
  }
  return ((time(j.finished) ?? now) - started) / 1000;
}

/** "3m 05s / 30m" (elapsed / time limit), "– / 30m" before the start. */
function timing(j: IJob, now: number): [string, string] {
  const elapsed = elapsedSeconds(j, now);
  const limit = j.spec.resources?.timeLimit ?? null;
  const shown = elapsed === null ? '–' : duration(elapsed);
  const text = limit ? `${shown} / ${limit}` : shown;
  const title =
    (elapsed === null ? 'Not started yet' : `Ran for ${duration(elapsed)}`) +
    (limit ? `; time limit ${limit}` : '; no time limit');
  return [text, title];
}

function when(iso: string | null): string {
  if (!iso) {
    return '';
  }
  const date = new Date(iso);
  return isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** What the job runs: the notebook, the script (with its arguments) or the command line. */
export function program(spec: IJobSpec): string {
  if (spec.notebook) {
    return spec.notebook;
  }
  if (spec.script) {
    return [spec.script, ...(spec.args ?? [])].join(' ');
  }
  return (spec.command ?? []).join(' ');
}

function resources(spec: IJobSpec): string {
  const r = spec.resources ?? {};
  return [
    r.cpu ? `${r.cpu} CPU` : '',
    r.memory ? `${r.memory} memory` : '',
    r.gpu ? `GPU ${JSON.stringify(r.gpu)}` : '',
    r.timeLimit ? `${r.timeLimit} limit` : ''
  ]
    .filter(Boolean)
    .join(', ');
}

/** The state as shown: a badge with the reason in its tooltip. */
// ---- The panel ------------------------------------------------------------------------------

export interface IJobsActions {
  /** Open a workspace file (the executed notebook, a log) in the main area. */
  openFile(path: string): Promise<void>;
}

export class JobsPanel extends ListSidebar<IJob, IJobBackend> {
  private selected: string | null = null;
  private detail: HTMLDivElement;
  private clockTimer: number | null = null;

  constructor(private actions: IJobsActions) {
    super('jp-CodespaceJobs', 'Jobs', 'jobs', POLL_MS);
    this.detail = el('div', { className: 'jp-CodespaceJobs-detail' });
    this.node.append(this.detail);
  }

  /** The backends the server offers (the submit dialog's choices), as last listed. */
  get knownBackends(): IJobBackend[] {
    return this.backends;
  }

  protected async load(): Promise<{ items: IJob[]; backends: IJobBackend[] }> {
    const answer = await jobsApi.list();
    return { items: answer.jobs, backends: answer.backends };
  }

  protected isChanging(j: IJob): boolean {
    return isActive(j);
  }

  /** Newly submitted jobs: list them and show the first one's detail. */
  async showSubmitted(jobs: IJob[]): Promise<void> {
    const known = new Set(this.items.map(j => j.id));
    this.items = [...jobs.filter(j => !known.has(j.id)), ...this.items];
    this.loaded = true;
    if (jobs.length) {
      this.selected = jobs[0].id;
    }
    this.render();
    await this.refresh();
  }

  /** The selected job's detail and log, after each refresh of the list. */
  protected async afterRefresh(): Promise<void> {
    const chosen = this.selected === null ? undefined : this.current(this.selected);
    if (chosen) {
      this.renderDetail(chosen);
      await this.refreshLog(chosen);
    } else if (this.selected !== null && !this.listError) {
      this.selected = null; // gone from the list
      this.detail.replaceChildren();
    }
  }

  private current(id: string): IJob | undefined {
    return this.items.find(j => j.id === id);
  }

  /** While a job is queued or running (and the list is polled), tick the clocks each second. */
  protected onWatching(watching: boolean): void {
    if (this.clockTimer !== null) {
      window.clearInterval(this.clockTimer);
      this.clockTimer = null;
    }
    if (watching) {
      this.clockTimer = window.setInterval(() => this.tickClocks(), 1000);
    }
  }

  private tickClocks(): void {
    const now = Date.now();
    const cells = this.list.querySelectorAll<HTMLElement>(
      '.jp-CodespaceJobs-item[data-active] .jp-CodespaceJobs-time'
    );
    for (const cell of Array.from(cells)) {
      const id = cell.closest<HTMLElement>('.jp-CodespaceJobs-item')?.dataset.id;
      const j = id ? this.current(id) : undefined;
      if (j) {
        [cell.textContent, cell.title] = timing(j, now);
      }
    }
  }

  protected render(): void {
    const active = this.items.filter(isActive).length;
    const listed = this.renderFrame(
      this.items.length ? `${this.items.length}${active ? `, ${active} active` : ''}` : '',
      `${this.items.length} jobs, ${active} queued or running`,
      {
        loading: 'Loading jobs…',
        failed: 'The jobs service did not answer. Refresh to try again.',
        none:
          'No jobs yet. Right-click a notebook or a Python file in the file browser and ' +
          'choose “Submit as job…”, or use the notebook’s toolbar.'
      }
    );
    if (!listed) {
      return;
    }
    const now = Date.now();
    this.list.replaceChildren(
      ...this.items.map(j => {
        const [timeText, timeTitle] = timing(j, now);
        const item = el('div', { className: 'jp-CodespaceJobs-item', tabIndex: 0 }, [
          el('div', { className: 'jp-CodespaceJobs-main' }, [
            el('span', { className: 'jp-CodespaceJobs-name', textContent: j.name, title: j.name }),
            el('span', {
              className: 'jp-CodespaceJobs-sub',
              textContent: `${j.backend} · ${program(j.spec)}`,
              title: `Backend ${j.backend}: ${program(j.spec)}`
            })
          ]),
          el('div', { className: 'jp-CodespaceJobs-side' }, [
            stateBadge('jp-CodespaceJobs', j.state, j.reason, TONES),
            el('span', {
              className: 'jp-CodespaceJobs-time',
              textContent: timeText,
              title: timeTitle
            })
          ])
        ]);
        item.setAttribute('role', 'listitem');
        item.dataset.id = j.id;
        item.dataset.name = j.name;
        item.dataset.state = j.state;
        if (isActive(j)) {
          item.dataset.active = '';
        }
        item.classList.toggle('jp-mod-selected', j.id === this.selected);
        item.addEventListener('click', () => void this.select(j.id));
        item.addEventListener('keydown', event => {
          if (event.key === 'Enter' || event.key === ' ') {
            event.preventDefault();
            void this.select(j.id);
          }
        });
        return item;
      })
    );
  }

  async select(id: string): Promise<void> {
    this.selected = id;
    this.render();
    const known = this.current(id);
    if (known) {
      this.renderDetail(known);
    }
    try {
      const fresh = await jobsApi.get(id);
      this.items = this.items.map(j => (j.id === id ? fresh : j));
      if (this.selected !== id) {
        return;
      }
      this.render();
      this.renderDetail(fresh);
      await this.refreshLog(fresh);
    } catch (error) {
      this.say(`${known?.name ?? id}: ${(error as Error).message}`, true);
    }
  }

  private renderDetail(j: IJob): void {
    const fresh = this.detail.dataset.id !== j.id;
    const button = (label: string, action: () => Promise<void>, enabled = true) => {
      const b = el('button', {
        className: 'jp-mod-styled jp-CodespaceJobs-action',
        textContent: label,
        disabled: !enabled
      });
      b.dataset.action = label;
      b.addEventListener('click', () => void action());
      return b;
    };
    const facts: [string, string][] = [
      ['State', j.state],
      ['Reason', j.reason],
      ['Runs', program(j.spec)],
      [
        'Parameters',
        j.spec.parameters && Object.keys(j.spec.parameters).length
          ? JSON.stringify(j.spec.parameters)
          : ''
      ],
      ['Backend', j.backend + (j.backendId ? ` (${j.backendId})` : '')],
      ['Resources', resources(j.spec)],
      ['Time', timing(j, Date.now())[0]],
      ['Submitted', when(j.submitted)],
      ['Started', when(j.started)],
      ['Finished', when(j.finished)],
      ['Exit code', j.exitCode === null ? '' : String(j.exitCode)],
      ['Output', j.outputNotebook ?? ''],
      ['Log', j.logPath ?? ''],
      ['Id', j.id]
    ];
    const heading = el('h3', {}, [
      el('span', { textContent: j.name }),
      stateBadge('jp-CodespaceJobs', j.state, j.reason, TONES)
    ]);
    const factsBox = el('dl', {}, facts
      .filter(([, v]) => v)
      .flatMap(([k, v]) => {
        const dd = el('dd', { textContent: v });
        dd.dataset.fact = k;
        return [el('dt', { textContent: k }), dd];
      }));
    const actions = el('div', { className: 'jp-CodespaceJobs-actions' }, [
      button('Cancel', () => this.cancel(j), isActive(j)),
      button('Resubmit', () => this.resubmit(j)),
      button('Open output', () => this.openFile(j.outputNotebook!), !!j.outputNotebook),
      button('Open log', () => this.openFile(j.logPath!), !!j.logPath)
    ]);
    if (fresh) {
      const log = el('pre', { className: 'jp-CodespaceJobs-log' });
      log.setAttribute('aria-label', 'Log');
      this.detail.dataset.id = j.id;
      this.detail.replaceChildren(
        heading,
        actions,
        factsBox,
        el('h4', {
          className: 'jp-CodespaceJobs-logTitle',
          textContent: `Log (last ${LOG_TAIL} lines)`
        }),
        log
      );
    } else {
      // Keep the log (and its scroll position) as it is; replace the rest.
      this.detail.querySelector('h3')?.replaceWith(heading);
      this.detail.querySelector('.jp-CodespaceJobs-actions')?.replaceWith(actions);
      this.detail.querySelector('dl')?.replaceWith(factsBox);
    }
    this.detail.dataset.state = j.state;
  }

  /** The log's tail into the detail; follows the end unless the user scrolled up. A finished
   * job's log is read once. */
  private async refreshLog(j: IJob): Promise<void> {
    const shownLog = this.detail.querySelector<HTMLPreElement>('.jp-CodespaceJobs-log');
    if (shownLog?.dataset.final === j.id) {
      return;
    }
    let text: string;
    let read = true;
    try {
      text = (await jobsApi.logs(j.id, LOG_TAIL)).text;
    } catch (error) {
      text = `(no log yet: ${(error as Error).message})`;
      read = false;
    }
    const log = this.detail.querySelector<HTMLPreElement>('.jp-CodespaceJobs-log');
    if (!log || this.detail.dataset.id !== j.id) {
      return;
    }
    const following = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    const shown = text || (isActive(j) ? '(no output yet)' : '(no output)');
    if (read && !isActive(j)) {
      log.dataset.final = j.id;
    }
    if (log.textContent !== shown) {
      log.textContent = shown;
      if (following) {
        log.scrollTop = log.scrollHeight;
      }
    }
  }

  private async cancel(j: IJob): Promise<void> {
    const answer = await showDialog({
      title: `Cancel job ${j.name}?`,
      body: `It is ${j.state}; cancelling stops it and keeps its log.`,
      buttons: [
        Dialog.cancelButton({ label: 'Keep running' }),
        Dialog.warnButton({ label: 'Cancel job' })
      ]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      const fresh = await jobsApi.cancel(j.id);
      this.items = this.items.map(x => (x.id === fresh.id ? fresh : x));
      this.say(`Cancelling ${j.name}`);
    } catch (error) {
      this.say(`Cancel failed: ${(error as Error).message}`, true);
    }
    await this.refresh();
  }

  private async resubmit(j: IJob): Promise<void> {
    try {
      const { jobs } = await jobsApi.resubmit(j.id);
      await this.showSubmitted(jobs);
      this.say(`Resubmitted ${j.name}`);
    } catch (error) {
      this.say(`Resubmit failed: ${(error as Error).message}`, true);
    }
  }

  private async openFile(path: string): Promise<void> {
    try {
      await this.actions.openFile(path);
    } catch (error) {
      this.say(`Cannot open ${path}: ${(error as Error).message}`, true);
    }
  }
}
