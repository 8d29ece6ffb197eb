"""The catalogue, `adchain doctor`, `adchain models`, a retired image model, and briefs the models cannot make.

`doctor` is run against the local Veo server, which answers google-genai's public ``models.get`` for the models it
knows and 404 for the others (as the Gemini API does for a retired model).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adchain_assets.brief.model import load_brief
from adchain_assets.cli.doctor import doctor
from adchain_assets.plan import catalogue
from adchain_assets.plan.catalogue import DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL
from adchain_assets.plan.prompts import ComposedPrompt
from adchain_assets.plan.references import Slot
from adchain_assets.providers.images.base import GenerationError, ImageRequest
from adchain_assets.providers.images.gemini import GeminiGenerator
from adchain_assets.settings import Settings
from adchain_assets_tests.gemini_server import FakeGemini, error_reply
from adchain_assets_tests.veo_server import FakeVeo

KEY = "AIza-doctor-SECRET-93f1"
TODAY = dt.date(2026, 12, 4)


def environment(tmp_path: Path, fake: FakeVeo, **changes) -> dict:
    env = {
        "GEMINI_API_KEY": KEY, "GEMINI_BASE_URL": fake.base_url, "ADCHAIN_IMAGE_BACKEND": "gemini",
        "ADCHAIN_VIDEO_BACKEND": "veo", "ADCHAIN_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"), **changes,
    }
    return {name: value for name, value in env.items() if value is not None}


def run_doctor(env: dict) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = doctor(out=out, environ=env, today=TODAY)
    return code, out.getvalue().splitlines()


@pytest.fixture
def fake():
    with FakeVeo(api_key=KEY, models={DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL}) as server:
        yield server


def test_doctor_passes_a_good_set_up_with_one_line_per_check(tmp_path, fake):
    code, lines = run_doctor(environment(tmp_path, fake))
    assert code == 0, lines
    assert lines[-1] == "doctor: all checks passed"
    checks = [line for line in lines[:-1]]
    assert all(line.startswith(("ok ", "skip ")) for line in checks)
    names = {line.split(":", 1)[0][5:] for line in checks}
    assert {"API key", "endpoint", f"image model {DEFAULT_IMAGE_MODEL}", f"video model {DEFAULT_VIDEO_MODEL}",
            f"image model {DEFAULT_IMAGE_MODEL} price", f"video model {DEFAULT_VIDEO_MODEL} price",
            "data folder", "Dagster instance"} <= names
    gets = sorted(r.path for r in fake.requests)
    assert gets == [f"/v1beta/models/{DEFAULT_IMAGE_MODEL}", f"/v1beta/models/{DEFAULT_VIDEO_MODEL}"]
    assert fake.start_calls == 0  # nothing paid for


def test_doctor_fails_a_model_the_endpoint_does_not_know_naming_the_fix(tmp_path, fake):
    code, lines = run_doctor(environment(tmp_path, fake, ADCHAIN_VIDEO_MODEL="veo-3.1-fast-generate-preview"))
    assert code == 1
    (missing,) = [line for line in lines if line.startswith("FAIL video model veo-3.1-fast-generate-preview:")]
    assert "HTTP 404" in missing and f"fix: export ADCHAIN_VIDEO_MODEL={DEFAULT_VIDEO_MODEL}" in missing
    assert any(line.startswith(f"ok   image model {DEFAULT_IMAGE_MODEL}: exists") for line in lines)
    (lifecycle,) = [line for line in lines if "veo-3.1-fast-generate-preview lifecycle" in line]
    assert lifecycle.startswith("FAIL") and "shut down on 2026-10-22" in lifecycle


def test_doctor_never_suggests_the_model_that_just_answered_404(tmp_path):
    with FakeVeo(api_key=KEY, models={DEFAULT_IMAGE_MODEL}) as only_images:
        code, lines = run_doctor(environment(tmp_path, only_images))
    assert code == 1
    (missing,) = [line for line in lines if line.startswith(f"FAIL video model {DEFAULT_VIDEO_MODEL}:")]
    assert f"export ADCHAIN_VIDEO_MODEL={DEFAULT_VIDEO_MODEL}" not in missing
    assert f"this endpoint does not serve {DEFAULT_VIDEO_MODEL}" in missing and "ADCHAIN_VIDEO_ROUTE=vertex" in missing


def test_doctor_fails_without_a_key_an_endpoint_or_writable_folders(tmp_path, fake):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, lines = run_doctor(environment(tmp_path, fake, GEMINI_API_KEY=None, DAGSTER_HOME=str(blocker)))
    assert code == 1
    assert any(line.startswith("FAIL API key: GEMINI_API_KEY is not set — fix: export GEMINI_API_KEY") for line in lines)
    assert any(line.startswith("FAIL Dagster instance:") and "DAGSTER_HOME" in line for line in lines)
    assert not fake.requests  # no key: nothing asked

    with FakeVeo() as closed:
        dead = closed.base_url
    code, lines = run_doctor(environment(tmp_path, fake, GEMINI_BASE_URL=dead))
    assert code == 1
    assert any(line.startswith("FAIL endpoint:") and "GEMINI_BASE_URL" in line for line in lines)


def test_doctor_fails_a_model_without_a_price_and_never_prints_the_key(tmp_path):
    with FakeVeo(api_key=KEY, models={"gemini-9-imaginary-image", DEFAULT_VIDEO_MODEL}) as fake:
        code, lines = run_doctor(environment(tmp_path, fake, ADCHAIN_IMAGE_MODEL="gemini-9-imaginary-image"))
    assert code == 1
    assert any(line.startswith("FAIL image model gemini-9-imaginary-image price: not in the catalogue") for line in lines)
    assert not [line for line in lines if KEY in line]


@pytest.mark.subprocess
def test_the_adchain_command_exits_0_then_1(tmp_path, fake):
    env = dict(os.environ, **environment(tmp_path, fake))
    good = subprocess.run([sys.executable, "-m", "adchain_assets.cli", "doctor"], env=env, capture_output=True, text=True)
    env["ADCHAIN_IMAGE_MODEL"] = "gemini-2.5-flash-image"
    bad = subprocess.run([sys.executable, "-m", "adchain_assets.cli", "doctor"], env=env, capture_output=True, text=True)
    assert good.returncode == 0, good.stdout + good.stderr
    assert bad.returncode == 1
    assert "FAIL image model gemini-2.5-flash-image: not found" in bad.stdout
    assert "ADCHAIN_IMAGE_MODEL=gemini-3.1-flash-image" in bad.stdout


@pytest.mark.subprocess
def test_models_prints_the_catalogue_with_the_models_in_use(tmp_path):
    run = subprocess.run([sys.executable, "-m", "adchain_assets.cli", "models"], capture_output=True, text=True,
                         env=dict(os.environ, ADCHAIN_VIDEO_MODEL="veo-3.1-generate-001"))
    assert run.returncode == 0
    assert f"image model: {DEFAULT_IMAGE_MODEL} (default {DEFAULT_IMAGE_MODEL}; change with ADCHAIN_IMAGE_MODEL" in run.stdout
    assert "veo-3.1-generate-001  [video; routes vertex; ga]  <- video model" in run.stdout
    assert "gemini-2.5-flash-image  [image; routes gemini-api; shut-down, shutdown on 2026-10-02" in run.stdout
    assert "deprecations: https://ai.google.dev/gemini-api/docs/deprecations (read 2026-12-04)" in run.stdout


def test_every_catalogue_figure_names_a_known_source_and_the_defaults_are_current():
    known = set(catalogue.sources())
    for model, entry in catalogue.catalogue().items():
        assert entry.get("sources"), model
        assert set(entry["sources"].values()) <= known, model
        assert entry["makes"] in ("image", "video", "text")
        assert catalogue.price(model, {"seconds": 1, "resolution": "720p"} if entry["makes"] == "video"
                               else {"output": {"TEXT": 1}}) is not None, model
    for source in catalogue.sources().values():
        assert source["url"].startswith("https://") and source["read"]
    for model in (DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL):
        assert catalogue.model_entry(model)["status"] == "ga"
        assert not catalogue.is_shut_down(model, TODAY)
    assert catalogue.is_shut_down("veo-3.1-fast-generate-preview", TODAY)
    assert catalogue.price("no-such-model", {"seconds": 4}) is None  # the ledger's contract: unknown is None


def test_a_retired_image_model_fails_fast_naming_the_model_and_the_variable():
    retired = "gemini-2.5-flash-image"
    with FakeGemini() as fake:
        fake.reply(error_reply(404, f"models/{retired} is not found for API version v1beta, or is not supported"
                                    " for generateContent."))
        generator = GeminiGenerator(api_key=KEY, model=retired, base_url=fake.base_url, http_attempts=5,
                                    no_image_attempts=3, initial_delay_s=0.01)
        with pytest.raises(GenerationError) as caught:
            generator.generate(ImageRequest(ComposedPrompt(Slot("reference", 1), "a bottle", (), (), "", ""), [], "1:1", 0))
        assert len(fake.requests) == 1  # no retries at either level
    message = str(caught.value)
    assert caught.value.reason == "HTTP_404" and not caught.value.retryable
    assert retired in message and "ADCHAIN_IMAGE_MODEL" in message


def brief_file(tmp_path: Path, aspect: str = "9:16", durations=(4, 8), resolution: str = "720p") -> Path:
    scenes = "".join(f"  - reference: Scene {i}\n    start: Start {i}\n    end: End {i}\n    duration_s: {d}\n"
                     for i, d in enumerate(durations, start=1))
    path = tmp_path / "briefs" / "shape.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'title: Shapes\naspect_ratio: "{aspect}"\nvideo:\n  resolution: {resolution}\nscenes:\n{scenes}')
    return path


def test_brief_values_the_models_cannot_make_are_bad_input_before_any_call(tmp_path):
    brief = load_brief(brief_file(tmp_path, aspect="4:5", durations=(4, 5), resolution="1080p"), max_scenes=8).brief
    problems = catalogue.problems_for(brief, DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL, file="shape.yaml")
    shown = [str(p) for p in problems]
    assert any(s.startswith("shape.yaml: aspect_ratio: '4:5': video model veo-3.1-fast-generate-001 makes 16:9 or 9:16")
               for s in shown)
    assert any(s.startswith("shape.yaml: scenes[1].duration_s: 5 s: video model") and "4, 6, 8 s" in s for s in shown)
    assert any(s.startswith("shape.yaml: scenes[0].duration_s: 4 s") and "1080p clips of 8 s only" in s for s in shown)
    assert not catalogue.problems_for(load_brief(brief_file(tmp_path), max_scenes=8).brief, DEFAULT_IMAGE_MODEL, DEFAULT_VIDEO_MODEL)
    assert not catalogue.problems_for(brief, DEFAULT_IMAGE_MODEL, None)  # the preview clips make any shape


@pytest.mark.subprocess
def test_validate_reports_them_with_exit_2_only_for_the_backends_in_use(tmp_path):
    path = brief_file(tmp_path, aspect="1:1")
    env = dict(os.environ, ADCHAIN_DATA_DIR=str(tmp_path))
    offline = subprocess.run([sys.executable, "-m", "adchain_assets.cli", "validate", str(path)], env=env,
                             capture_output=True, text=True)
    veo = subprocess.run([sys.executable, "-m", "adchain_assets.cli", "validate", str(path)],
                         env=dict(env, ADCHAIN_VIDEO_BACKEND="veo"), capture_output=True, text=True)
    assert offline.returncode == 0, offline.stderr
    assert veo.returncode == 2
    assert f"{path}: aspect_ratio: '1:1': video model {DEFAULT_VIDEO_MODEL} makes 16:9 or 9:16 clips only" in veo.stderr


def test_settings_name_the_route_and_reject_an_unknown_one():
    settings = Settings.from_env({"ADCHAIN_VIDEO_ROUTE": "vertex", "GOOGLE_CLOUD_PROJECT": "p"})
    assert (settings.video_route, settings.cloud_project, settings.cloud_location) == ("vertex", "p", "us-central1")
    with pytest.raises(ValueError, match="ADCHAIN_VIDEO_ROUTE"):
        Settings.from_env({"ADCHAIN_VIDEO_ROUTE": "azure"})
