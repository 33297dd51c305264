#!/usr/bin/env bash
# Debian packages used by the tests and the local hub. Installs only as root and only
# what is missing; as another user it says what it would need.
# --run: only what the hub itself uses when it runs (`make run`): git, the sandbox, sshd, and
# what install-node.sh needs to build code-server (VS Code in the browser).
set -euo pipefail
RUN_PACKAGES=(git bubblewrap openssh-server openssh-client ripgrep libkrb5-dev libxkbfile-dev
    libsecret-1-dev)
# libkrb5-dev libxkbfile-dev libsecret-1-dev: native modules of code-server (install-node.sh)
# bubblewrap: the codespace sandbox (codespace/local/sandbox.py)
# slurm-wlm slurmrestd munge slurm-client slurm-wlm-jwt-plugin: the private Slurm the Slurm job
# backend's tests and benchmark start on 127.0.0.1 (tests/helpers/slurm.py)
PACKAGES=(git openssh-server openssh-client ripgrep chromium libkrb5-dev libxkbfile-dev libsecret-1-dev
    bubblewrap)
PACKAGES+=(slurm-wlm slurmrestd munge slurm-client slurm-wlm-jwt-plugin)
if [ "${1:-}" = "--run" ]; then
    PACKAGES=("${RUN_PACKAGES[@]}")
fi
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "install-system: not root; please install: ${missing[*]}" >&2
    exit 0
fi
echo "install-system: apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
