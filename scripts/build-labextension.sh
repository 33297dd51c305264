#!/usr/bin/env bash
# Build the JupyterLab extension (extensions/labextension) and install it, with the server
# extension's enable file, into the venv's Jupyter paths. Run by `make install-extension`.
#
# Idempotent: skipped when a hash of the sources matches the one stored with the built
# output. Needs Node 20 + npm (the npm cache is fine; no network when it is warm).
# Everything it writes in the repository (node_modules/, lib/, static/) is git-ignored and the
# lockfile is only read (`npm ci`), so a fresh clone stays clean (tests/unit/test_packaging.py).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
EXT=$ROOT/extensions/labextension
OUT=$EXT/static
NAME=@codespace/lab
export npm_config_yes=true npm_config_fund=false npm_config_audit=false
export PATH="$VENV/bin:$PATH"

sources_hash() {
    (cd "$EXT" && find package.json package-lock.json tsconfig.json src style -type f -print0 \
        | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

HASH=$(sources_hash)
if [ -f "$OUT/.sources-hash" ] && [ "$(cat "$OUT/.sources-hash")" = "$HASH" ] \
    && [ -f "$OUT/package.json" ]; then
    echo "build-labextension: $NAME is up to date"
else
    command -v npm >/dev/null || { echo "build-labextension: npm is required" >&2; exit 1; }
    echo "build-labextension: building $NAME"
    (
        cd "$EXT"
        # `npm ci` installs exactly what the tracked package-lock.json pins and never rewrites
        # it (`npm install` would, so a build would leave a fresh clone modified). Reinstall
        # only when the lockfile changed since the last install; --prefer-offline uses the
        # warm npm cache without asking the registry.
        LOCK_HASH=$(sha256sum package-lock.json | cut -d' ' -f1)
        if [ "$(cat node_modules/.codespace-lock-hash 2>/dev/null)" != "$LOCK_HASH" ]; then
            npm ci --prefer-offline --no-audit --no-fund --loglevel=error
            echo "$LOCK_HASH" > node_modules/.codespace-lock-hash
        fi
        npx tsc
        if [ -x "$VENV/bin/jupyter-builder" ]; then
            "$VENV/bin/jupyter-builder" build .
        else
            "$VENV/bin/jupyter" labextension build .
        fi
    )
    echo "$HASH" > "$OUT/.sources-hash"
fi

# Install into the venv's Jupyter paths: an editable install gets no setup.cfg data_files,
# so link the built extension (like `jupyter labextension develop`) and enable the server
# extension with a config file the single-user servers of both modes read.
LABEXT_DIR="$VENV/share/jupyter/labextensions/$NAME"
mkdir -p "$(dirname "$LABEXT_DIR")"
if [ "$(readlink "$LABEXT_DIR" 2>/dev/null)" != "$OUT" ]; then
    rm -rf "$LABEXT_DIR"
    ln -s "$OUT" "$LABEXT_DIR"
fi
CONFIG_DIR="$VENV/etc/jupyter/jupyter_server_config.d"
mkdir -p "$CONFIG_DIR"
cp "$ROOT/extensions/jupyter-config/codespace.json" "$CONFIG_DIR/codespace.json"

# Lab defaults for codespaces: no "news" or update pop-ups (servers here have no internet and
# users did not ask for them). Users can still change these in Settings.
SETTINGS_DIR="$VENV/share/jupyter/lab/settings"
mkdir -p "$SETTINGS_DIR"
cp "$ROOT/extensions/jupyter-config/lab-overrides.json" "$SETTINGS_DIR/overrides.json"
