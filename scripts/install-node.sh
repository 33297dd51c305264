#!/usr/bin/env bash
# Node tools under $1 (default .tools): configurable-http-proxy, playwright-core and
# oidc-provider (the OpenID Connect provider that login tests run, tests/helpers/oidc.py).
# Idempotent: a tool already at its pinned version is left alone.
set -euo pipefail
TOOLS="$(realpath -m "${1:-.tools}")"
export npm_config_yes=true npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
mkdir -p "$TOOLS/node"
cd "$TOOLS/node"
[ -f package.json ] || echo '{"name": "codespace-hub-tools", "private": true}' > package.json
want=(configurable-http-proxy@5.3.0 playwright-core@1.65.1 oidc-provider@9.13.3)
need=()
for spec in "${want[@]}"; do
    name="${spec%@*}"; version="${spec##*@}"
    have="$(node -p "try{require('./node_modules/$name/package.json').version}catch(e){''}")"
    [ "$have" = "$version" ] || need+=("$spec")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "install-node: npm install ${need[*]}"
    npm install --save-exact --silent "${need[@]}" >/dev/null 2>&1 || npm install --save-exact "${need[@]}"
fi

# code-server (VS Code in the browser) under $TOOLS/code-server, pinned. The plain npm install
# downloads ripgrep from GitHub and fails offline/as root; this recipe uses Debian's ripgrep and
# skips the scripts that download (see FACTS.md). Needs Debian ripgrep libkrb5-dev
# libxkbfile-dev libsecret-1-dev (scripts/install-system.sh). A stamp file marks success.
# Without code-server the hub still works (no VS Code card): locally a failure is a warning;
# with CI=true it fails the install, so CI never passes without VS Code.
code_server_failed() {
    echo "install-node: $1" >&2
    case "${CI:-}" in 1|true|yes) exit 1 ;; esac
    echo "install-node: continuing without VS Code in the browser" >&2
    exit 0
}
CODE_SERVER_VERSION=4.100.3
CS_ROOT="$TOOLS/code-server"
CS_STAMP="$CS_ROOT/.installed-$CODE_SERVER_VERSION"
if [ "${CODESPACE_SKIP_CODE_SERVER:-}" = "1" ]; then
    echo "install-node: code-server skipped (CODESPACE_SKIP_CODE_SERVER=1)"
elif [ ! -f "$CS_STAMP" ]; then
    if ! command -v rg >/dev/null; then
        code_server_failed "code-server needs Debian's ripgrep (make install-system as root)"
    fi
    echo "install-node: installing code-server $CODE_SERVER_VERSION into $CS_ROOT (~3 min)"
    rm -rf "$CS_ROOT"
    mkdir -p "$CS_ROOT"
    log="$CS_ROOT/install.log"
    # Not part of an && / || list, so `set -e` inside the subshell stops at the first failure.
    set +e
    (
        set -euo pipefail
        export npm_config_unsafe_perm=true
        cd "$CS_ROOT"
        echo '{"name": "codespace-hub-code-server", "private": true}' > package.json
        npm install --save-exact --ignore-scripts "code-server@$CODE_SERVER_VERSION"
        pkg="$CS_ROOT/node_modules/code-server"
        cd "$pkg/lib/vscode"
        npm install --omit=dev --ignore-scripts
        mkdir -p node_modules/@vscode/ripgrep/bin
        cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
        cd "$pkg"
        npm_config_user_agent="npm/$(npm -v) node/$(node -v) linux x64" sh ./postinstall.sh
        cd "$pkg/lib/vscode"
        npm rebuild --foreground-scripts
        cd "$CS_ROOT"
        npm rebuild argon2
    ) >"$log" 2>&1
    status=$?
    set -e
    if [ "$status" -ne 0 ] || ! "$CS_ROOT/node_modules/.bin/code-server" --version >/dev/null 2>&1
    then
        tail -n 40 "$log" >&2
        code_server_failed "code-server install failed (log: $log)"
    fi
    touch "$CS_STAMP"
    echo "install-node: code-server $CODE_SERVER_VERSION installed"
fi
