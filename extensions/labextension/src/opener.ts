// The lab opens on the repository: the first time a codespace's lab loads after a server start,
// show the file browser when the left sidebar is collapsed (a fresh layout shows it already; a
// layout restored from an earlier codespace of the same name may not) and open what
// GET codespace/api/session lists (CODESPACE_ERRORS.md when the start left one, the files the
// repository names, else its README), Markdown rendered, the first one in front - unless the
// URL names a file (/lab/tree/<path>, e.g. a launch link): that one stays in front. Once per
// server start: a reload keeps the layout the user made.
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

interface ISession {
  /** The server's start time: what "once per start" is keyed on. */
  started: number;
  openFiles: string[];
  errorsFile: string | null;
}

interface IDocumentLike {
  context?: { path: string; model?: { dirty: boolean } };
}

const FILE_BROWSER = 'filebrowser';
const MARKDOWN_PREVIEW = 'Markdown Preview';

async function fetchSession(): Promise<ISession | null> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'codespace/api/session');
  const response = await ServerConnection.makeRequest(url, {}, settings);
  return response.ok ? ((await response.json()) as ISession) : null;
}

/** Open one file (Markdown as its preview); close an unmodified other view of the same file
 * (a `/lab/tree/<file>` URL opens it in the editor). */
async function open(app: JupyterFrontEnd, path: string): Promise<Widget | null> {
  const markdown = /\.md$/i.test(path);
  const args = markdown ? { path, factory: MARKDOWN_PREVIEW } : { path };
  const widget = (await app.commands.execute('docmanager:open', args)) as Widget | undefined;
  if (!widget) {
    return null;
  }
  if (markdown) {
    for (const other of Array.from(app.shell.widgets('main'))) {
      const context = (other as IDocumentLike).context;
      if (other !== widget && context?.path === path && !context.model?.dirty) {
        other.close();
      }
    }
  }
  return widget;
}

function documentWidget(app: JupyterFrontEnd, path: string): Widget | undefined {
  return Array.from(app.shell.widgets('main')).find(
    widget => (widget as IDocumentLike).context?.path === path
  );
}

export async function openOnStart(app: JupyterFrontEnd): Promise<void> {
  let session: ISession | null;
  try {
    session = await fetchSession();
  } catch (error) {
    console.warn('codespace: cannot read the session', error);
    return;
  }
  const key = `@codespace/lab:opened:${PageConfig.getBaseUrl()}`;
  if (!session || window.localStorage.getItem(key) === String(session.started)) {
    return;
  }
  window.localStorage.setItem(key, String(session.started));
  if ((app.shell as { leftCollapsed?: boolean }).leftCollapsed) {
    app.shell.activateById(FILE_BROWSER);
  }
  const opened: Widget[] = [];
  for (const path of session.openFiles) {
    try {
      const widget = await open(app, path);
      if (widget) {
        opened.push(widget);
      }
    } catch (error) {
      console.warn(`codespace: cannot open ${path}`, error);
    }
  }
  const asked = PageConfig.getOption('treePath');
  const front = (asked && documentWidget(app, asked)) || opened[0];
  if (front) {
    app.shell.activateById(front.id);
  }
}

export const openerPlugin: JupyterFrontEndPlugin<void> = {
  id: '@codespace/lab:opener',
  description: 'Opens the codespace on its repository: the file browser, then its files.',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    void app.restored.then(() => openOnStart(app));
  }
};
