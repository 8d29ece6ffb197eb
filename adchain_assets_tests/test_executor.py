"""The campaign job's executor choice, and the Celery workers' settings module (deploy/celery)."""

import importlib.util

import pytest

from adchain_assets.defs.jobs import build_executor
from adchain_assets.settings import CELERY_SETTINGS, Settings, SettingsError

from .helpers import PROJECT

WORKER_CONFIG = PROJECT / "deploy" / "celery" / "dagster_celery_config.py"


def load_worker_config():
    spec = importlib.util.spec_from_file_location("dagster_celery_config", WORKER_CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_workers_read_the_broker_from_the_environment_and_the_executors_own_settings(monkeypatch):
    monkeypatch.setenv("ADCHAIN_CELERY_BROKER", "redis://broker.example:6379/0")
    monkeypatch.delenv("ADCHAIN_CELERY_BACKEND", raising=False)
    config = load_worker_config()
    assert config.broker_url == "redis://broker.example:6379/0"
    assert config.result_backend == config.broker_url  # as the executor: the backend defaults to the broker
    for name, value in CELERY_SETTINGS.items():
        assert getattr(config, name) == value
    # a lost task must be queued again, never reported as failed (dagster-celery would wait for ever)
    assert config.task_acks_late is True and config.task_reject_on_worker_lost is True

    monkeypatch.setenv("ADCHAIN_CELERY_BACKEND", "redis://broker.example:6379/1")
    assert load_worker_config().result_backend == "redis://broker.example:6379/1"

    monkeypatch.delenv("ADCHAIN_CELERY_BROKER")
    with pytest.raises(SettingsError, match="ADCHAIN_CELERY_BROKER"):  # a worker without a broker says so
        load_worker_config()


def test_the_executor_is_chosen_by_adchain_executor_and_a_celery_executor_needs_a_broker(monkeypatch):
    monkeypatch.delenv("ADCHAIN_EXECUTOR", raising=False)
    assert build_executor(Settings.from_env()).name == "multiprocess"
    monkeypatch.setenv("ADCHAIN_EXECUTOR", "celery")
    monkeypatch.delenv("ADCHAIN_CELERY_BROKER", raising=False)
    with pytest.raises(SettingsError, match="ADCHAIN_CELERY_BROKER"):
        build_executor(Settings.from_env())
    monkeypatch.setenv("ADCHAIN_CELERY_BROKER", "redis://127.0.0.1:6379/0")
    assert build_executor(Settings.from_env()).name == "celery"
    monkeypatch.setenv("ADCHAIN_EXECUTOR", "threads")
    with pytest.raises(SettingsError, match="'threads'"):
        build_executor(Settings.from_env())
