# Sourced by run-services.sh and run-provision.sh: the release build and the benchmark tenant
# they share (Benchmarks/out/services) — RESIDENTS synthetic residents of Asahikawa (012041),
# generated and imported once per size, then recovered from its snapshot by each run.
export PATH="$PATH:/opt/swift/usr/bin"
RESIDENTS=${RESIDENTS:-1000000}
DURATION=${DURATION:-10}
out=Benchmarks/out
work=$out/services
R=.build/release
swift build -c release
mkdir -p "$out"
if [ ! -f "$work/.ready-$RESIDENTS" ]; then
  rm -rf "$work"
  mkdir -p "$work"
  $R/chukanctl certs init "$work/certs" --client admin --client clerk --client codes >/dev/null
  $R/chukanctl tenant add --data "$work/data" --keys "$work/keys" --tenant 012041 >/dev/null
  $R/chukanctl data generate --count "$RESIDENTS" --seed 1 --out "$work/residents.bin"
  $R/chukanctl data import --data "$work/data" --keys "$work/keys" --tenant 012041 "$work/residents.bin"
  $R/chukanctl snapshot create --data "$work/data" --keys "$work/keys" --tenant 012041
  touch "$work/.ready-$RESIDENTS"
fi
