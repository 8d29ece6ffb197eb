"""Shared fixtures: a private data folder with the sample briefs, and definitions built over it."""

import os
import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance

from .helpers import PROJECT, SAMPLE_BRIEFS, SHEETS_SAMPLES


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh data folder with the two chain-mode sample briefs (aurora-perfume, muse-portrait) and their photos;
    tests of the sheets sample (lumen-dive) copy it themselves."""
    root = tmp_path / "data"
    shutil.copytree(SAMPLE_BRIEFS, root / "briefs", ignore=shutil.ignore_patterns(*SHEETS_SAMPLES))
    return root


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


@pytest.fixture
def fake_gemini(monkeypatch):
    """A local server speaking Gemini's REST protocol, with the environment pointing the gemini backend at it."""
    from .gemini_server import FakeGemini

    with FakeGemini(api_key="test-key-not-secret") as server:
        monkeypatch.setenv("GEMINI_API_KEY", "test-key-not-secret")
        monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
        yield server


@pytest.fixture
def cli_env(tmp_path, data_dir):
    """The environment of an `adchain` process: its own DAGSTER_HOME (with the project's dagster.yaml) and data."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / ".dagster_home" / "dagster.yaml", home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADCHAIN_", "GEMINI_"))}
    return {**env, "DAGSTER_HOME": str(home), "ADCHAIN_DATA_DIR": str(data_dir)}
