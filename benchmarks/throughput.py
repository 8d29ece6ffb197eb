"""Throughput benchmark: campaigns against the local Gemini-protocol server with a simulated latency per call.

Prints one table (targets and pass/fail per row) and, with ``--json PATH``, writes it as JSON:

* span (first request to last reply, at the server) of one campaign of 4 and of 8 scenes, against the
  critical-path bound ``(n + 2) x L`` and against a seed-style serial loop over the same ``3n`` calls;
* 20 campaigns (2 scenes each) started at once on one instance whose ``dagster.yaml`` sets
  ``concurrency: pools: default_limit: P``: time-weighted average calls in flight over the span, against P;
* orchestration overhead per image in process (``execute_in_process``, latency 0): (wall - model time) / images;
* per executor set-up, one 4-scene campaign with where each step's time goes (from the run's event log and
  the server's request times).

Every measurement runs in its own subprocess with a fresh data folder (the generation cache would answer
repeated requests) and a fresh ``DAGSTER_HOME``; the server runs in this process. Usage::

    .venv/bin/python benchmarks/throughput.py [--latency 3] [--quick] [--json out.json]

See benchmarks/README.md for the set-ups and what the numbers mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

BENCH_DIR = Path(__file__).resolve().parent
PROJECT = BENCH_DIR.parent
EXECUTOR_ENV = "ADCHAIN_BENCH_EXECUTOR"  # JSON config of the multiprocess executor of the benchmark's job
WARM_ENV = "ADCHAIN_BENCH_WARM_JOB"  # "1": resolve the job when this module is imported (in a forkserver preload)
NO_SCORING_ENV = "ADCHAIN_BENCH_NO_SCORING"  # "1": diagnostic only, stub the consistency scoring of image steps

# What the project's .dagster_home/dagster.yaml sets (telemetry off, nux off, python log level).
BASE_INSTANCE_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
python_logs:
  python_log_level: INFO
"""

# Modules a forkserver can import once so that no step process imports them again: the project, the Gemini
# backend (google-genai, imported lazily by the image_model resource), and Dagster's sqlite storage (imported
# by DagsterInstance.from_ref in every step process).
PRELOAD_PLUS = [
    "adchain_assets.definitions",
    "adchain_assets.providers.images.gemini",
    "google.genai",
    "adchain_assets.vision.consistency",  # the image steps' consistency checks (numpy, OpenCV, dlib); skipped if absent
    "numpy",
    "cv2",
    "dlib",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.runs.sqlite",
    "dagster._core.storage.event_log.sqlite",
    "dagster._core.storage.schedules.sqlite",
]
NOOP_COMPUTE_LOGS = """\
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""


@dataclass(frozen=True)
class Setup:
    """An executor set-up: the multiprocess executor's config (None: the project's own job, unchanged),
    whether the forkserver also resolves the job at preload, and extra dagster.yaml."""

    name: str
    description: str
    executor: Optional[dict] = None
    warm_job: bool = False
    instance_yaml: str = ""
    no_scoring: bool = False
    code: Optional[str] = None  # another checkout of the project (``--baseline``), imported instead of this one


SETUPS = {
    s.name: s
    for s in [
        Setup("spawn", "multiprocess, default start method (spawn), max_concurrent 8", {"max_concurrent": 8}),
        Setup("project", "the project's own job and executor as they are (definitions.campaign_executor)"),
        Setup(
            "preload",
            "forkserver preloading the project, google-genai and Dagster's sqlite storage",
            {"max_concurrent": 8, "start_method": {"forkserver": {"preload_modules": PRELOAD_PLUS}}},
        ),
        Setup(
            "preload-warm",
            "as preload, and the forkserver also resolves the campaign job and loads the face models once",
            {"max_concurrent": 8, "start_method": {"forkserver": {"preload_modules": ["throughput", *PRELOAD_PLUS]}}},
            warm_job=True,
        ),
        Setup(
            "preload-warm-nologs",
            "as preload-warm, and dagster.yaml compute_logs: NoOpComputeLogManager",
            {"max_concurrent": 8, "start_method": {"forkserver": {"preload_modules": ["throughput", *PRELOAD_PLUS]}}},
            warm_job=True,
            instance_yaml=NOOP_COMPUTE_LOGS,
        ),
        Setup(
            "no-scoring",
            "DIAGNOSTIC: as preload-warm with the image steps' consistency scoring stubbed out (not a real set-up)",
            {"max_concurrent": 8, "start_method": {"forkserver": {"preload_modules": ["throughput", *PRELOAD_PLUS]}}},
            warm_job=True,
            no_scoring=True,
        ),
    ]
}
DEFAULT_SETUP = "project"


# ---------------------------------------------------------------------------------------------------------
# The benchmark's job: the project's assets and resources under another executor (the project's executor is
# `multiprocess_executor.configured({...})`, which ignores `execution` run config, so it cannot be varied).


SENSOR_SCENES_ENV = "ADCHAIN_BENCH_SENSOR_SCENES"  # scenes per campaign the benchmark's sensor requests


@functools.cache
def _bench_definitions():
    """The project's assets and resources, the campaign job under the set-up's executor, and a sensor that
    requests one run per brief on its first tick (how runs reach the queue and the daemon)."""
    from dagster import (
        AssetSelection,
        DefaultSensorStatus,
        Definitions,
        RunRequest,
        SensorResult,
        define_asset_job,
        multiprocess_executor,
        sensor,
    )

    from adchain_assets.definitions import defs
    from adchain_assets.defs.jobs import CAMPAIGN_JOB

    # the set-up's executor, or (set-up `project`) the project's own
    executor = multiprocess_executor.configured(json.loads(os.environ[EXECUTOR_ENV])) if os.environ.get(EXECUTOR_ENV) else defs.executor
    job = define_asset_job(CAMPAIGN_JOB, selection=AssetSelection.all())

    @sensor(job=job, minimum_interval_seconds=1, default_status=DefaultSensorStatus.RUNNING)
    def bench_all_briefs(context):
        if context.cursor:
            return SensorResult(run_requests=[], cursor=context.cursor)
        scenes = int(os.environ.get(SENSOR_SCENES_ENV) or "2")
        briefs = sorted((Path(os.environ["ADCHAIN_DATA_DIR"]) / "briefs").glob("*.yaml"))
        requests = [
            RunRequest(run_key=p.stem, partition_key=p.stem, asset_selection=_selection(scenes)) for p in briefs
        ]
        return SensorResult(run_requests=requests, cursor="requested")

    return Definitions(
        assets=defs.assets, resources=defs.resources, jobs=[job], sensors=[bench_all_briefs], executor=executor
    )


def _location():
    return _bench_definitions()


try:  # the lazy-definitions entry point the workspace loads (module throughput, attribute bench_location)
    from dagster import definitions as _definitions_entry_point
except ImportError:  # pragma: no cover - older Dagster
    _definitions_entry_point = None
bench_location = _definitions_entry_point(_location) if _definitions_entry_point else _location


@functools.cache
def _bench_job():
    from adchain_assets.defs.jobs import CAMPAIGN_JOB

    return _bench_definitions().resolve_job_def(CAMPAIGN_JOB)


def bench_campaign_job():
    """Importable by path (module ``throughput``), so that step processes can reconstruct it."""
    return _bench_job()


def _stub_scoring() -> None:
    """Diagnostic only: image steps skip the consistency scoring (so that orchestration can be told apart)."""
    import adchain_assets.defs.images as chains

    if hasattr(chains, "score_image"):
        chains.score_image = lambda *args, **kwargs: []


def _warm() -> None:
    """What a forkserver preloading this module does once, so that no step process does it again."""
    _bench_job()
    try:  # the face models of the consistency checks, when the package has them
        from adchain_assets.vision import consistency

        getattr(consistency, "_get_models", lambda: None)()
    except Exception:  # noqa: BLE001 - optional: a package without the checks, or without dlib
        pass


if os.environ.get(NO_SCORING_ENV) == "1":
    _stub_scoring()
if os.environ.get(WARM_ENV) == "1" and os.environ.get(EXECUTOR_ENV):
    _warm()  # imported by a forkserver's preload: every step process forks with the job resolved


# ---------------------------------------------------------------------------------------------------------
# Briefs


SCENES = [
    (
        ["bottle"],
        "The bottle alone on a white marble vanity at dawn, beside a small dish of pearls",
        "Close-up of the bottle on the vanity, first light just touching the rose-gold cap",
        "The same bottle, sunlight now filling the glass and throwing pink caustics on the marble",
    ),
    (
        ["woman", "bottle"],
        "The woman by a tall window, holding the bottle in her right hand at chest height",
        "She lifts the bottle from the vanity toward the window light",
        "She holds the bottle near her collarbone and looks at it, smiling",
    ),
    (
        ["woman", "bottle"],
        "The woman spraying the perfume onto her left wrist, a fine mist catching the light",
        "Her finger rests on the atomiser, wrist raised, the bottle at eye level",
        "The mist hangs in the sunbeam, her eyes half closed",
    ),
    (
        ["woman", "bottle"],
        "The woman with eyes closed, savouring the scent, the bottle on the windowsill beside her",
        "She brings her wrist to her face and breathes in",
        "She opens her eyes and smiles toward the camera, the bottle glowing on the windowsill",
    ),
]


def brief_yaml(campaign: str, scenes: int) -> str:
    """An n-scene brief (1 character + 1 product) adapted from aurora-perfume; the campaign id is in the product
    description, so no two campaigns share a request (the generation cache is shared by a data folder)."""
    lines = [
        f"title: Benchmark {campaign}",
        'aspect_ratio: "9:16"',
        "reference_mode: chain",
        "look:",
        "  style: cinematic, shallow depth of field, 35 mm film grain",
        "  color_palette: warm gold, ivory, blush",
        "  lighting: soft window light at golden hour",
        "subjects:",
        "  - id: bottle",
        "    kind: product",
        f"    description: Faceted crystal perfume bottle, rose-gold cap, pale pink liquid, batch {campaign}",
        "  - id: woman",
        "    kind: character",
        "    description: Woman, 32 years old, shoulder-length wavy chestnut hair, emerald green eyes",
        "scenes:",
    ]
    for k in range(1, scenes + 1):
        subjects, reference, start, end = SCENES[(k - 1) % len(SCENES)]
        tag = f" (shot {k})" if k > len(SCENES) else ""
        lines += [
            f"  - subjects: [{', '.join(subjects)}]",
            f"    reference: {reference}{tag}",
            f"    start: {start}{tag}",
            f"    end: {end}{tag}",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Worker side (a subprocess per measurement; the environment is set before anything of the project is imported)


def _slots(scenes: int):
    from adchain_assets.plan.references import CHAINS, Slot

    return [Slot(chain, k) for k in range(1, scenes + 1) for chain in CHAINS]


def _selection(scenes: int) -> list:
    """The campaign's images and its storyboard sheet: what `adchain materialize` ran before clips were added.

    Fixed here rather than taken from ``chains.run_selection`` so that the benchmark measures the image chains
    only (clips and the ad come after the last image and make no image-model call).
    """
    from dagster import AssetKey

    return _asset_keys(_slots(scenes)) + [AssetKey("storyboard")]


def _failures(result) -> list:
    return [
        f"{event.step_key}: {event.step_failure_data.error.message.strip()[:300]}"
        for event in result.all_events
        if event.is_step_failure
    ]


def _events(instance, run_id: str) -> list:
    return [
        [entry.timestamp, entry.dagster_event.event_type_value, entry.step_key]
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None
    ]


def _run_campaign(campaign: str, scenes: int, use_project_job: bool) -> dict:
    """One run of the campaign job on the campaign's partition, as `adchain materialize` starts it."""
    from dagster import DagsterInstance, execute_job, reconstructable

    from adchain_assets.cli.runs import QUIET, campaign_job
    from adchain_assets.defs.partitions import campaigns

    instance = DagsterInstance.get()
    if not instance.has_dynamic_partition(campaigns.name, campaign):
        instance.add_dynamic_partitions(campaigns.name, [campaign])
    if use_project_job:
        job = reconstructable(campaign_job)
    else:
        import throughput

        job = reconstructable(throughput.bench_campaign_job)
    started = time.time()
    result = execute_job(
        job,
        instance=instance,
        tags={"dagster/partition": campaign},
        run_config=QUIET,
        asset_selection=_selection(scenes),
    )
    finished = time.time()
    return {
        "campaign": campaign,
        "success": result.success,
        "failures": _failures(result),
        "started": started,
        "finished": finished,
        "events": _events(instance, result.run_id),
    }


def _serial_loop(campaign: str, scenes: int, out_dir: str) -> dict:
    """The seed's way: 3n calls one after another through the generator, each shown the previous image."""
    from adchain_assets.defs.resources import CampaignBriefs
    from adchain_assets.plan.prompts import compose_prompt
    from adchain_assets.plan.references import CHAINS, Slot, shown_references
    from adchain_assets.providers.images.base import ImageRequest, ReferenceImage
    from adchain_assets.providers.images.gemini import GeminiGenerator
    from adchain_assets.settings import Settings

    settings = Settings.from_env()
    brief = CampaignBriefs(data_dir=settings.data_dir, max_scenes=settings.max_scenes).load(campaign).brief
    generator = GeminiGenerator(api_key=os.environ["GEMINI_API_KEY"], base_url=os.environ["GEMINI_BASE_URL"])
    made: dict = {}
    started = time.time()
    for chain in CHAINS:
        for k in range(1, scenes + 1):
            slot = Slot(chain, k)
            shown = shown_references(slot, brief.reference_mode)
            request = ImageRequest(
                prompt=compose_prompt(brief, slot, shown),
                references=[ReferenceImage(asset=ref.key, png=made[ref]) for ref in shown],
                aspect_ratio=brief.aspect_ratio,
            )
            made[slot] = generator.generate(request).png
            path = Path(out_dir) / f"scene_{k}_{chain}.png"  # the seed saves every image as it goes
            path.write_bytes(made[slot])
    return {"started": started, "finished": time.time(), "images": len(made)}


def _in_process(campaigns: list, scenes: int) -> dict:
    """execute_in_process (in-process executor) on the instance in DAGSTER_HOME, one run per campaign."""
    from dagster import DagsterInstance

    from adchain_assets.definitions import defs
    from adchain_assets.defs.jobs import CAMPAIGN_JOB
    from adchain_assets.defs.partitions import campaigns as partitions_def
    from adchain_assets.settings import Settings
    from adchain_assets.store.files import CampaignFiles

    instance = DagsterInstance.get()
    job = defs.resolve_job_def(CAMPAIGN_JOB)
    files = CampaignFiles(base_path=Settings.from_env().data_dir)
    runs = []
    for campaign in campaigns:
        instance.add_dynamic_partitions(partitions_def.name, [campaign])
        slots = _slots(scenes)
        started, cpu_started = time.time(), _cpu_now()
        result = job.execute_in_process(
            partition_key=campaign,
            instance=instance,
            asset_selection=_asset_keys(slots),
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
        finished, cpu_finished = time.time(), _cpu_now()
        latencies = [float(files.read_image(campaign, s).provenance["latency_s"]) for s in slots]
        runs.append(
            {
                "campaign": campaign,
                "success": result.success,
                "failures": _failures(result),
                "started": started,
                "finished": finished,
                "images": len(slots),
                "cpu_s": cpu_finished - cpu_started,
                "model_s": sum(latencies),
                "events": _events(instance, result.run_id),
            }
        )
    return {"runs": runs}


def _cpu_now() -> float:
    """CPU seconds of this process and of the children it waited for (user + system)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _prepare(campaigns: list) -> dict:
    """Create the instance's storage and the partitions once, before workers start at the same time (twenty
    processes creating a fresh sqlite instance together race on its schema stamp)."""
    from dagster import DagsterInstance

    instance = DagsterInstance.get()
    instance.add_dynamic_partitions("campaigns", list(campaigns))
    return {"partitions": len(campaigns)}


def _wait_for_runs(expected: int, timeout_s: float) -> dict:
    """Poll the instance until ``expected`` runs have finished; their events and outcomes."""
    from dagster import DagsterInstance, DagsterRunStatus

    finished_states = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    instance = DagsterInstance.get()
    deadline = time.time() + timeout_s
    while True:
        runs = instance.get_runs()
        done = [run for run in runs if run.status in finished_states]
        if len(done) >= expected or time.time() > deadline:
            break
        time.sleep(1.0)
    records = []
    for run in runs:
        events = _events(instance, run.run_id)
        failures = [f"{step}: {kind}" for _, kind, step in events if kind == "STEP_FAILURE"]
        records.append(
            {
                "campaign": run.tags.get("dagster/partition"),
                "status": run.status.value,
                "success": run.status == DagsterRunStatus.SUCCESS,
                "failures": failures,
                "events": events,
            }
        )
    return {"runs": records, "timed_out": len(done) < expected}


def _asset_keys(slots):
    from dagster import AssetKey

    return [AssetKey(slot.key_path) for slot in slots]


def worker(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    kind = spec["kind"]
    if kind == "campaign":
        result = _run_campaign(spec["campaign"], spec["scenes"], spec["use_project_job"])
    elif kind == "serial":
        result = _serial_loop(spec["campaign"], spec["scenes"], spec["out_dir"])
    elif kind == "wait":
        result = _wait_for_runs(spec["runs"], spec["timeout_s"])
    elif kind == "prepare":
        result = _prepare(spec["campaigns"])
    elif kind == "in_process":
        if spec.get("no_scoring"):
            _stub_scoring()
        result = _in_process(spec["campaigns"], spec["scenes"])
    else:
        raise ValueError(kind)
    Path(spec["result"]).write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------------------
# Parent side: the server, the measurements, the table


def _server_class():
    sys.path.insert(0, str(PROJECT))
    from adchain_assets_tests.gemini_server import FakeGemini

    class TimedGemini(FakeGemini):
        """Records when each reply was ready (after the simulated latency), next to ``received_at``."""

        def default_reply(self, request):
            reply = super().default_reply(request)
            request.replied_at = time.monotonic()
            return reply

    return TimedGemini


# time.monotonic() is system-wide on Linux; event log timestamps are time.time(): convert the server's times.
MONO_TO_WALL = time.time() - time.monotonic()


@dataclass
class Call:
    received: float  # wall clock
    replied: float
    prompt: str


def calls_since(server, index: int) -> list[Call]:
    return [
        Call(r.received_at + MONO_TO_WALL, r.replied_at + MONO_TO_WALL, r.prompt_text)
        for r in server.requests[index:]
        if getattr(r, "replied_at", None) is not None
    ]


_PURPOSE = re.compile(r"^(Reference image|First frame of the video clip|Last frame of the video clip) of scene (\d+) ")
_CHAIN = {"Reference image": "reference", "First frame of the video clip": "start", "Last frame of the video clip": "end"}


def step_of(prompt: str) -> Optional[str]:
    match = _PURPOSE.match(prompt)
    return f"{_CHAIN[match[1]]}__scene_{match[2]}" if match else None


@dataclass
class Bench:
    python: str
    base_url: str
    server: Any
    keep: bool = False
    roots: list = field(default_factory=list)

    def fresh_root(self, campaigns: dict[str, int], instance_yaml: str = "") -> Path:
        root = Path(tempfile.mkdtemp(prefix="adchain-bench-"))
        self.roots.append(root)
        (root / "data" / "briefs").mkdir(parents=True)
        for campaign, scenes in campaigns.items():
            (root / "data" / "briefs" / f"{campaign}.yaml").write_text(brief_yaml(campaign, scenes))
        (root / "home").mkdir()
        (root / "home" / "dagster.yaml").write_text(BASE_INSTANCE_YAML + instance_yaml)
        return root

    def env(self, root: Path, setup: Optional[Setup] = None, base_url: Optional[str] = None, code: Optional[str] = None) -> dict:
        env = dict(os.environ)
        env.update(
            ADCHAIN_BENCH_MARK=root.name,
            DAGSTER_HOME=str(root / "home"),
            ADCHAIN_DATA_DIR=str(root / "data"),
            ADCHAIN_IMAGE_BACKEND="gemini",
            GEMINI_API_KEY="bench",
            GEMINI_BASE_URL=base_url or self.base_url,
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(BENCH_DIR), code or (setup.code if setup else None) or str(PROJECT), env.get("PYTHONPATH")])
            ),
        )
        for name in (EXECUTOR_ENV, WARM_ENV, NO_SCORING_ENV):
            env.pop(name, None)
        if setup is not None and setup.executor is not None:
            env[EXECUTOR_ENV] = json.dumps(setup.executor)
            env[WARM_ENV] = "1" if setup.warm_job else "0"
            env[NO_SCORING_ENV] = "1" if setup.no_scoring else "0"
        return env

    def start_worker(self, root: Path, spec: dict, env: dict, tag: str):
        spec_path = root / f"spec-{tag}.json"
        spec["result"] = str(root / f"result-{tag}.json")
        spec_path.write_text(json.dumps(spec))
        code = "import sys, throughput; throughput.worker(sys.argv[1])"
        log = open(root / f"worker-{tag}.log", "w")
        process = subprocess.Popen([self.python, "-c", code, str(spec_path)], env=env, cwd=root, stdout=log, stderr=log)
        log.close()  # the child has its own copy
        return process, Path(spec["result"]), root / f"worker-{tag}.log"

    @staticmethod
    def finish(process, result_path: Path, log_path: Path, timeout_s: Optional[float] = None) -> dict:
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(f"worker timed out after {timeout_s:.0f} s; log {log_path}")
        if process.returncode != 0 or not result_path.exists():
            tail = log_path.read_text()[-3000:]
            raise RuntimeError(f"worker failed ({process.returncode}); log {log_path}:\n{tail}")
        return json.loads(result_path.read_text())

    def cleanup(self) -> None:
        if not self.keep:
            for root in self.roots:
                shutil.rmtree(root, ignore_errors=True)


MARK_ENV = "ADCHAIN_BENCH_MARK"  # set in every worker's environment; inherited by every process it starts


class CpuSampler:
    """CPU seconds of every process carrying ``MARK_ENV=mark`` (workers, daemon, code server, run workers,
    forkservers, step processes), sampled from /proc every ``interval`` s; a process's last fraction of a
    second before it exits is missed."""

    def __init__(self, mark: str, interval: float = 0.2):
        import threading

        self.needle = f"{MARK_ENV}={mark}".encode()
        self.interval = interval
        self.members: dict[tuple[int, str], float] = {}
        self.strangers: set[tuple[int, str]] = set()
        self.tick = os.sysconf("SC_CLK_TCK")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "CpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)
        self.sample()

    def sample(self) -> None:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                key = (int(name), fields[19].decode())  # pid, start time: a reused pid is another process
                if key in self.strangers:
                    continue
                if key not in self.members:
                    with open(f"/proc/{name}/environ", "rb") as f:
                        if self.needle not in f.read().split(b"\0"):
                            self.strangers.add(key)
                            continue
                self.members[key] = (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime
            except (OSError, IndexError, ValueError):
                continue

    @property
    def cpu_s(self) -> float:
        return sum(self.members.values())

    @property
    def processes(self) -> int:
        return len(self.members)


def load_now() -> float:
    return round(os.getloadavg()[0], 2)


def span_of(calls: list[Call]) -> float:
    return max(c.replied for c in calls) - min(c.received for c in calls)


def in_flight(calls: list[Call]) -> tuple[float, int]:
    """Time-weighted average number of calls in flight over the span, and the peak."""
    busy = sum(c.replied - c.received for c in calls)
    points = sorted([(c.received, 1) for c in calls] + [(c.replied, -1) for c in calls], key=lambda p: (p[0], p[1]))
    level = peak = 0
    for _, delta in points:
        level += delta
        peak = max(peak, level)
    return busy / span_of(calls), peak


BREAKDOWN = {
    "launch": "orchestrator: last parent's STEP_SUCCESS to STEP_WORKER_STARTING (includes the pool claim)",
    "process_start": "STEP_WORKER_STARTING to STEP_WORKER_STARTED: process start, instance from ref",
    "step_setup": "STEP_WORKER_STARTED to STEP_START: execution plan, resources, compute log capture",
    "inputs": "STEP_START to the last STEP_INPUT: loading the parent images through the IO manager",
    "before_call": "last STEP_INPUT (or STEP_START) to the request at the server: brief, take, prompt, client",
    "model": "request received to reply ready at the server (the simulated latency)",
    "after_call": "reply ready to STEP_OUTPUT: decode, provenance, consistency scoring, metadata",
    "output": "STEP_OUTPUT to STEP_SUCCESS: IO manager write, materialization and check events",
    "overhead": "STEP_WORKER_STARTING to STEP_SUCCESS minus model",
}


def step_breakdown(events: list, calls: list[Call]) -> dict:
    """Per image step: where its time went, from the event log and the server's request times (means)."""
    by_step: dict[str, dict[str, float]] = {}
    for timestamp, kind, step in events:
        if not step or step == "storyboard":
            continue
        marks = by_step.setdefault(step, {})
        if kind in ("STEP_INPUT", "STEP_SUCCESS"):
            marks[kind] = timestamp  # the last one
        else:
            marks.setdefault(kind, timestamp)  # the first one
    call_of = {step_of(c.prompt): c for c in calls}
    rows = []
    needed = ("STEP_WORKER_STARTING", "STEP_WORKER_STARTED", "STEP_START", "STEP_OUTPUT", "STEP_SUCCESS")
    for step, marks in by_step.items():
        call = call_of.get(step)
        if call is None or not all(k in marks for k in needed):
            continue
        inputs_done = marks.get("STEP_INPUT", marks["STEP_START"])
        model = call.replied - call.received
        rows.append(
            {
                "process_start": marks["STEP_WORKER_STARTED"] - marks["STEP_WORKER_STARTING"],
                "step_setup": marks["STEP_START"] - marks["STEP_WORKER_STARTED"],
                "inputs": inputs_done - marks["STEP_START"],
                "before_call": call.received - inputs_done,
                "model": model,
                "after_call": marks["STEP_OUTPUT"] - call.replied,
                "output": marks["STEP_SUCCESS"] - marks["STEP_OUTPUT"],
                "overhead": marks["STEP_SUCCESS"] - marks["STEP_WORKER_STARTING"] - model,
            }
        )
    summary = {key: (sum(r[key] for r in rows) / len(rows) if rows else float("nan")) for key in BREAKDOWN if key != "launch"}
    launches = critical_gaps(events)
    summary["launch"] = sum(launches) / len(launches) if launches else float("nan")
    summary["steps"] = len(rows)
    return summary


def critical_gaps(events: list) -> list[float]:
    """For each image step: its STEP_WORKER_STARTING minus the latest STEP_SUCCESS of its parents."""
    from adchain_assets.plan.references import Slot, upstream

    success, starting = {}, {}
    for timestamp, kind, step in events:
        if kind == "STEP_SUCCESS":
            success[step] = timestamp
        elif kind == "STEP_WORKER_STARTING":
            starting[step] = timestamp
    gaps = []
    for step, launched in starting.items():
        if not step or step == "storyboard":
            continue
        chain, _, scene = step.partition("__scene_")
        parents = ["__".join(p.key_path) for p in upstream(Slot(chain, int(scene)))]
        done = [success[p] for p in parents if p in success]
        if done:
            gaps.append(launched - max(done))
    return gaps


def run_one_campaign(bench: Bench, setup: Setup, scenes: int, tag: str) -> dict:
    campaign = f"bench-{tag}"
    root = bench.fresh_root({campaign: scenes}, setup.instance_yaml)
    first = len(bench.server.requests)
    spec = {"kind": "campaign", "campaign": campaign, "scenes": scenes, "use_project_job": setup.executor is None}
    load = load_now()
    with CpuSampler(root.name) as sampler:
        result = bench.finish(*bench.start_worker(root, spec, bench.env(root, setup), tag))
    cpu = sampler.cpu_s
    calls = calls_since(bench.server, first)
    if not result["success"] or len(calls) != 3 * scenes:
        raise RuntimeError(f"{campaign}: {len(calls)} calls for {3 * scenes} images; failures: {result['failures']}")
    return {
        "setup": setup.name,
        "scenes": scenes,
        "span_s": span_of(calls),
        "run_wall_s": result["finished"] - result["started"],
        "cpu_s": cpu,
        "load_before": load,
        "steps": step_breakdown(result["events"], calls),
    }


def run_serial(bench: Bench, scenes: int, tag: str) -> dict:
    campaign = f"serial-{tag}"
    root = bench.fresh_root({campaign: scenes})
    (root / "out").mkdir()
    first = len(bench.server.requests)
    spec = {"kind": "serial", "campaign": campaign, "scenes": scenes, "out_dir": str(root / "out")}
    load = load_now()
    result = bench.finish(*bench.start_worker(root, spec, bench.env(root), tag))
    calls = calls_since(bench.server, first)
    assert len(calls) == 3 * scenes, len(calls)
    return {"scenes": scenes, "span_s": span_of(calls), "wall_s": result["finished"] - result["started"], "load_before": load}


def run_pool(bench: Bench, setup: Setup, pool: int, campaigns: int, scenes: int, tag: str, timeout_s: float) -> dict:
    names = [f"pool{pool}-c{i:02d}" for i in range(campaigns)]
    concurrency = f"concurrency:\n  pools:\n    default_limit: {pool}\n"
    root = bench.fresh_root({name: scenes for name in names}, setup.instance_yaml + concurrency)
    env = bench.env(root, setup)
    bench.finish(*bench.start_worker(root, {"kind": "prepare", "campaigns": names}, env, f"{tag}-prepare"))
    first = len(bench.server.requests)
    load = load_now()
    sampler = CpuSampler(root.name).__enter__()
    started = time.time()
    # A process per campaign, as twenty `adchain materialize` commands started together. (Runs in threads of
    # one process deadlock in Dagster 1.13: every run's log manager calls logging.config.dictConfig.)
    workers = [
        bench.start_worker(
            root,
            {"kind": "campaign", "campaign": name, "scenes": scenes, "use_project_job": setup.executor is None},
            env,
            f"{tag}-{name}",
        )
        for name in names
    ]
    try:
        results = [bench.finish(*worker, timeout_s=timeout_s) for worker in workers]
    finally:
        for process, _, _ in workers:
            if process.poll() is None:
                process.kill()
        sampler.__exit__()
    wall = time.time() - started
    cpu = sampler.cpu_s
    calls = calls_since(bench.server, first)
    failed = [(r["campaign"], r["failures"]) for r in results if not r["success"]]
    if failed or len(calls) != 3 * scenes * campaigns:
        raise RuntimeError(f"pool {pool}: failed runs {failed}, {len(calls)} calls")
    average, peak = in_flight(calls)
    launch_gaps = [gap for r in results for gap in critical_gaps(r["events"])]
    return {
        "pool": pool,
        "mode": "cli",
        "campaigns": campaigns,
        "scenes": scenes,
        "calls": len(calls),
        "span_s": span_of(calls),
        "wall_s": wall,
        "first_request_after_s": min(c.received for c in calls) - started,
        "average_in_flight": average,
        "peak_in_flight": peak,
        "ideal_span_s": None,
        "load_before": load,
        "cpu_s": cpu,
        "cpu_per_image_s": cpu / len(calls),
        # The span cannot be shorter than the CPU work spread over every core, hence this ceiling on the average
        # number of calls in flight (calls x L / span) on this machine.
        "cpu_ceiling_in_flight": None,
        "mean_launch_after_parent_s": sum(launch_gaps) / len(launch_gaps) if launch_gaps else None,
        "max_launch_after_parent_s": max(launch_gaps) if launch_gaps else None,
    }


def run_pool_queued(bench: Bench, setup: Setup, pool: int, campaigns: int, scenes: int, tag: str, timeout_s: float) -> dict:
    """20 campaigns submitted at once the way a deployment starts them: a sensor requests one run per brief,
    the QueuedRunCoordinator queues them, the daemon launches them (DefaultRunLauncher: a process per run) as
    the `image_model` pool has room (op granularity)."""
    names = [f"q{pool}-c{i:02d}" for i in range(campaigns)]
    instance_yaml = setup.instance_yaml + (
        "run_coordinator:\n"
        "  module: dagster.core.run_coordinator\n"
        "  class: QueuedRunCoordinator\n"
        "  config:\n"
        "    dequeue_interval_seconds: 1\n"
        "concurrency:\n"
        "  pools:\n"
        f"    default_limit: {pool}\n"
    )
    root = bench.fresh_root({name: scenes for name in names}, instance_yaml)
    env = bench.env(root, dataclasses.replace(setup, instance_yaml=""))
    env[SENSOR_SCENES_ENV] = str(scenes)
    (root / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: throughput\n      attribute: bench_location\n"
        f"      working_directory: {BENCH_DIR}\n      location_name: bench\n"
    )
    bench.finish(*bench.start_worker(root, {"kind": "prepare", "campaigns": names}, env, f"{tag}-prepare"))
    first = len(bench.server.requests)
    load = load_now()
    sampler = CpuSampler(root.name).__enter__()
    started = time.time()
    daemon_log = open(root / "daemon.log", "w")
    daemon = subprocess.Popen(
        [str(Path(bench.python).parent / "dagster-daemon"), "run", "-w", str(root / "workspace.yaml")],
        env=env, cwd=root, stdout=daemon_log, stderr=daemon_log,
    )
    daemon_log.close()
    try:
        spec = {"kind": "wait", "runs": campaigns, "timeout_s": timeout_s}
        result = bench.finish(*bench.start_worker(root, spec, env, f"{tag}-wait"))
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        sampler.__exit__()
    wall = time.time() - started
    cpu = sampler.cpu_s
    calls = calls_since(bench.server, first)
    failed = [(r["campaign"], r["failures"]) for r in result["runs"] if not r["success"]]
    if result["timed_out"] or failed or len(calls) != 3 * scenes * campaigns:
        raise RuntimeError(
            f"queued pool {pool}: timed out={result['timed_out']}, runs {len(result['runs'])}, failed {failed[:3]},"
            f" {len(calls)} calls; daemon log {root / 'daemon.log'}"
        )
    average, peak = in_flight(calls)
    launch_gaps = [gap for r in result["runs"] for gap in critical_gaps(r["events"])]
    return {
        "pool": pool,
        "mode": "queued",
        "campaigns": campaigns,
        "scenes": scenes,
        "calls": len(calls),
        "span_s": span_of(calls),
        "wall_s": wall,
        "first_request_after_s": min(c.received for c in calls) - started,
        "average_in_flight": average,
        "peak_in_flight": peak,
        "ideal_span_s": None,
        "load_before": load,
        "cpu_s": cpu,
        "cpu_per_image_s": cpu / len(calls),
        "cpu_ceiling_in_flight": None,
        "mean_launch_after_parent_s": sum(launch_gaps) / len(launch_gaps) if launch_gaps else None,
        "max_launch_after_parent_s": max(launch_gaps) if launch_gaps else None,
    }


def run_in_process(bench: Bench, server0, scenes: int, tag: str, no_scoring: bool = False, code: Optional[str] = None) -> dict:
    names = [f"inproc-{tag}-{i}" for i in range(3)]
    root = bench.fresh_root({name: scenes for name in names})
    spec = {"kind": "in_process", "campaigns": names, "scenes": scenes, "no_scoring": no_scoring}
    result = bench.finish(*bench.start_worker(root, spec, bench.env(root, base_url=server0.base_url, code=code), tag))
    runs = []
    for run in result["runs"]:
        if not run["success"]:
            raise RuntimeError(f"{run['campaign']}: {run['failures']}")
        wall = run["finished"] - run["started"]
        runs.append(
            {
                "campaign": run["campaign"],
                "wall_s": wall,
                "model_s": run["model_s"],
                "images": run["images"],
                "overhead_per_image_s": (wall - run["model_s"]) / run["images"],
                "cpu_per_image_s": run["cpu_s"] / run["images"] if "cpu_s" in run else None,
            }
        )
    return {"scenes": scenes, "runs": runs}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=None, help="simulated seconds per model call (default 3)")
    parser.add_argument("--quick", action="store_true", help="L = 0.5 s, 8 campaigns, 2 set-ups compared")
    parser.add_argument("--json", type=Path, help="also write the table (and the details) as JSON here")
    parser.add_argument("--setup", default=DEFAULT_SETUP, choices=sorted(SETUPS), help="set-up for the main rows")
    parser.add_argument("--compare", nargs="*", default=None, choices=sorted(SETUPS), help="set-ups to compare (4 scenes)")
    parser.add_argument("--pools", type=int, nargs="*", default=None, help="pool limits P to measure (default 4)")
    parser.add_argument("--campaigns", type=int, default=None, help="campaigns started at once (default 20)")
    parser.add_argument("--pool-setup", default=None, choices=sorted(SETUPS), help="set-up for the pool rows")
    parser.add_argument(
        "--pool-mode", nargs="*", default=None, choices=["queued", "cli"],
        help="queued (default): a sensor requests the runs, the daemon launches them; "
        "cli: one execute_job process per campaign, as `adchain materialize` (the orchestrators busy-wait on the pool)",
    )
    parser.add_argument("--pool-timeout", type=float, default=900.0, help="give up on a pool measurement after this")
    parser.add_argument("--scenes", type=int, nargs="*", default=[4, 8])
    parser.add_argument("--skip", nargs="*", default=[], choices=["span", "serial", "pool", "in_process", "compare"])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders (their paths are printed)")
    parser.add_argument(
        "--baseline", type=Path, default=None,
        help="another checkout of the project (e.g. `git worktree add /tmp/before <commit>`): every main row is "
        "measured for it (before) and for this checkout (after) in the same run, against the same servers",
    )
    args = parser.parse_args(argv)

    latency = args.latency if args.latency is not None else (0.5 if args.quick else 3.0)
    campaigns = args.campaigns or (8 if args.quick else 20)
    pools = args.pools if args.pools is not None else [4]
    compare = args.compare if args.compare is not None else (
        ["preload-warm", DEFAULT_SETUP] if args.quick else ["preload-warm", DEFAULT_SETUP, "no-scoring"]
    )
    setup = SETUPS[args.setup]
    pool_setup = SETUPS[args.pool_setup or args.setup]
    python = str(PROJECT / ".venv" / "bin" / "python") if (PROJECT / ".venv" / "bin" / "python").exists() else sys.executable

    server_class = _server_class()
    rows: list[dict] = []
    details: dict[str, Any] = {"latency_s": latency, "setup": setup.name, "setup_description": setup.description}
    began = time.time()

    variants = [("before", str(args.baseline.resolve())), ("after", None)] if args.baseline else [("", None)]
    details["variants"] = [{"name": name, "code": code or str(PROJECT)} for name, code in variants]

    def row(variant: str, name: str, value: float, target: str, ok: bool, unit: str = "s") -> None:
        rows.append({"code": variant, "measurement": name, "value": round(value, 3), "unit": unit, "target": target, "pass": ok})
        print(f"  {variant + ': ' if variant else ''}{name}: {value:.2f}{unit if unit != 'x' else ''}  (target {target}) {verdict(ok)}", flush=True)

    with server_class(latency_s=latency) as server, server_class(latency_s=0.0) as server0:
        bench = Bench(python=python, base_url=server.base_url, server=server, keep=args.keep)
        try:
            serials: dict[int, dict] = {}
            if "serial" not in args.skip:
                for scenes in args.scenes:
                    print(f"serial loop: {3 * scenes} calls ...", flush=True)
                    serials[scenes] = run_serial(bench, scenes, f"serial{scenes}")
            details["serial"] = serials
            details["setups"] = []
            for variant, code in variants:
                label = f"{variant}: " if variant else ""
                tag = variant or "this"
                main_setup = dataclasses.replace(setup, code=code)
                spans: dict[int, dict] = {}
                if "compare" not in args.skip and code is None:
                    for name in compare:
                        print(f"set-up {name}: one {4}-scene campaign ...", flush=True)
                        measured = run_one_campaign(bench, SETUPS[name], 4, f"cmp-{name}")
                        measured["description"] = SETUPS[name].description
                        details["setups"].append(measured)
                        if name == setup.name and 4 in args.scenes:
                            spans[4] = measured
                if "span" not in args.skip:
                    for scenes in args.scenes:
                        if scenes not in spans:
                            print(f"{label}span: one {scenes}-scene campaign with set-up {setup.name} ...", flush=True)
                            spans[scenes] = run_one_campaign(bench, main_setup, scenes, f"{tag}-span{scenes}")
                            if scenes == 4 and code is not None:
                                details["setups"].append({**spans[4], "setup": f"{variant}: {setup.name}"})
                for scenes in args.scenes:
                    if scenes not in spans:
                        continue
                    span = spans[scenes]["span_s"]
                    bound = (scenes + 2) * latency
                    limit = bound + 0.5 * (scenes + 2)
                    row(variant, f"span, {scenes} scenes", span, f"<= {limit:.1f} (bound (n+2)L = {bound:.1f} + 0.5 s/step)", span <= limit)
                    if scenes in serials:
                        serial = serials[scenes]["span_s"]
                        row(variant, f"span / serial loop ({serial:.1f} s), {scenes} scenes", span / serial, "<= 0.50", span <= 0.5 * serial, "x")
                    cpu_per_image = spans[scenes]["cpu_s"] / (3 * scenes)
                    row(variant, f"CPU per image, {scenes} scenes (every process of the run)", cpu_per_image, "<= 0.50", cpu_per_image <= 0.5)
                details[f"{tag}_spans"] = spans
                if "pool" not in args.skip:
                    details.setdefault("pools", [])
                    for mode, pool in [(m, p) for m in (args.pool_mode or ["queued"]) for p in pools]:
                        print(f"{label}pool {pool}: {campaigns} campaigns x 2 scenes at once ({mode}), set-up {pool_setup.name} ...", flush=True)
                        this_setup = dataclasses.replace(pool_setup, code=code)
                        if mode == "queued":
                            measured = run_pool_queued(bench, this_setup, pool, campaigns, 2, f"{tag}-q{pool}", args.pool_timeout)
                        else:
                            measured = run_pool(bench, this_setup, pool, campaigns, 2, f"{tag}-pool{pool}", args.pool_timeout)
                        measured["variant"] = variant
                        measured["ideal_span_s"] = measured["calls"] * latency / pool
                        measured["cpu_ceiling_in_flight"] = measured["calls"] * latency * (os.cpu_count() or 1) / measured["cpu_s"]
                        details["pools"].append(measured)
                        avg = measured["average_in_flight"]
                        row(
                            variant,
                            f"calls in flight, {campaigns} campaigns x 2 scenes, pool P={pool} ({mode})",
                            avg,
                            f">= {0.85 * pool:.2f} (0.85 P)",
                            avg >= 0.85 * pool,
                            "",
                        )
                        row(variant, f"CPU per image, {campaigns} campaigns, pool P={pool} (every process)",
                            measured["cpu_per_image_s"], "<= 0.50", measured["cpu_per_image_s"] <= 0.5)
                if "in_process" not in args.skip:
                    print(f"{label}in process: 3 x one 4-scene campaign, latency 0 ...", flush=True)
                    measured = run_in_process(bench, server0, 4, f"{tag}-inproc", code=code)
                    details[f"{tag}_in_process"] = measured
                    warm = measured["runs"][1:]
                    overhead = sum(r["overhead_per_image_s"] for r in warm) / len(warm)
                    row(variant, "overhead per image in process (warm runs)", overhead, "<= 0.30", overhead <= 0.3)
                    cpu_per_image = sum(r["cpu_per_image_s"] for r in warm) / len(warm)
                    row(variant, "CPU per image in process, orchestration and scoring (warm runs)", cpu_per_image, "<= 0.50",
                        cpu_per_image <= 0.5)
                    if code is None:
                        print("in process, diagnostic: the same with the consistency scoring stubbed out ...", flush=True)
                        details["in_process_no_scoring"] = run_in_process(bench, server0, 4, "inproc-noscore", no_scoring=True)
        finally:
            bench.cleanup()
            if args.keep:
                print("kept:", *map(str, bench.roots), sep="\n  ")

    details["total_s"] = time.time() - began
    print_table(rows, details, latency)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"latency_s": latency, "rows": rows, "details": details}, indent=2))
        print(f"\nJSON: {args.json}")
    return 0 if all(r["pass"] for r in rows) else 1


def print_table(rows: list[dict], details: dict, latency: float) -> None:
    print(f"\nadchain throughput, L = {latency:g} s per call, set-up {details['setup']} ({details['setup_description']})")
    variants = [v["name"] for v in details.get("variants") or [{"name": ""}]]
    for v in details.get("variants") or []:
        if v["name"]:
            print(f"  {v['name']}: {v['code']}")
    names = list(dict.fromkeys(r["measurement"] for r in rows))
    found = {(r["code"], r["measurement"]): r for r in rows}
    width = max([len(n) for n in names] + [11])
    heads = [v or "value" for v in variants]
    print(f"{'measurement':<{width}}" + "".join(f"  {h:>14}" for h in heads) + f"  {'target':<52}")
    for name in names:
        cells, target = [], ""
        for v in variants:
            r = found.get((v, name))
            if r is None:
                cells.append(f"{'-':>14}")
            else:
                target = r["target"]
                cells.append(f"{r['value']:>9.2f} {verdict(r['pass']):>4}")
        print(f"{name:<{width}}" + "".join(f"  {c}" for c in cells) + f"  {target:<52}")
    if details.get("setups"):
        print("\nper executor set-up, one 4-scene campaign (seconds; means over the 12 image steps):")
        keys = ["launch", "process_start", "step_setup", "inputs", "before_call", "after_call", "output", "overhead"]
        print(f"{'set-up':<22}{'span':>7}" + "".join(f"{k:>14}" for k in keys) + f"{'CPU/image':>11}{'load':>6}")
        for s in details["setups"]:
            print(
                f"{s['setup']:<22}{s['span_s']:>7.2f}" + "".join(f"{s['steps'][k]:>14.2f}" for k in keys)
                + f"{s['cpu_s'] / 12:>11.2f}{s['load_before']:>6.1f}"
            )
        for key in keys:
            print(f"  {key}: {BREAKDOWN[key]}")
    for p in details.get("pools") or []:
        print(
            f"\n{p.get('variant') or ''} pool {p['pool']} ({p['mode']}): {p['calls']} calls in {p['span_s']:.1f} s (ideal {p['ideal_span_s']:.1f} s), "
            f"first request {p['first_request_after_s']:.1f} s after the start, wall {p['wall_s']:.1f} s, "
            f"mean launch after parents {p['mean_launch_after_parent_s']:.2f} s (max {p['max_launch_after_parent_s']:.1f} s);\n"
            f"  CPU {p['cpu_s']:.0f} s in all = {p['cpu_per_image_s']:.2f} s per image: on {os.cpu_count()} cores at most "
            f"{p['cpu_ceiling_in_flight']:.2f} calls can be in flight on average; load average before: {p['load_before']}"
        )
    in_process = [(f"{v or 'this'}_in_process", f"{v + ': ' if v else ''}in process") for v in variants]
    for key, label in in_process + [("in_process_no_scoring", "in process, scoring stubbed (diagnostic)")]:
        if details.get(key):
            runs = details[key]["runs"]
            print(f"\n{label}, 3 runs of 12 images (wall, model, overhead/image, CPU/image; the first run is cold):", "; ".join(
                f"{r['wall_s']:.2f} s, {r['model_s']:.2f} s, {r['overhead_per_image_s']:.3f} s, {r['cpu_per_image_s']:.3f} s"
                for r in runs))
    print(f"\ntotal benchmark time {details['total_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
