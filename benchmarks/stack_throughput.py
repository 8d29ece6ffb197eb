"""Span and CPU of whole campaigns on the production stack (`make stack`): the daemon's sensor, the run queue,
Celery workers, PostgreSQL and the bucket, against the local Gemini-protocol server with a simulated latency.

Unlike ``throughput.py`` (the embedded instance, images and storyboard only), a campaign here is what the sensor
runs for a dropped brief: its images, clips (the preview video backend), storyboard, ad and report. CPU is the
whole machine's busy time (``/proc/stat``) over the campaign, minus the stack's idle rate measured just before,
so PostgreSQL, Redis, moto, the daemon, the run workers and the Celery workers all count. Usage::

    make stack                       # once; STACK_WORKER_CONCURRENCY and ADCHAIN_IMAGE_POOL_LIMIT as wanted
    .venv/bin/python benchmarks/stack_throughput.py --scenes 4          # one campaign of 4 scenes
    .venv/bin/python benchmarks/stack_throughput.py --campaigns 20 --scenes 2
    make stack-down

It redeploys the stack's compute tier (``up.sh --restart-compute``) with the gemini backend pointed at its
server, as the stack tests do; ``--no-redeploy`` reuses workers already pointed at a server on ``--port``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT = BENCH_DIR.parent
sys.path[:0] = [str(BENCH_DIR), str(PROJECT)]

import throughput  # noqa: E402  (the server, span and in-flight measures are shared)

from adchain_assets_tests.stack.conftest import GEMINI_KEY, read_env_file, write_brief  # noqa: E402


def busy_cpu_s() -> float:
    """Busy CPU seconds of the whole machine since boot (every field of /proc/stat's cpu line but idle, iowait)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def webserver_answers(url: str) -> bool:
    """The stack's webserver serves its API (the stack is up; its env file outlives `make stack-down`)."""
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as reply:
            return reply.status == 200
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--campaigns", type=int, default=1)
    parser.add_argument("--latency", type=float, default=3.0)
    parser.add_argument("--port", type=int, default=55100)
    parser.add_argument("--no-redeploy", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)

    env_file = PROJECT / "deploy" / ".stack" / "env"
    if not env_file.is_file() or not webserver_answers(read_env_file(env_file).get("STACK_WEBSERVER_URL", "")):
        parser.error("the stack is not up: run `make stack` first")
    server_class = throughput._server_class()
    with server_class(api_key=GEMINI_KEY, port=args.port, latency_s=args.latency) as server:
        stack_env = read_env_file(env_file)
        if not args.no_redeploy:
            deploy_env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("ADCHAIN_", "GEMINI_"))},
                **{k: v for k, v in stack_env.items() if k.startswith("STACK_")},
                "ADCHAIN_IMAGE_BACKEND": "gemini",
                "GEMINI_API_KEY": GEMINI_KEY,
                "GEMINI_BASE_URL": server.base_url,
                "ADCHAIN_MAX_SCENES": str(max(4, args.scenes)),
            }
            done = subprocess.run([str(PROJECT / "scripts" / "stack" / "up.sh"), "--restart-compute"],
                                  env=deploy_env, cwd=PROJECT, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"up.sh --restart-compute failed:\n{done.stderr[-3000:]}")
        os.environ.update(read_env_file(env_file))
        import dagster as dg

        instance = dg.DagsterInstance.get()
        briefs = Path(os.environ["ADCHAIN_DATA_DIR"]) / "briefs"
        time.sleep(5)
        started, busy = time.time(), busy_cpu_s()
        time.sleep(10)
        idle_rate = (busy_cpu_s() - busy) / (time.time() - started)

        first = len(server.requests)
        tag = f"b{int(time.time()) % 100000}"
        names = [f"{tag}c{i}" for i in range(args.campaigns)]
        started, busy = time.time(), busy_cpu_s()
        for name in names:
            write_brief(briefs, name, scenes=args.scenes)

        def runs(name: str) -> list:
            return list(instance.get_runs(dg.RunsFilter(tags={"dagster/partition": name})))

        while not all((found := runs(name)) and all(run.is_finished for run in found) for name in names):
            if time.time() - started > args.timeout:
                raise SystemExit(f"timed out after {args.timeout:.0f} s")
            time.sleep(1)
        finished = time.time()
        cpu = busy_cpu_s() - busy - idle_rate * (finished - started)
        calls = throughput.calls_since(server, first)
        average, peak = throughput.in_flight(calls)
        result = {
            "campaigns": args.campaigns, "scenes": args.scenes, "latency_s": args.latency,
            "calls": len(calls), "expected_calls": 3 * args.scenes * args.campaigns,
            "span_s": round(throughput.span_of(calls), 2), "wall_s": round(finished - started, 1),
            "idle_cpu_rate": round(idle_rate, 3), "cpu_s": round(cpu, 1),
            "cpu_per_image_s": round(cpu / max(1, len(calls)), 2),
            "calls_in_flight": round(average, 2), "peak_in_flight": peak,
            "statuses": sorted({run.status.value for name in names for run in runs(name)}),
        }
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
