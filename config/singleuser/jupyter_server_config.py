# Jupyter server configuration added to every local codespace server (JUPYTER_CONFIG_PATH).
# The spawner sets the CODESPACE_* environment this reads; see extensions/vscode.py.
from pathlib import Path

from extensions.vscode import setup_code_server

c = get_config()  # noqa: F821

_vscode = setup_code_server(icon_path=str(Path(__file__).with_name("vscode.svg")))
if _vscode:
    c.ServerProxy.servers = {"vscode": _vscode}
