import pytest

"""The API key never leaves the process's environment: not in files, event logs, metadata, cache or errors."""

from pathlib import Path

from .gemini_server import FakeGemini, error_reply, no_image_reply
from .helpers import adchain

pytestmark = [pytest.mark.subprocess]

KEY = "AIzaSy-FAKE-KEY-adchain-secrets-0123456789"


def every_file_containing(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_campaign_with_a_recognisable_key_writes_it_nowhere(cli_env, data_dir, tmp_path):
    with FakeGemini(api_key=KEY) as server:
        calls = []

        def answer(request):
            calls.append(request)
            if request.prompt_text.startswith("Reference image for scene 4 "):
                return no_image_reply("IMAGE_SAFETY", message="blocked")
            if len(calls) == 2:
                return error_reply(503, "overloaded")  # retried by the SDK
            return FakeGemini.default_reply(server, request)

        server.default_reply = answer
        env = {**cli_env, "ADCHAIN_IMAGE_BACKEND": "gemini", "GEMINI_API_KEY": KEY, "GEMINI_BASE_URL": server.base_url}
        run = adchain(env, "materialize", "aurora-perfume")
        status = adchain(env, "status", "aurora-perfume")
    assert run.returncode == 1 and "IMAGE_SAFETY" in run.stderr  # it really ran, and really failed
    assert all(r.headers["x-goog-api-key"] == KEY for r in server.requests)  # the key was really used
    assert len(list((data_dir / "campaigns" / "aurora-perfume").rglob("*.json"))) >= 9
    for text in (run.stdout, run.stderr, status.stdout, status.stderr):
        assert KEY not in text
    for root in (data_dir, Path(cli_env["DAGSTER_HOME"])):
        assert every_file_containing(root, KEY.encode()) == []
