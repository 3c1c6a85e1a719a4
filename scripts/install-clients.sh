#!/usr/bin/env bash
# Installs the real-client test drivers that tests/clients/run.sh uses (idempotent; a second or two when
# everything is current). Needs python3 (+venv), Java 17 + Maven, Go; reaches only PyPI, Maven Central,
# the Go module proxy and (for python3-venv, when missing) Debian.
#
#   scripts/install-clients.sh [python] [java] [go]     (default: all three)
#
# Results, all under the gitignored .ci/cache:
#   venv/                 python: confluent-kafka, kafka-python (+ its snappy, lz4, zstd libraries), pytest
#                         (tests/clients/python/requirements.txt)
#   java/classes, java/lib/   the Java driver and kafka-clients + slf4j jars (tests/clients/java/pom.xml)
#   bin/spate-franz       the Go driver (franz-go; tests/clients/go)
# Each part is rebuilt only when its inputs (pinned versions, sources, toolchain version) changed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=$root/.ci/cache
clients=$root/tests/clients
mkdir -p "$cache"

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(python java go)

# stamp INPUT...: a digest of the input files' contents and of the toolchain line in $toolchain.
stamp() {
  { printf '%s\n' "$toolchain"; cat "$@"; } | sha256sum | cut -d' ' -f1
}
current() { [ -f "$cache/$1.stamp" ] && [ "$(cat "$cache/$1.stamp")" = "$2" ]; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_python() {
  local venv=$cache/venv requirements=$clients/python/requirements.txt
  toolchain=$(python3 --version 2>&1)
  local want
  want=$(stamp "$requirements")
  if current python "$want" && [ -x "$venv/bin/python" ]; then return; fi
  echo "install-clients: python venv ($venv)"
  rm -rf "$venv" "$cache/python.stamp"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian's python3 lacks ensurepip until python3-venv (python3.X-venv) is installed.
    rm -rf "$venv"
    local minor
    minor=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    echo "install-clients: installing python3-venv and python$minor-venv (Debian)"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv "python$minor-venv" >/dev/null ||
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  # Binary wheels only: confluent-kafka's bundles librdkafka (a source build would need librdkafka-dev of a
  # matching version), and the codec libraries kafka-python uses (cramjam, lz4, zstandard) would need a C
  # or Rust toolchain to build from source.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: -r "$requirements"
  echo "$want" >"$cache/python.stamp"
}

install_java() {
  local dir=$clients/java
  # (awk, not head: head would end the pipe early, and pipefail would stop the script.)
  toolchain="$(java -version 2>&1 | awk 'NR == 1') $(mvn -v 2>/dev/null | awk 'NR == 1')"
  local want
  want=$(stamp "$dir/pom.xml" $(find "$dir/src" -type f | sort))
  if current java "$want" && [ -d "$cache/java/classes" ] && [ -d "$cache/java/lib" ]; then return; fi
  echo "install-clients: java driver (kafka-clients via Maven; ~/.m2 caches the downloads)"
  rm -rf "$cache/java" "$cache/java.stamp"
  # Only the compile and copy-dependencies goals: no jar, surefire or install plugins to fetch.
  # (Debian's Maven prints colour codes even in batch mode; sed drops them.)
  (cd "$dir" && mvn -B -q compiler:compile dependency:copy-dependencies 2>&1 | sed 's/\x1b\[[0-9;]*m//g')
  echo "$want" >"$cache/java.stamp"
}

install_go() {
  local dir=$clients/go
  toolchain=$(go version)
  local want
  want=$(stamp "$dir/go.mod" "$dir/go.sum" $(find "$dir" -name '*.go' | sort))
  if current go "$want" && [ -x "$cache/bin/spate-franz" ]; then return; fi
  echo "install-clients: go driver (franz-go via the module proxy)"
  mkdir -p "$cache/bin"
  rm -f "$cache/go.stamp"
  # GOTOOLCHAIN=auto: a Go older than go.mod asks for fetches the newer toolchain from the module proxy.
  (cd "$dir" && GOTOOLCHAIN=auto GOFLAGS=-mod=readonly go build -buildvcs=false -o "$cache/bin/spate-franz" .)
  echo "$want" >"$cache/go.stamp"
}

for part in "${parts[@]}"; do
  case $part in
    python) install_python ;;
    java) install_java ;;
    go) install_go ;;
    *) echo "install-clients: unknown part '$part' (python, java, go)" >&2; exit 2 ;;
  esac
done
