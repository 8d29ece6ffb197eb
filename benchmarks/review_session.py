"""The review of issue 22, as a user runs it, with its numbers: notes, takes, a pick and a sign-off.

Runs the `adchain` command (each command its own process, as a user types it) on a fresh copy of the sample
campaign ``aurora-perfume`` (4 scenes, chain mode) against the local Gemini-protocol server in this process (a new
picture per call, as a real model), with the offline preview video backend. For every step it prints the command,
its exit code, the image model calls it made (as the server saw them), the outputs whose files changed, and its wall
time; then what each step must show (the edit's first image, the note in the prompt, the restored bytes, the
approved file untouched). Usage::

    .venv/bin/python benchmarks/review_session.py [--json out.json]

It is a script that prints a table, not a test (adchain_assets_tests/test_review.py holds the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from adchain_assets_tests.gemini_server import FakeGemini  # noqa: E402
from adchain_assets_tests.helpers import sampling_like_a_real_model  # noqa: E402

ADCHAIN = str(Path(sys.executable).parent / "adchain")
CAMPAIGN = "aurora-perfume"
SCENE_1 = "The bottle alone on a white marble vanity at dawn"
SCENE_2 = "The woman by a tall window, holding the bottle in her right hand at chest height"
EDITED_2 = "The woman by a tall window at noon, holding the bottle in her right hand"
NOTE = "make her smile"


def state(root: Path) -> dict[str, tuple[str, str]]:
    """{output file: (sha256, created_at)} of every output's provenance."""
    found = {}
    for record in (root / "campaigns" / CAMPAIGN).rglob("*.json"):
        relative = str(record.relative_to(root / "campaigns" / CAMPAIGN))
        if relative.startswith(("review/", "runs/")):
            continue
        data = json.loads(record.read_text())
        if isinstance(data, dict) and "sha256" in data:
            found[relative[: -len(".json")]] = (data["sha256"], data.get("created_at", ""))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the table as JSON")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="adchain-review-"))
    data = work / "data"
    shutil.copytree(PROJECT / "data" / "briefs", data / "briefs")
    (work / "home").mkdir()
    shutil.copy(PROJECT / ".dagster_home" / "dagster.yaml", work / "home")
    brief = data / "briefs" / f"{CAMPAIGN}.yaml"
    rows, checks = [], {}
    with FakeGemini(api_key="review-session") as server:
        sampling_like_a_real_model(server)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ADCHAIN_", "GEMINI_"))}
        env.update(DAGSTER_HOME=str(work / "home"), ADCHAIN_DATA_DIR=str(data), ADCHAIN_IMAGE_BACKEND="gemini",
                   GEMINI_API_KEY="review-session", GEMINI_BASE_URL=server.base_url, ADCHAIN_MAX_SCENES="4")

        def step(label: str, *command: str) -> subprocess.CompletedProcess:
            before, calls = state(data), len(server.requests)
            started = time.perf_counter()
            done = subprocess.run([ADCHAIN, *command], env=env, cwd=work, capture_output=True, text=True)
            wall = time.perf_counter() - started
            after = state(data)
            changed = sorted(name for name in after if after[name] != before.get(name))
            rows.append({"step": label, "command": "adchain " + " ".join(command), "exit": done.returncode,
                         "image_calls": len(server.requests) - calls, "outputs_changed": changed,
                         "wall_s": round(wall, 1)})
            return done

        def edit(old: str, new: str) -> None:
            brief.write_text(brief.read_text().replace(old, new))

        def png(name: str) -> bytes:
            return (data / "campaigns" / CAMPAIGN / f"{name}.png").read_bytes()

        step("make the campaign", "materialize", CAMPAIGN)
        take_0 = png("reference/scene_2")
        calls = len(server.requests)
        step("a note", "regenerate", CAMPAIGN, "--scene", "2", "--note", NOTE)
        edit_request = server.requests[calls]
        checks["edit: first image is the current take's exact bytes"] = edit_request.images[0] == take_0
        checks["edit: the note is in the prompt"] = NOTE in edit_request.prompt_text

        edit(SCENE_2, EDITED_2)
        calls = len(server.requests)
        step("scene 2's text edited", "materialize", CAMPAIGN)
        checks["re-make after a text edit carries the note"] = NOTE in server.requests[calls].prompt_text
        calls = len(server.requests)
        step("notes cleared", "regenerate", CAMPAIGN, "--scene", "2", "--clear-notes")
        checks["--clear-notes drops it"] = NOTE not in server.requests[calls].prompt_text
        takes = step("the takes", "takes", CAMPAIGN, "reference/scene_2", "--json")
        listing = json.loads(takes.stdout)
        checks["takes lists 0..n with notes"] = [(t["take"], t["note"]) for t in listing["takes"]]

        edit(EDITED_2, SCENE_2)
        step("take 0 picked (brief as it was)", "pick", CAMPAIGN, "reference/scene_2", "--take", "0")
        checks["pick: 0 calls, exact bytes"] = rows[-1]["image_calls"] == 0 and png("reference/scene_2") == take_0

        step("sign-off", "approve", CAMPAIGN, "reference/scene_2", "start/scene_2", "end/scene_2", "--by", "client")
        approved = png("reference/scene_2")
        edit(SCENE_1, "The bottle alone on a black marble vanity at night")
        plan = step("scene 1's text edited: the plan", "plan", CAMPAIGN, "--json")
        checks["plan holds scene 2 as approved"] = [h for h in json.loads(plan.stdout)["held"]
                                                    if h["asset"] == "reference/scene_2"]
        step("scene 1's text edited: made", "materialize", CAMPAIGN)
        checks["reference/scene_2.png byte-identical"] = png("reference/scene_2") == approved
        status = step("status", "status", CAMPAIGN, "--json")
        checks["status approved"] = json.loads(status.stdout)["outputs"]["reference/scene_2"]["approved"]
        step("unapproved", "unapprove", CAMPAIGN, "reference/scene_2")
        step("the next run", "materialize", CAMPAIGN)
        checks["re-made after unapprove"] = png("reference/scene_2") != approved
    print(f"{'step':<34} {'exit':>4} {'calls':>5} {'wall s':>7}  outputs changed")
    for row in rows:
        print(f"{row['step']:<34} {row['exit']:>4} {row['image_calls']:>5} {row['wall_s']:>7}  "
              f"{', '.join(row['outputs_changed']) or '-'}")
    print()
    for name, value in checks.items():
        print(f"{name}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "checks": checks}, indent=2, default=str) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
