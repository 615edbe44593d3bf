#!/usr/bin/env bash
# Installs berthd from this checkout and starts it with the embedded defaults:
#   root /var/lib/berth, state /run/berth, socket /run/berth/berthd.sock.
# Uses systemd when it is running; otherwise starts berthd in the background (logs in
# /var/log/berthd.log). Run as root. Safe to run again (it upgrades and restarts).
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
prefix=${PREFIX:-/opt/berth}

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
command -v node >/dev/null || { echo "install.sh: Node.js 20 or newer is required" >&2; exit 1; }

cd "$src"
npm install --no-audit --no-fund --loglevel=error
npm run --silent build

if [ "$src" != "$prefix" ]; then
  mkdir -p "$prefix"
  # The runtime tree only: compiled code, wire definitions, production dependencies.
  rm -rf "$prefix/dist" "$prefix/proto"
  cp -a dist proto bin package.json package-lock.json README.md "$prefix/"
  (cd "$prefix" && npm install --omit=dev --no-audit --no-fund --loglevel=error)
fi
ln -sf "$prefix/bin/berthd" /usr/local/bin/berthd
ln -sf "$prefix/bin/berth" /usr/local/bin/berth
ln -sf "$prefix/bin/containerd-shim-berth-v1" /usr/local/bin/containerd-shim-berth-v1  # runtime io.containerd.berth.v1, for berthd and containerd alike

mkdir -p /etc/berth
[ -f /etc/berth/config.toml ] || "$prefix/bin/berthd" config default > /etc/berth/config.toml

if [ -d /run/systemd/system ]; then
  install -m 0644 "$src/deploy/berthd.service" /etc/systemd/system/berthd.service
  systemctl daemon-reload
  systemctl enable berthd >/dev/null 2>&1 || true
  systemctl restart berthd
else
  if [ -f /run/berth/berthd.pid ] && kill -0 "$(cat /run/berth/berthd.pid)" 2>/dev/null; then
    kill -TERM "$(cat /run/berth/berthd.pid)"
    for _ in $(seq 50); do kill -0 "$(cat /run/berth/berthd.pid)" 2>/dev/null || break; sleep 0.1; done
  fi
  mkdir -p /run/berth
  setsid /usr/local/bin/berthd --config /etc/berth/config.toml >>/var/log/berthd.log 2>&1 < /dev/null &
  echo $! > /run/berth/berthd.pid
fi

for _ in $(seq 100); do
  if /usr/local/bin/berth version >/dev/null 2>&1; then
    echo "berthd is running on /run/berth/berthd.sock"
    exit 0
  fi
  sleep 0.1
done
echo "install.sh: berthd did not come up; see 'journalctl -u berthd' or /var/log/berthd.log" >&2
exit 1
