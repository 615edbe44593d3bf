#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs the system packages the tests need
# (first run only), installs npm dependencies, builds, runs jest, and prints a closing
# "N passed, N failed" line. Extra arguments go to jest (e.g. a path pattern).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ctr >/dev/null 2>&1 || need+=(containerd)                # ctr: the real client in test/compat
[ -d /usr/share/gocode/src/github.com/containerd/containerd/api ] || need+=(golang-github-containerd-containerd-dev)  # reference protos
[ -d /usr/share/gocode/src/github.com/containerd/cgroups ] || need+=(golang-github-containerd-cgroups-dev)
command -v openssl >/dev/null 2>&1 || need+=(openssl)               # certificates for the mutual-TLS test
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)  # the real registry of the pull/push tests
[ -x /bin/busybox ] || need+=(busybox-static)                          # test images are built from it
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v umoci >/dev/null 2>&1 || need+=(umoci)
command -v runc >/dev/null 2>&1 || need+=(runc)                        # containerd's runc shim, a peer in runtime tests
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# npm install, not npm ci: npm 11 leaves other platforms' optional native packages out of the
# lock file and then refuses `npm ci` on it; install still follows the locked versions.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
npm run --silent build

report=$(mktemp /tmp/berth-jest-XXXXXX.json)
trap 'rm -f "$report"' EXIT
status=0
npx jest --json --outputFile="$report" "$@" || status=$?
node -e '
  const r = require(process.argv[1]);
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests + r.numRuntimeErrorTestSuites} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));
' "$report" || true
exit $status
