#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (idempotent; quiet when all is present).
set -euo pipefail

need_apt=()
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
