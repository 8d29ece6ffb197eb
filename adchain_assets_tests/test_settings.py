"""One source of configuration: every variable read by Settings.from_env, and a value the project cannot use is an
error naming the variable, for the CLI and for the code location the UI loads, before anything runs."""

import re
import subprocess
import sys

import pytest

from adchain_assets.settings import VARIABLES, Settings, SettingsError

from .helpers import PROJECT

BAD = [
    ("ADCHAIN_IMAGE_BACKEND", "dall-e", "use one of preview, gemini"),
    ("ADCHAIN_VIDEO_BACKEND", "sora", "use one of preview, veo"),
    ("ADCHAIN_VIDEO_ROUTE", "aws", "use one of gemini, vertex"),
    ("ADCHAIN_EXECUTOR", "threads", "use one of multiprocess, celery"),
    ("ADCHAIN_MAX_SCENES", "eight", "must be a whole number from 1 to 64"),
    ("ADCHAIN_MAX_SCENES", "0", "must be a whole number from 1 to 64"),
    ("ADCHAIN_STEP_RETRY_DELAY_S", "soon", "must be a number of seconds from 0 to 3600"),
    ("ADCHAIN_STEP_RETRY_DELAY_S", "-5", "must be a number of seconds from 0 to 3600"),
]


@pytest.mark.parametrize("name, value, reason", BAD)
def test_a_value_the_project_cannot_use_names_the_variable(name, value, reason):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({name: value})
    assert str(error.value).startswith(f"{name}={value!r}: ") and reason in str(error.value)


def test_defaults_and_values_are_read_in_one_place():
    settings = Settings.from_env({})
    assert settings.data_dir == "data" and settings.storage_url == "data" and settings.max_scenes == 8
    settings = Settings.from_env({"ADCHAIN_DATA_DIR": "/srv/ads", "ADCHAIN_MAX_SCENES": "3",
                                  "GEMINI_API_KEY": "AIza-secret-7f", "ADCHAIN_EXECUTOR": "celery",
                                  "ADCHAIN_CELERY_BROKER": "redis://h:6379/0"})
    assert (settings.data_dir, settings.max_scenes, settings.executor) == ("/srv/ads", 3, "celery")
    assert settings.celery_broker_and_backend() == ("redis://h:6379/0", "redis://h:6379/0")
    assert settings.gemini_api_key == "AIza-secret-7f" and "AIza-secret-7f" not in repr(settings)  # never shown


def test_every_variable_settings_reads_is_in_the_table():
    source = (PROJECT / "adchain_assets" / "settings.py").read_text()
    read = {name for name in re.findall(r'"((?:ADCHAIN|GEMINI|GOOGLE)_[A-Z_]+)"', source)}
    assert read <= {v.name for v in VARIABLES}, read - {v.name for v in VARIABLES}


@pytest.mark.subprocess
def test_the_code_location_and_the_cli_name_the_bad_variable(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "ADCHAIN_MAX_SCENES": "eight", "DAGSTER_HOME": str(tmp_path)}
    location = subprocess.run([sys.executable, "-c", "import adchain_assets.definitions"], env=env, cwd=PROJECT,
                              capture_output=True, text=True, timeout=120)
    assert location.returncode != 0
    assert "SettingsError: ADCHAIN_MAX_SCENES='eight': must be a whole number from 1 to 64" in location.stderr
    cli = subprocess.run([sys.executable, "-m", "adchain_assets.cli", "status", "aurora-perfume"], env=env,
                         cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2 and cli.stderr.strip() == (
        "adchain: ADCHAIN_MAX_SCENES='eight': must be a whole number from 1 to 64")
