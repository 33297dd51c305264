#!/usr/bin/env bash
# Node tools under $1 (default .tools): configurable-http-proxy and playwright-core.
# Idempotent: a tool already at its pinned version is left alone.
set -euo pipefail
TOOLS="$(realpath -m "${1:-.tools}")"
export npm_config_yes=true npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
mkdir -p "$TOOLS/node"
cd "$TOOLS/node"
[ -f package.json ] || echo '{"name": "codespace-hub-tools", "private": true}' > package.json
want=(configurable-http-proxy@5.3.0 playwright-core@1.65.1)
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
