"""SSH through the hub against ssh straight to the same sshd: connection time, scp throughput.

One hub (tests/helpers/hub.py) with a codespace; the user's key added at the hub,
``codespace login`` and ``codespace ssh-config`` as a user would. In the same run:

1. **connect**: median of ``BENCH_SSH_CONNECTS`` (default 10) ``ssh HOST true`` through the hub
   (OpenSSH -> ``codespace ssh-proxy`` websocket -> the hub's proxy -> the codespace's
   jupyter-server-proxy -> ``sshd -i``) against the same sshd config run by hand on a TCP port
   as the codespace's account, reached directly (``ssh -p PORT``);
2. **scp**: a ``BENCH_SSH_MB`` (default 64) MB file up to the codespace both ways (MB/s).

Prints the times, the throughputs and the ratios. Needs root (the codespace's account runs
the direct sshd), OpenSSH and configurable-http-proxy (``make install``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers.hub import running_hub
from tests.helpers.repos import fixture_repo

CONNECTS = int(os.environ.get("BENCH_SSH_CONNECTS", "10"))
MEGABYTES = int(os.environ.get("BENCH_SSH_MB", "64"))
USER, SERVER, ALIAS = "benji", "dev", "codespace-dev"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started


def main() -> int:
    if os.geteuid() != 0 or not shutil.which("ssh"):
        print("bench_ssh: needs root and OpenSSH; skipped")
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-ssh-"))
    home = Path(tempfile.mkdtemp(prefix="bench-ssh-home-"))  # not under the hub's (shared) tree
    key = home / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    config = home / ".ssh" / "config"
    common = ["-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
    common += ["-o", f"UserKnownHostsFile={home / 'known_hosts'}"]
    payload = work / "payload.bin"
    payload.write_bytes(os.urandom(MEGABYTES << 20))
    with running_hub(work / "hub") as hub:
        assert hub.spawn(USER, SERVER, {"repo": str(fixture_repo(work))})[-1].get("ready")
        hub.ensure_user(USER)
        token = hub.api("POST", f"/users/{USER}/tokens", json={"note": "bench"}).json()["token"]
        cli = [sys.executable, "-m", "codespace.cli"]
        login = [*cli, "login", "--hub", hub.url.rstrip("/"), "--token-stdin"]
        subprocess.run(
            [*login, "--add-key", f"{key}.pub"], input=token, text=True, env=env, check=True
        )
        subprocess.run([*cli, "ssh-config", "--config", str(config)], env=env, check=True)
        via_hub = ["ssh", "-F", str(config), *common, ALIAS]
        first = subprocess.run([*via_hub, "true"], env=env, capture_output=True, text=True)
        if first.returncode != 0:  # the first connection also starts the codespace's sshd
            raise SystemExit(f"bench_ssh: ssh through the hub failed:\n{first.stderr}")

        account = f"cs-{USER}"
        port = free_port()
        sshd_config = hub.data_dir / "servers" / USER / SERVER / "ssh" / "sshd_config"
        uid = pwd.getpwnam(account).pw_uid
        direct_sshd = subprocess.Popen(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--init-groups", "--",
             "/usr/sbin/sshd", "-D", "-e", "-p", str(port), "-f", str(sshd_config)],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        direct = ["ssh", "-F", "/dev/null", *common, "-p", str(port), f"{account}@127.0.0.1"]
        direct += ["-o", "StrictHostKeyChecking=accept-new"]
        try:
            time.sleep(1)
            hub_times = [timed([*via_hub, "true"], env) for _ in range(CONNECTS)]
            direct_times = [timed([*direct, "true"], env) for _ in range(CONNECTS)]
            hub_scp = timed(
                ["scp", "-F", str(config), *common, "-q", str(payload), f"{ALIAS}:p.bin"], env
            )
            direct_scp = timed(
                ["scp", "-F", "/dev/null", *common, "-o", "StrictHostKeyChecking=accept-new",
                 "-P", str(port), "-q", str(payload), f"{account}@127.0.0.1:p2.bin"], env
            )  # fmt: skip
        finally:
            direct_sshd.terminate()
            direct_sshd.wait(10)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    through, straight = statistics.median(hub_times), statistics.median(direct_times)
    print(f"ssh connect + 'true', median of {CONNECTS}: through the hub {through:.2f} s, "
          f"direct {straight:.2f} s: {through / straight:.2f}x")  # fmt: skip
    hub_rate, direct_rate = MEGABYTES / hub_scp, MEGABYTES / direct_scp
    print(f"scp {MEGABYTES} MB up: through the hub {hub_rate:.1f} MB/s, "
          f"direct {direct_rate:.1f} MB/s: {hub_rate / direct_rate:.2f}x of direct")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
