#!/usr/bin/env bash
# Scans a running Chukan with sslyze (PyPI, installed into .build/sslyze-venv) and checks
# the result against the server's TLS promises (docs/SECURITY.md, "TLS configuration scan"):
# nothing below TLS 1.2 even with the 1.2 opt-in, only forward-secret AEAD suites, no
# compression, no insecure renegotiation, no known vulnerability, client certificates
# requested. Starts its own server on loopback with throw-away certificates; stops by itself.
#   scripts/tls-scan.sh            with --tls12 (the wider configuration)
#   TLS12=0 scripts/tls-scan.sh    TLS 1.3 only (the default)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
venv=.build/sslyze-venv
if [ ! -x "$venv/bin/sslyze" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian keeps venv apart from python3.
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update && $sudo apt-get install -y python3-venv
    rm -rf "$venv" && python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q sslyze
fi
swift build -c release --product chukan --product chukanctl >/dev/null 2>&1 || swift build -c release
R=.build/release
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
$R/chukanctl certs init "$work/certs" --client scanner >/dev/null
port=17543
flags=()
[ "${TLS12:-1}" = 1 ] && flags+=(--tls12)
$R/chukan serve --port $port --metrics-port 0 --log-level warning --cert "$work/certs/server.crt" --key "$work/certs/server.key" \
  --client-ca "$work/certs/ca.crt" "${flags[@]}" &
server=$!
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
"$venv/bin/sslyze" --json_out="$work/scan.json" --cert "$work/certs/scanner.crt" --key "$work/certs/scanner.key" \
  --sni localhost 127.0.0.1:$port >/dev/null || true
# Client certificates: sslyze, given one, does not report whether it is required (with TLS
# 1.3 the request is encrypted), so a handshake without one and one with it are tried here.
python3 - "$port" "$work/certs" > "$work/client-auth.txt" <<'PY'
import socket, ssl, sys
port, certs = int(sys.argv[1]), sys.argv[2]
def attempt(with_cert):
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.crt")
    if with_cert:
        ctx.load_cert_chain(f"{certs}/scanner.crt", f"{certs}/scanner.key")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s, ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.settimeout(2)
            t.recv(1)  # TLS 1.3 reports a missing client certificate at the first read
            return "accepted"
    except ssl.SSLError as e:
        return f"refused:{e.reason}"
    except (socket.timeout, TimeoutError):
        return "accepted"
    except OSError as e:
        return f"refused:{e}"
print(attempt(False))
print(attempt(True))
PY
python3 scripts/tls-scan-check.py "$work/scan.json" "${TLS12:-1}" "$work/client-auth.txt"
