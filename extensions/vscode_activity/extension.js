// Codespace activity: touch $CODESPACE_ACTIVITY_DIR/vscode when VS Code is really used.
//
// In use: a document edited or saved, the cursor or selection moved, another editor, terminal
// or notebook made active, the window focused, a command run in a terminal (shell
// integration), and for as long as a task, a terminal command or a debug session runs. An
// open tab by itself is not use (code-server's own heartbeat file is: it is rewritten every
// minute while a browser is connected). The server reads the file's modification time
// (extensions/activity.py); the file is written at most every THROTTLE_MS.
"use strict";

const fs = require("fs");
const path = require("path");
const vscode = require("vscode");

const THROTTLE_MS = 15000;
const BUSY_CHECK_MS = 30000;
const USER_SCHEMES = new Set(["file", "untitled", "vscode-notebook-cell", "vscode-remote"]);

function activate(context) {
  const dir = process.env.CODESPACE_ACTIVITY_DIR;
  if (!dir) {
    return;
  }
  const file = path.join(dir, "vscode");
  let last = 0;
  const touch = () => {
    const now = Date.now();
    if (now - last < THROTTLE_MS) {
      return;
    }
    last = now;
    try {
      fs.mkdirSync(dir, { recursive: true });
      const at = new Date();
      try {
        fs.utimesSync(file, at, at);
      } catch (missing) {
        fs.writeFileSync(file, "");
      }
    } catch (error) {
      // a codespace without a writable activity directory: nothing to record
    }
  };
  const busy = new Set(); // running tasks, terminal commands, debug sessions
  const listen = (event, handler) => {
    if (typeof event === "function") {
      context.subscriptions.push(event(handler));
    }
  };
  const start = (key) => {
    busy.add(key);
    touch();
  };
  const end = (key) => {
    busy.delete(key);
    touch();
  };

  listen(vscode.workspace.onDidChangeTextDocument, (e) => {
    if (e.contentChanges.length && USER_SCHEMES.has(e.document.uri.scheme)) {
      touch();
    }
  });
  listen(vscode.workspace.onDidSaveTextDocument, touch);
  listen(vscode.window.onDidChangeTextEditorSelection, (e) => {
    if (e.kind !== undefined) {
      touch(); // keyboard, mouse or command; not a change made by an extension
    }
  });
  listen(vscode.window.onDidChangeActiveTextEditor, touch);
  listen(vscode.window.onDidChangeActiveNotebookEditor, touch);
  listen(vscode.window.onDidChangeActiveTerminal, touch);
  listen(vscode.window.onDidChangeWindowState, (state) => {
    if (state.focused) {
      touch();
    }
  });
  listen(vscode.window.onDidStartTerminalShellExecution, (e) => start(e.execution));
  listen(vscode.window.onDidEndTerminalShellExecution, (e) => end(e.execution));
  listen(vscode.tasks.onDidStartTaskProcess, (e) => start(e.execution));
  listen(vscode.tasks.onDidEndTaskProcess, (e) => end(e.execution));
  listen(vscode.debug.onDidStartDebugSession, start);
  listen(vscode.debug.onDidTerminateDebugSession, end);
  listen(vscode.window.onDidCloseTerminal, () => touch());

  const timer = setInterval(() => {
    if (busy.size) {
      last = 0; // running work is activity now, however recent the last touch
      touch();
    }
  }, BUSY_CHECK_MS);
  context.subscriptions.push({ dispose: () => clearInterval(timer) });
  touch(); // VS Code was just opened
}

function deactivate() {}

module.exports = { activate, deactivate };
