"""What keeps a codespace alive: activity sources, measured, and the idle-culling rules.

A codespace is active when someone or something it runs is working, never because a browser
tab is open. Each *source* is measured where it happens (see ``extensions/activity.py`` for
the server side, README "Operations"):

``kernel``       a kernel executing (``execution_state == "busy"``: activity *now*, with or
                 without a browser), else the kernel's last IOPub activity;
``terminal``     input typed into a lab terminal (not its output);
``vscode``       VS Code in the browser in use: edits, cursor moves, saves, commands run in its
                 terminals, tasks and debug sessions (our code-server extension touches a file);
``ssh``          SSH connections carrying input (``codespace.ssh.listen`` meters the bytes);
``jobs``         a job of the local job backend running (*now*), else the last one's end;
``deployments``  requests to the owner's deployments (the deploy backend's ``lastRequest``);
``files``        a file saved through the lab (the contents API's post-save hook).

Modules: :mod:`~codespace.activity.sources` (the names and how samples combine),
:mod:`~codespace.activity.files` (activity files other processes touch),
:mod:`~codespace.activity.traffic` (when bytes are activity),
:mod:`~codespace.activity.report` (what a server tells the hub),
:mod:`~codespace.activity.cull` (who is culled, and why), :mod:`~codespace.activity.store`
(the hub's records), :mod:`~codespace.activity.metrics` (the Prometheus gauge). Standard
library only, except the gauge (``prometheus_client``).
"""
