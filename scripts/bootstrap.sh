#!/usr/bin/env bash
# Installs what Chukan needs on a fresh Debian 12 machine, and nothing when it is all
# there. The one list of Debian packages the project uses; `make run`, `make test` and
# CI all call this.
set -euo pipefail

packages=(
  pkg-config                          # SwiftPM finds the C libraries through it
  python3                             # generated Swift wrappers, benchmark reports
  libprotobuf-c-dev protobuf-c-compiler   # protobuf-c runtime; protoc-c for scripts/generate-protos.sh
  libssl-dev openssl                  # OpenSSL 3: TLS, and the CLI behind `chukanctl certs`
  golang-go golang-github-containerd-ttrpc-dev   # containerd's Go ttrpc: interop test, benchmark peer
  curl                                # metrics endpoint test
  redis-server                        # Benchmarks/run-register.sh: the side-by-side peer
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1 && [ ! -x /opt/swift/usr/bin/swift ]; then
  echo "bootstrap: Swift 6 is not installed (expected on PATH or at /opt/swift)" >&2
  exit 1
fi
echo "bootstrap: all dependencies present"
