"""What the plan's estimate costs a sensor tick: reading one campaign's ledger (what the estimate uses) against
reading every campaign's (what pooling observed usage across campaigns would need), on a local folder and on an S3
bucket (moto's server on loopback), and the estimate's own cache lookups.

Usage::

    .venv/bin/python benchmarks/ledger_reads.py [--campaigns 10] [--calls 48] [--repeat 5]

Each campaign gets ``--calls`` ledger records (a 4-scene campaign's first run writes 16: 12 images, 4 clips).
Prints the median time of each read, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adchain_assets.plan.calls import OK, Call
from adchain_assets.store.cache import GenerationCache
from adchain_assets.store.ledger import Ledger

USAGE = {"input": {"TEXT": 300}, "output": {"IMAGE": 1120}, "thinking": 0}


def fill(storage: str, campaigns: int, calls: int) -> None:
    ledger = Ledger(storage)
    for c in range(campaigns):
        for i in range(calls):
            ledger.record(Call(f"campaign-{c}", f"reference/scene_{i % 8 + 1}", f"{c:02d}{i:062d}", "gemini",
                               "gemini-3.1-flash-image", "image", 1, OK, usage=USAGE, cost_usd=0.0673))


def median_ms(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(storage: str, campaigns: int, repeat: int) -> dict[str, float]:
    ledger = Ledger(storage)
    cache = GenerationCache(storage.rstrip("/") + "/cache")
    return {
        "one campaign's ledger": median_ms(lambda: ledger.calls("campaign-0"), repeat),
        f"all {campaigns} campaigns' ledgers": median_ms(
            lambda: [ledger.calls(f"campaign-{c}") for c in range(campaigns)], repeat),
        "12 cache lookups (misses)": median_ms(lambda: [cache.meta(f"{k:064d}") for k in range(12)], repeat),
    }


def moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": endpoint, "FSSPEC_S3_ENDPOINT_URL": endpoint})
    import s3fs

    deadline = time.monotonic() + 30
    while True:
        try:
            s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True).mkdir("bench")
            return server, "s3://bench/adchain"
        except Exception:
            if time.monotonic() > deadline:
                server.terminate()
                raise
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=10)
    parser.add_argument("--calls", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        fill(folder, args.campaigns, args.calls)
        for name, ms in measure(folder, args.campaigns, args.repeat).items():
            print(f"local folder  {name:<32} {ms:8.1f} ms")
    server, url = moto()
    try:
        fill(url, args.campaigns, args.calls)
        for name, ms in measure(url, args.campaigns, args.repeat).items():
            print(f"S3 (moto)     {name:<32} {ms:8.1f} ms")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
