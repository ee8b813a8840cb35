#!/usr/bin/env bash
# Runs a command with one moto server for the whole of it, then stops the
# server. nextest runs every test in a process of its own, so without this
# each integration test would start (and pay for) a moto of its own; with it
# they all share one and `MOTO_ENDPOINT` names it, as the harness documents.
# An endpoint already set in MOTO_ENDPOINT is used as it is.
#
# Usage: tests/with-moto.sh COMMAND [ARGS...]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${MOTO_ENDPOINT:-}" ]; then
  exec "$@"
fi

venv="$root/.venv/bin"
if [ ! -x "$venv/moto_server" ]; then
  echo "moto is not installed at $venv/moto_server: run \`make venv\` first" >&2
  exit 1
fi

port=$("$venv/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$root/target/moto-server.log"
mkdir -p "$root/target"
"$venv/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto=$!
trap 'kill "$moto" 2>/dev/null || true; wait "$moto" 2>/dev/null || true' EXIT

deadline=$((SECONDS + 60))
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
  if ! kill -0 "$moto" 2>/dev/null; then
    echo "moto exited before listening on 127.0.0.1:$port; its log: $log" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "moto did not listen on 127.0.0.1:$port within 60 s; its log: $log" >&2
    exit 1
  fi
  sleep 0.1
done

export MOTO_ENDPOINT="http://127.0.0.1:$port"
echo "with-moto: one moto server for this run at $MOTO_ENDPOINT (log: $log)" >&2
"$@"
