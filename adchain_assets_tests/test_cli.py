import pytest

"""The `adchain` command as a user runs it: a separate process, runs recorded in DAGSTER_HOME."""


from dagster import DagsterRunStatus

from .gemini_server import FakeGemini, no_image_reply
from .helpers import adchain, instance_of

pytestmark = [pytest.mark.subprocess]



def test_materialize_and_status_use_the_instance_in_dagster_home(cli_env, data_dir):
    done = adchain(cli_env, "materialize", "muse-portrait")
    assert done.returncode == 0, done.stderr
    assert "muse-portrait: 17 outputs made" in done.stdout and "storyboard.png" in done.stdout
    assert (data_dir / "campaigns" / "muse-portrait" / "storyboard.png").exists()
    with instance_of(cli_env) as instance:
        runs = instance.get_runs()
        assert [run.job_name for run in runs] == ["campaign"]
        assert all(run.status == DagsterRunStatus.SUCCESS and run.tags["dagster/partition"] == "muse-portrait" for run in runs)
        assert instance.has_dynamic_partition("campaigns", "muse-portrait")
    status = adchain(cli_env, "status", "muse-portrait")
    assert status.returncode == 0
    assert "reference/scene_1" in status.stdout and "user" in status.stdout
    assert "end/scene_3" in status.stdout and "spent on this campaign so far" in status.stdout and "$0.0000" in status.stdout


def test_a_failed_generation_exits_1_naming_the_asset_and_the_reason(cli_env):
    with FakeGemini() as server:
        server.default_reply = lambda request: (
            no_image_reply("IMAGE_SAFETY") if request.prompt_text.startswith("Reference image for scene 3 ")
            else FakeGemini.default_reply(server, request)
        )
        env = {**cli_env, "ADCHAIN_IMAGE_BACKEND": "gemini", "GEMINI_API_KEY": "k", "GEMINI_BASE_URL": server.base_url}
        failed = adchain(env, "materialize", "aurora-perfume")
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("aurora-perfume: reference/scene_3: ")
    assert "IMAGE_SAFETY" in failed.stderr
    status = adchain(env, "status", "aurora-perfume")
    assert "failed" in status.stdout and "reference/scene_3" in status.stdout and "IMAGE_SAFETY" in status.stdout


def test_bad_input_exits_2(cli_env, data_dir):
    (data_dir / "briefs" / "broken.yaml").write_text("title: [\n")
    bad = adchain(cli_env, "materialize", "broken")
    assert bad.returncode == 2 and "broken.yaml: line" in bad.stderr
    assert adchain(cli_env, "materialize", "Not_An_Id").returncode == 2
    assert adchain(cli_env, "frobnicate").returncode == 2
    assert not (data_dir / "campaigns").exists()


def test_demo_makes_every_sample_campaign_offline_whatever_is_exported(cli_env, data_dir):
    """`make demo`: both sample campaigns at once, on the preview backends even with a paid backend exported
    (its key and endpoint point nowhere: a call would fail the demo)."""
    env = {**cli_env, "ADCHAIN_IMAGE_BACKEND": "gemini", "ADCHAIN_VIDEO_BACKEND": "veo", "GEMINI_API_KEY": "k",
           "GEMINI_BASE_URL": "http://127.0.0.1:9"}
    done = adchain(env, "demo")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("demo: 2 campaigns in ")
    for campaign in ("aurora-perfume", "muse-portrait"):
        folder = data_dir / "campaigns" / campaign
        assert (folder / "storyboard.png").exists() and (folder / "ad.mp4").exists(), campaign
        assert f"{campaign}: " in done.stdout
    with instance_of(cli_env) as instance:
        runs = instance.get_runs()
        assert sorted(run.tags["dagster/partition"] for run in runs) == ["aurora-perfume", "muse-portrait"]
        assert all(run.status == DagsterRunStatus.SUCCESS for run in runs)
    for campaign in ("aurora-perfume", "muse-portrait"):
        plan = adchain({**env, "ADCHAIN_IMAGE_BACKEND": "preview", "ADCHAIN_VIDEO_BACKEND": "preview"}, "plan", campaign)
        assert f"{campaign} (brief " in plan.stdout and ": 0 out of date, 0 held" in plan.stdout, plan.stdout
