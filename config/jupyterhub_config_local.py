# JupyterHub configuration for the embedded local mode (what `codespace-hub` / `make run` use).
# Settings come from CODESPACE_HUB_* environment variables (set by `codespace-hub`):
#   CODESPACE_HUB_DATA_DIR   database, workspaces, env cache, secrets, logs (default ./data)
#   CODESPACE_HUB_IP/PORT    where the proxy listens (default 127.0.0.1:8000); the proxy's
#                            API and the hub use the next two ports on 127.0.0.1
#                            (CODESPACE_HUB_PROXY_API_PORT, CODESPACE_HUB_HUB_PORT)
#                            the deploy service on a free port (CODESPACE_HUB_DEPLOY_PORT)
#   CODESPACE_HUB_ADMIN_USERS comma-separated admin user names (default admin)
#   CODESPACE_HUB_ADMIN_TOKEN optional: an admin service token for automation
#   CODESPACE_HUB_METRICS_TOKEN optional: a read:metrics service token for Prometheus
#   CODESPACE_HUB_REPO_ROOTS  directories (os.pathsep-separated) for local repositories
#   CODESPACE_HUB_SANDBOX    0 turns the bubblewrap sandbox off (default 1)
#   CODESPACE_HUB_DATASET_CATALOG optional: the dataset catalog (YAML); default
#                            <data dir>/datasets.yaml when that file exists
#   CODESPACE_HUB_IDLE_TIMEOUT idle culling: a codespace's idle timeout when its .codespace
#                            sets none (default 1h; 0: those are not culled), e.g. 45m
#   CODESPACE_HUB_MAX_IDLE_TIMEOUT the longest lifetime.idleTimeout honoured (default 0: any)
#   CODESPACE_HUB_MAX_AGE    stop every codespace this long after its start (default 0: never)
#   CODESPACE_HUB_CULL=0     no culler
#   CODESPACE_HUB_LOGIN      optional: login settings (JSON, hub/identity.py) for a Git host /
#                            OpenID Connect login; default: the shared password
#   CODESPACE_HUB_POLICY     optional: the group policy file (YAML, codespace/policy)
import os
import socket
import sys
from pathlib import Path

from codespace.activity.cull import parse_duration
from codespace.local.isolation import host_env
from hub.app import crypt_key, secret_file
from hub.cull import configure_culler
from hub.home import configure_home
from hub.identity import LoginSettings, configure_identity
from spawner.metrics import watch_gpus

c = get_config()  # noqa: F821

repo = Path(__file__).resolve().parent.parent
data_dir = Path(os.environ.get("CODESPACE_HUB_DATA_DIR", "data")).resolve()
secrets_dir = data_dir / "secrets"
secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)


def _secret(name, length):
    return secret_file(secrets_dir / name, length)


# -- the hub and its proxy, on 127.0.0.1 unless told otherwise ---------------------------
c.JupyterHub.ip = os.environ.get("CODESPACE_HUB_IP", "127.0.0.1")
c.JupyterHub.port = int(os.environ.get("CODESPACE_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.db_url = f"sqlite:///{data_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(secrets_dir / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(data_dir / "jupyterhub.pid")
c.ConfigurableHTTPProxy.auth_token = _secret("proxy-token", 32)
# The proxy's API and the hub listen on the next two ports (127.0.0.1 only).
api_port = int(os.environ.get("CODESPACE_HUB_PROXY_API_PORT", c.JupyterHub.port + 1))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{api_port}"
c.JupyterHub.hub_port = int(os.environ.get("CODESPACE_HUB_HUB_PORT", c.JupyterHub.port + 2))
chp = repo / ".tools" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
if chp.exists():
    c.ConfigurableHTTPProxy.command = [str(chp)]
c.ConfigurableHTTPProxy.debug = False

# Restarting the hub leaves running codespaces running; the new hub finds them by pid.
c.JupyterHub.cleanup_servers = False
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 10
c.JupyterHub.default_url = "/hub/home"
# Show the spawn progress page at once (builds take a while; the page shows each step).
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}

# -- login: a generated shared password (0600 in the data dir), admins separately ---------
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = _secret("user-password", 12)
c.SharedPasswordAuthenticator.admin_password = _secret("admin-password", 32)
c.Authenticator.admin_users = {
    name.strip()
    for name in os.environ.get("CODESPACE_HUB_ADMIN_USERS", "admin").split(",")
    if name.strip()
}
c.Authenticator.allow_all = True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- deployments: the hub's deploy service (local model endpoints, hub/deploy/app.py) ------
# It listens on a free port of 127.0.0.1 (or CODESPACE_HUB_DEPLOY_PORT); the proxy serves it at
# /services/codespace-deploy/. Every user, and every codespace server's token, may call it;
# the service itself lets a user see and call only their own deployments.
DEPLOY = "codespace-deploy"
deploy_port = int(os.environ.get("CODESPACE_HUB_DEPLOY_PORT") or _free_port())
public_host = "127.0.0.1" if c.JupyterHub.ip in ("", "0.0.0.0") else c.JupyterHub.ip  # noqa: S104
c.JupyterHub.services = [
    {
        "name": DEPLOY,
        "url": f"http://127.0.0.1:{deploy_port}",
        "command": [sys.executable, "-m", "hub.deploy.app"],
        "cwd": str(data_dir),
        "environment": {
            **host_env(os.environ),  # package indexes and CA bundles for serving environments
            "CODESPACE_HUB_DATA_DIR": str(data_dir),
            "CODESPACE_HUB_SANDBOX": os.environ.get("CODESPACE_HUB_SANDBOX", "1"),
            "CODESPACE_HUB_POLICY": os.environ.get("CODESPACE_HUB_POLICY", ""),
            "CODESPACE_DEPLOY_PUBLIC_URL": (
                f"http://{public_host}:{c.JupyterHub.port}/services/{DEPLOY}/"
            ),
        },
        "display": False,
    }
]
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", f"access:services!service={DEPLOY}"]},
    {
        "name": "server",
        "scopes": [
            "users:activity!user",
            "access:servers!server",
            f"access:services!service={DEPLOY}",
            "read:users:groups!user",  # the deploy service applies the group policy
        ],
    },
]
# codespaces reach it through the proxy (a port that stays the same when the hub restarts)
c.Spawner.environment = {
    "CODESPACE_DEPLOY_URL": f"http://{public_host}:{c.JupyterHub.port}/services/{DEPLOY}/"
}

# -- automation: an admin service token, when one is given --------------------------------
admin_token = os.environ.get("CODESPACE_HUB_ADMIN_TOKEN")
if admin_token:
    c.JupyterHub.services.append({"name": "codespace-admin", "api_token": admin_token})
    c.JupyterHub.load_roles.append(
        {
            "name": "codespace-admin",
            "description": "manage users and their codespaces (automation)",
            "scopes": ["admin:users", "admin:servers", "access:servers", "read:hub"],
            "services": ["codespace-admin"],
        }
    )

# -- login with the Git host (hub/identity.py; README "Identity and policy") ---------------
# `codespace-hub --login gitea|gitlab|github|oidc ...` stored the settings; tokens are kept in
# auth_state, encrypted with a key generated in the secrets directory.
login_file = os.environ.get("CODESPACE_HUB_LOGIN")
if login_file:
    login = LoginSettings.model_validate_json(Path(login_file).read_text())
    configure_identity(
        c,
        login,
        callback_url=f"http://{public_host}:{c.JupyterHub.port}/hub/oauth_callback",
        crypt_key=crypt_key(secrets_dir / "crypt-key"),
    )
    if "CODESPACE_HUB_ADMIN_USERS" not in os.environ:  # admins: the provider's admin groups
        c.Authenticator.admin_users = set()

# -- metrics: /hub/metrics (JupyterHub's and ours, README "Operations") -------------------
# It needs a token with the read:metrics scope, as do the deploy service's metrics and each
# codespace's /user/<name>/<server>/codespace/api/metrics: CODESPACE_HUB_METRICS_TOKEN
# registers a service with that scope only, for Prometheus.
metrics_token = os.environ.get("CODESPACE_HUB_METRICS_TOKEN")
if metrics_token:
    c.JupyterHub.services.append({"name": "codespace-metrics", "api_token": metrics_token})
    c.JupyterHub.load_roles.append(
        {
            "name": "codespace-metrics",
            "description": "read the hub's, the deploy service's and the codespaces' metrics",
            "scopes": ["read:metrics"],
            "services": ["codespace-metrics"],
        }
    )
watch_gpus(data_dir)  # codespace_gpus_granted counts running codespaces' GPUs from the start

# -- codespaces ---------------------------------------------------------------------------
c.JupyterHub.spawner_class = "spawner.local.LocalCodespaceSpawner"
c.LocalCodespaceSpawner.data_dir = str(data_dir)
if os.environ.get("CODESPACE_HUB_REPO_ROOTS"):
    c.LocalCodespaceSpawner.allowed_repo_roots = os.environ["CODESPACE_HUB_REPO_ROOTS"].split(
        os.pathsep
    )
c.LocalCodespaceSpawner.sandbox = os.environ.get("CODESPACE_HUB_SANDBOX", "1") != "0"
# the group policy (codespace/policy; README "Identity and policy"): profiles, quotas,
# datasets and backends per group, enforced by the spawner, the codespaces and the services
c.LocalCodespaceSpawner.policy_file = os.environ.get("CODESPACE_HUB_POLICY", "")
if os.environ.get("CODESPACE_HUB_DATASET_CATALOG"):
    c.LocalCodespaceSpawner.dataset_catalog = os.environ["CODESPACE_HUB_DATASET_CATALOG"]
c.Spawner.debug = False

# -- idle culling: the codespace-culler service (hub/cull; README "Operations") -------------
# Stops (never deletes) a codespace idle past its lifetime.idleTimeout (else the default
# here), or running past the maximum age; the home page says why and when. Idle means no
# measured activity (extensions/activity.py: kernels executing, terminal input, VS Code use,
# SSH input, running jobs, deployment requests, saves), never an open tab.
configure_culler(
    c,
    enabled=os.environ.get("CODESPACE_HUB_CULL", "1") != "0",
    timeout=parse_duration(os.environ.get("CODESPACE_HUB_IDLE_TIMEOUT") or "1h"),
    max_timeout=parse_duration(os.environ.get("CODESPACE_HUB_MAX_IDLE_TIMEOUT") or 0),
    max_age=parse_duration(os.environ.get("CODESPACE_HUB_MAX_AGE") or 0),
)

# -- the codespaces home page, launch links, refused starts --------------------------------
# hub/templates/home.html lists the codespaces (admins: everyone's) with a New-codespace form;
# /hub/codespaces/new?repo=...&ref=...&open=... is the launch link; a start the spawner
# refuses (HTTP 400) leaves no named server behind, so refusals never count against the
# limit above (hub/refusals.py). Call it last: it keeps the settings made above.
configure_home(c)
