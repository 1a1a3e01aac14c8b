#!/usr/bin/env bash
# Installs what webhookd's tests and `make run` need that a fresh machine
# may lack: redis-server, node + npm for the Klaviyo SDK contract test,
# and chromium for the console's browser test.
# As root it uses apt-get; otherwise it stops with one line saying what to
# install.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v chromium >/dev/null || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "webhookd needs: ${missing[*]} (e.g. sudo apt-get install -y ${missing[*]})" >&2
  exit 1
fi
