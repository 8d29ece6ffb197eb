"""Fixtures for the tests that need the production stack (`make stack`): skipped unless ADCHAIN_STACK_ENV names
the env file that `make stack` wrote (`make stack-test` sets it), so plain `make test` stays fast.

The stack is real: PostgreSQL, Redis, moto's S3 server, dagster-daemon, two Celery workers and the webserver,
started by scripts/stack/up.sh. These fixtures start a fake Gemini server (the REST protocol, on loopback) and
redeploy the stack's compute tier (daemon, workers, webserver: `up.sh --restart-compute`) with the gemini
backend pointed at it, as an operator would change the workers' configuration; the databases stay up.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from adchain_assets_tests.gemini_server import FakeGemini
from adchain_assets_tests.helpers import PROJECT, SAMPLE_BRIEFS

GEMINI_PORT = int(os.environ.get("STACK_GEMINI_PORT", "55100"))
GEMINI_KEY = "stack-test-key-not-secret"


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env


@pytest.fixture(scope="session")
def stack_env_file() -> Path:
    path = os.environ.get("ADCHAIN_STACK_ENV")
    if not path or not Path(path).is_file():
        pytest.skip("the production stack is not up (make stack; make stack-test)")
    return Path(path)


@pytest.fixture(scope="session")
def fake_gemini_for_stack():
    with FakeGemini(api_key=GEMINI_KEY, port=GEMINI_PORT, latency_s=1.0) as server:
        yield server


@pytest.fixture(scope="session")
def stack(stack_env_file, fake_gemini_for_stack):
    """The stack's environment (what `source deploy/.stack/env` gives a shell), its compute tier redeployed
    with the gemini backend on the fake server; the instance is opened on it for the test's checks."""
    base = read_env_file(stack_env_file)
    deploy_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ADCHAIN_", "GEMINI_"))},
        **{k: v for k, v in base.items() if k.startswith("STACK_") and k.endswith("_PORT")},
        "ADCHAIN_IMAGE_BACKEND": "gemini",
        "GEMINI_API_KEY": GEMINI_KEY,
        "GEMINI_BASE_URL": fake_gemini_for_stack.base_url,
        "ADCHAIN_MAX_SCENES": "4",
    }
    done = subprocess.run(
        [str(PROJECT / "scripts" / "stack" / "up.sh"), "--restart-compute"],
        env=deploy_env, cwd=PROJECT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"up.sh --restart-compute failed:\n{done.stdout}\n{done.stderr}"
    env = read_env_file(stack_env_file)
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def instance(stack):
    import dagster as dg

    with dg.DagsterInstance.get() as opened:
        yield opened


def reset(fake: FakeGemini, latency_s: float = 1.0) -> FakeGemini:
    """Forget what the session's fake has seen, so a test counts only its own requests."""
    with fake._lock:
        fake.requests.clear()
        fake.replies.clear()
        fake.max_in_flight = fake.in_flight
    fake.latency_s = latency_s
    return fake


def unique_prefix() -> str:
    return "t" + uuid.uuid4().hex[:6]


def write_brief(briefs_dir: Path, campaign: str, scenes: int = 2) -> Path:
    """A copy of the sample perfume brief cut to ``scenes`` scenes, its prompts naming ``campaign``, as
    ``<campaign>.yaml``; written whole at
    once (a temporary then a rename) so the sensor never reads half a file."""
    brief = yaml.safe_load((SAMPLE_BRIEFS / "aurora-perfume.yaml").read_text())
    shutil.copytree(SAMPLE_BRIEFS / "refs", briefs_dir / "refs", dirs_exist_ok=True)  # its brand's logo
    brief["scenes"] = brief["scenes"][:scenes]
    for scene in brief["scenes"]:  # prompts of its own, so no image comes from another campaign's cache entry
        for chain in ("reference", "start", "end"):
            scene[chain] = f"{scene[chain]}; shot for {campaign}"
    brief["title"] = f"{brief['title']} ({campaign})"
    path = briefs_dir / f"{campaign}.yaml"
    temporary = briefs_dir / f".{campaign}.yaml.tmp"
    temporary.write_text(yaml.safe_dump(brief, sort_keys=False))
    temporary.rename(path)
    return path


def wait_until(what: str, predicate, timeout_s: float, poll_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)
