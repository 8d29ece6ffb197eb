"""Several `adchain` commands started at once on a fresh DAGSTER_HOME race to create the sqlite instance's
schema. Without a lock around that first creation, most of them failed ("table ... already exists") and the
instance could be left with two alembic heads ("Version table 'alembic_version' has more than one head
present"), breaking every later command until the folder was deleted."""

import subprocess

import pytest

from .helpers import ADCHAIN, PROJECT, instance_of

pytestmark = [pytest.mark.subprocess]


def test_four_commands_at_once_on_a_fresh_home_all_work_and_later_ones_too(cli_env):
    commands = [["status", campaign] for campaign in ("muse-portrait", "aurora-perfume") * 2]
    processes = [
        subprocess.Popen([ADCHAIN, *args], env=cli_env, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args in commands
    ]
    outcomes = [(args, *process.communicate(timeout=300), process.returncode) for args, process in zip(commands, processes)]
    failed = [f"adchain {' '.join(args)} exited {code}:\n{err[-1500:]}" for args, _, err, code in outcomes if code != 0]
    assert not failed, "\n\n".join(failed)
    assert all("spent on this campaign so far" in out and "$0.0000" in out for _, out, _, _ in outcomes)
    again = subprocess.run([ADCHAIN, "status", "muse-portrait"], env=cli_env, cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    with instance_of(cli_env) as instance:  # one schema: the instance opens and answers
        assert instance.get_runs() == []
