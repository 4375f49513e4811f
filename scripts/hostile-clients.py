#!/usr/bin/env python3
"""Hostile clients against a live Chukan on loopback, each attack bounded in time and in
connections, while a well-behaved client (chukan-bench: Echo, 2 connections x 8 in flight)
measures its own latency. Prints one Markdown table: the well-behaved p99 under each attack
beside its quiet value, the server's peak RSS, and what the server did to the attackers.
Run by scripts/hostile-clients.sh, which starts the server; stops by itself."""
import argparse, asyncio, json, os, random, resource, ssl, struct, subprocess, sys, time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--pid", type=int, required=True, help="the server's pid (for its RSS)")
p.add_argument("--certs", required=True, help="folder with ca.crt, good.crt/key, attacker.crt/key")
p.add_argument("--bench", required=True, help="path of chukan-bench")
p.add_argument("--seconds", type=float, default=12)
p.add_argument("--max-connections", type=int, default=2000)
p.add_argument("--attacker-nice", type=int, default=0,
               help="run the attackers at this nice value, the good client at 0 (tells the server's own cost from CPU the "
                    "attacker takes on a small machine; lowering the good client's back needs root or CAP_SYS_NICE)")
args = p.parse_args()

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
HOST = "127.0.0.1"


def tls_context():
    ctx = ssl.create_default_context(cafile=f"{args.certs}/ca.crt")
    ctx.load_cert_chain(f"{args.certs}/attacker.crt", f"{args.certs}/attacker.key")
    return ctx


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def echo_request(payload):
    body = field(1, payload)  # chukan.v1.EchoMessage
    return field(1, b"chukan.v1.Echo") + field(2, b"Echo") + field(3, body)


def frame(stream, data, kind=1, flags=0):
    return struct.pack(">IIBB", len(data), stream, kind, flags) + data


def rss_mb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Tally:
    def __init__(self):
        self.opened = self.closed_by_server = self.refused = self.errors = self.sent = 0
        self.statuses = {}


async def hold_until(deadline):
    await asyncio.sleep(max(0, deadline - time.monotonic()))


async def read_closes(reader, deadline, t):
    """Reads until the server closes (counted) or the deadline."""
    try:
        while time.monotonic() < deadline:
            data = await asyncio.wait_for(reader.read(65536), timeout=max(0.01, deadline - time.monotonic()))
            if not data:
                t.closed_by_server += 1
                return
    except (asyncio.TimeoutError, TimeoutError):
        return
    except (ConnectionError, ssl.SSLError, OSError):
        t.closed_by_server += 1


async def tls_open(t):
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(HOST, args.port, ssl=tls_context(), server_hostname="localhost"), 10)
        t.opened += 1
        return r, w
    except Exception:
        t.refused += 1
        return None, None


# --- the attacks -------------------------------------------------------------------------

async def slowloris_tls(deadline, t):
    """Partial TLS records: a ClientHello header, then a byte a second."""
    async def one():
        try:
            r, w = await asyncio.open_connection(HOST, args.port)
        except OSError:
            t.refused += 1
            return
        t.opened += 1
        w.write(b"\x16\x03\x01\x02\x00\x01")
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(1)
                w.write(bytes([random.randrange(256)]))
                await w.drain()
                if r.at_eof():
                    t.closed_by_server += 1
                    return
        except (ConnectionError, OSError):
            t.closed_by_server += 1
            return
        finally:
            w.close()
    await asyncio.gather(*(one() for _ in range(min(500, args.max_connections))))


async def slowloris_frames(deadline, t):
    """Handshake done, then a frame header announcing 1000 bytes and a byte a second."""
    async def one():
        r, w = await tls_open(t)
        if not w:
            return
        w.write(struct.pack(">IIBB", 1000, 1, 1, 0))
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(1)
                w.write(b"\x00")
                await w.drain()
                if r.at_eof():
                    t.closed_by_server += 1
                    return
        except (ConnectionError, OSError, ssl.SSLError):
            t.closed_by_server += 1
        finally:
            w.close()
    await asyncio.gather(*(one() for _ in range(200)))


async def idle_connections(deadline, t):
    async def one():
        r, w = await tls_open(t)
        if w:
            await read_closes(r, deadline, t)
            w.close()
    await asyncio.gather(*(one() for _ in range(1000)))


async def many_connections(deadline, t):
    """As many TLS connections as allowed, opened 50 at a time, held to the end."""
    held = []
    while time.monotonic() < deadline and len(held) < args.max_connections:
        batch = await asyncio.gather(*(tls_open(t) for _ in range(50)))
        held += [w for _, w in batch if w]
    await hold_until(deadline)
    for w in held:
        w.close()


async def handshake_flood(deadline, t):
    """16 loops of connect, handshake, close."""
    async def loop():
        while time.monotonic() < deadline:
            r, w = await tls_open(t)
            if w:
                w.close()
    await asyncio.gather(*(loop() for _ in range(16)))


async def stream_id_abuse(deadline, t):
    """Stream 0, even ids, reused ids, ids going backwards, as fast as the server reads."""
    async def one(kind):
        r, w = await tls_open(t)
        if not w:
            return
        ids = {"zero": lambda i: 0, "even": lambda i: 2 * i + 2, "reused": lambda i: 1, "backwards": lambda i: max(1, 2_000_001 - 2 * i)}[kind]
        reader = asyncio.create_task(read_closes(r, deadline, t))
        i = 0
        try:
            while time.monotonic() < deadline and not reader.done():
                if w.transport.is_closing():  # closed by the server (the reader counts it): stop writing
                    break
                w.write(frame(ids(i), echo_request(b"x" * 32)))
                t.sent += 1
                i += 1
                if i % 64 == 0:
                    await w.drain()
                    await asyncio.sleep(0)  # drain() does not yield below the high-water mark: let the other 15 run
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        await reader
        w.close()
    await asyncio.gather(*(one(k) for k in ["zero", "even", "reused", "backwards"] * 4))


async def max_frames(deadline, t):
    """Frames of the largest size allowed (4 MiB) in a loop, answers read."""
    big = frame(1, echo_request(b"M" * (4 * 1024 * 1024 - 64)))
    async def one():
        r, w = await tls_open(t)
        if not w:
            return
        reader = asyncio.create_task(read_closes(r, deadline, t))
        stream = 1
        try:
            while time.monotonic() < deadline and not reader.done():
                w.write(struct.pack(">I", len(big) - 10) + struct.pack(">I", stream) + big[8:])
                stream += 2
                t.sent += 1
                await w.drain()
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        await reader
        w.close()
    await asyncio.gather(*(one() for _ in range(4)))


async def never_read(deadline, t):
    """Requests with 64 KiB answers sent as fast as possible; answers never read."""
    req = echo_request(b"R" * 65536)
    async def one():
        r, w = await tls_open(t)
        if not w:
            return
        stream = 1
        try:
            while time.monotonic() < deadline:
                w.write(frame(stream, req))
                stream += 2
                t.sent += 1
                await asyncio.wait_for(w.drain(), timeout=max(0.01, deadline - time.monotonic()))
        except (asyncio.TimeoutError, TimeoutError):
            pass  # the server stopped reading: back-pressure
        except (ConnectionError, OSError, ssl.SSLError):
            t.closed_by_server += 1
        w.transport.abort()
    await asyncio.gather(*(one() for _ in range(8)))


async def garbage(deadline, t):
    """Random bytes after a good handshake, on 50 connections, again and again."""
    async def one():
        while time.monotonic() < deadline:
            r, w = await tls_open(t)
            if not w:
                continue
            try:
                w.write(os.urandom(4096))
                await w.drain()
            except (ConnectionError, OSError, ssl.SSLError):
                pass
            await read_closes(r, min(deadline, time.monotonic() + 2), t)
            w.close()
    await asyncio.gather(*(one() for _ in range(50)))


ATTACKS = [
    ("slowloris: partial TLS records (500 connections)", slowloris_tls),
    ("slowloris: partial frames (200 connections)", slowloris_frames),
    ("idle connections (1,000)", idle_connections),
    (f"thousands of connections (up to {args.max_connections})", many_connections),
    ("handshake flood (16 loops)", handshake_flood),
    ("stream-id abuse (16 connections)", stream_id_abuse),
    ("maximum-size frames in a loop (4 connections)", max_frames),
    ("clients that never read (8 connections)", never_read),
    ("garbage after the handshake (50 loops)", garbage),
]


def good_client(seconds):
    """chukan-bench as the well-behaved client; its JSON figures, or None if it failed."""
    out = subprocess.run([args.bench, "--server", f"{HOST}:{args.port}", "--ca", f"{args.certs}/ca.crt", "--cert", f"{args.certs}/good.crt",
                          "--key", f"{args.certs}/good.key", "--connections", "2", "--in-flight", "8", "--payload", "256",
                          "--duration", str(seconds), "--warmup", "1", "--json"], capture_output=True, text=True,
                         preexec_fn=(lambda: os.setpriority(os.PRIO_PROCESS, 0, 0)) if args.attacker_nice else None)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": (out.stderr or out.stdout).strip()[-200:]}


async def run_attack(fn, seconds):
    t = Tally()
    deadline = time.monotonic() + seconds + 2
    peak = [rss_mb(args.pid)]

    async def sample():
        while time.monotonic() < deadline:
            peak[0] = max(peak[0], rss_mb(args.pid))
            await asyncio.sleep(0.25)

    loop = asyncio.get_running_loop()
    bench = loop.run_in_executor(None, good_client, seconds)
    await asyncio.sleep(0.5)  # the good client connects first
    attack = asyncio.create_task(fn(deadline, t))
    sampler = asyncio.create_task(sample())
    result = await bench
    try:
        await asyncio.wait_for(attack, timeout=seconds + 15)
    except (asyncio.TimeoutError, TimeoutError):
        attack.cancel()
    sampler.cancel()
    return result, t, peak[0]


async def main():
    if args.attacker_nice:
        os.nice(args.attacker_nice)  # this thread, and the threads and processes it starts
    quiet = good_client(args.seconds)
    quiet_rss = rss_mb(args.pid)
    rows = []
    base = quiet.get("p99_us")
    print(f"quiet: {quiet}", file=sys.stderr)
    for name, fn in ATTACKS:
        result, t, peak = await run_attack(fn, args.seconds)
        print(f"{name}: {result} opened={t.opened} closed_by_server={t.closed_by_server} refused={t.refused} sent={t.sent} peak_rss={peak:.0f}", file=sys.stderr)
        rows.append((name, result, t, peak))
        await asyncio.sleep(2)  # let the server shed what the attack left
    print(f"Well-behaved client: Echo of 256 bytes, 2 connections x 8 in flight, {args.seconds:.0f} s per attack. Quiet: "
          f"{quiet.get('calls_per_s', 0):,.0f} calls/s, p50 {quiet.get('p50_us', 0):,} µs, p99 {base:,} µs, server RSS {quiet_rss:.0f} MB."
          + (f" Attackers at nice {args.attacker_nice}, server and good client at 0." if args.attacker_nice else "") + "\n")
    print("| attack | good client calls/s | p99 µs | × quiet | errors | server peak RSS MB | attacker connections opened / closed by server / refused |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, r, t, peak in rows:
        if "p99_us" in r:
            ratio = r["p99_us"] / base if base else 0
            print(f"| {name} | {r['calls_per_s']:,.0f} | {r['p99_us']:,} | {ratio:.1f} | {r['errors']} | {peak:.0f} | {t.opened} / {t.closed_by_server} / {t.refused} |")
        else:
            print(f"| {name} | failed | – | – | {r.get('error', '')} | {peak:.0f} | {t.opened} / {t.closed_by_server} / {t.refused} |")

asyncio.run(main())
