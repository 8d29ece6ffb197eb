"""Crash safety and resume.

A run killed with SIGKILL mid-chain and started again regenerates only what was not finished, leaves no
truncated or orphaned files, and a PNG is never served beside provenance that does not describe it. The
first test kills a real ``adchain materialize`` (its whole process group: the CLI, the run worker and every
step process) while the model is answering; the others kill a writer at the exact instants that matter.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from PIL import Image
from upath import UPath

from adchain_assets.defs.images import MODEL_POOL
from adchain_assets.plan.catalogue import DEFAULT_IMAGE_MODEL
from adchain_assets.plan.prompts import ComposedPrompt
from adchain_assets.plan.references import CHAINS, Slot
from adchain_assets.providers.images.base import GeneratedImage, ImageGenerator, ImageRequest, ReferenceImage
from adchain_assets.store import files as storage
from adchain_assets.store.cache import GenerationCache, request_key
from adchain_assets.store.files import (
    CampaignFiles,
    ProvenanceMismatch,
    StoredOutput,
    read_output_file,
    sha256,
    sweep_temporaries,
    write_atomically,
    write_output_file,
)

from .gemini_server import FakeGemini, make_png
from .helpers import PROJECT

pytestmark = [pytest.mark.fault]

ADCHAIN = str(Path(sys.executable).parent / "adchain")
CAMPAIGN = "aurora-perfume"  # 4 scenes: 12 generated images, no user image
SCENES = 4
IMAGES = 3 * SCENES
LATENCY_S = 0.5
TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")
FORK = multiprocessing.get_context("fork")


# --- the real thing: SIGKILL a campaign run, then run it again ----------------------------------------------


def cli_env(tmp_path: Path, data_dir: Path, base_url: str) -> dict:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(PROJECT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADCHAIN_", "GEMINI_", "DAGSTER_"))}
    return {
        **env,
        "DAGSTER_HOME": str(home),
        "ADCHAIN_DATA_DIR": str(data_dir),
        "ADCHAIN_IMAGE_BACKEND": "gemini",
        "GEMINI_API_KEY": "x",
        "GEMINI_BASE_URL": base_url,
    }


def image_paths(data_dir: Path) -> list[Path]:
    campaign = data_dir / "campaigns" / CAMPAIGN
    return sorted(path for chain in CHAINS for path in (campaign / chain).glob("scene_*.png"))


def group_alive(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (their state can still change files)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def kill_group(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    deadline = time.monotonic() + 30
    while group_alive(process.pid):
        assert time.monotonic() < deadline, f"processes of group {process.pid} survived SIGKILL"
        time.sleep(0.05)


def in_flight(fake: FakeGemini) -> int:
    """Requests the fake has received and not answered yet: a model call under way."""
    with fake._lock:
        return sum(1 for r in fake.requests if r.reply_status is None)


def cache_key_of(recorded) -> str:
    """The generation cache's key of a request the fake received (take 0: this campaign's images)."""
    prompt = SimpleNamespace(text=recorded.prompt_text)  # the key reads only the text the model is sent
    references = [ReferenceImage(f"ref{i}", png) for i, png in enumerate(recorded.images)]
    return request_key("gemini", DEFAULT_IMAGE_MODEL, ImageRequest(prompt, references, recorded.aspect_ratio, 0))


def cached_keys(data_dir: Path) -> set[str]:
    """Keys of the sound entries of the generation cache."""
    cache = GenerationCache(root=str(data_dir / "cache"))
    entries = (data_dir / "cache").glob("??/" + "[0-9a-f]" * 64)
    return {entry.name for entry in entries if cache.lookup(entry.name) is not None}


def check_files(data_dir: Path) -> dict[str, str]:
    """Every image file visible under the campaign is whole and has its JSON beside it.

    Returns ``{image: "ok" | "mismatch"}``: a mismatched pair (a write cut between its two renames) must be
    refused by every reader.
    """
    campaign = data_dir / "campaigns" / CAMPAIGN
    files = CampaignFiles(base_path=str(data_dir))
    for path in campaign.rglob("*.png"):
        if not path.name.startswith("."):  # hidden temporaries are never read as images (and are swept later)
            with Image.open(path) as picture:
                picture.load()  # whole: a truncated PNG fails here
    for chain in CHAINS:
        for path in (campaign / chain).glob("*") if (campaign / chain).exists() else ():
            assert path.name.startswith(".") or re.fullmatch(r"scene_[1-4]\.(png|json)", path.name), path
    states = {}
    for path in image_paths(data_dir):
        slot = Slot(path.parent.name, int(path.stem.split("_")[1]))
        record = json.loads(path.with_suffix(".json").read_text())  # a PNG never stands without its JSON
        if record["sha256"] == sha256(path.read_bytes()):
            states[slot.key] = "ok"
            assert files.read_output(CAMPAIGN, slot.key).provenance == record
        else:
            states[slot.key] = "mismatch"
            assert files.read_output(CAMPAIGN, slot.key) is None
            with pytest.raises(ProvenanceMismatch):
                read_output_file(UPath(path))
    return states


def leftovers(data_dir: Path) -> list[str]:
    """Temporaries, staging folders and lock files anywhere under the data folder."""
    found = []
    for path in data_dir.rglob("*"):
        name = path.name
        if TEMPORARY.match(name) or name.endswith((".lock", ".tmp")) or (path.parent.parent.name == "cache" and name.startswith(".")):
            found.append(str(path.relative_to(data_dir)))
    return sorted(found)


# Where to kill: once this many images are written (and a model call is under way). One point keeps the suite
# quick; ADCHAIN_CRASH_POINTS=1,5,9 also kills early in the chains and near their end.
KILL_POINTS = [int(n) for n in os.environ.get("ADCHAIN_CRASH_POINTS", "5").split(",")]


@pytest.mark.parametrize("kill_after", KILL_POINTS)
def test_a_run_killed_mid_chain_resumes_with_only_the_unfinished_images(tmp_path, data_dir, kill_after):
    with FakeGemini(latency_s=LATENCY_S) as fake:
        env = cli_env(tmp_path, data_dir, fake.base_url)
        with open(tmp_path / "killed.log", "w") as log:
            run = subprocess.Popen(
                [ADCHAIN, "materialize", CAMPAIGN], env=env, cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 120
            # Kill once kill_after images are written and a model call is under way: a paid answer is lost.
            while not (len(image_paths(data_dir)) >= kill_after and in_flight(fake)):
                assert run.poll() is None, f"the run ended before the kill:\n{(tmp_path / 'killed.log').read_text()}"
                assert time.monotonic() < deadline, "the run never got that far"
                time.sleep(0.01)
        finally:
            kill_group(run)
        assert run.returncode == -signal.SIGKILL

        states = check_files(data_dir)
        finished = {key for key, state in states.items() if state == "ok"}
        assert kill_after <= len(states) < IMAGES
        cached = cached_keys(data_dir)
        assert len(cached) >= len(finished)  # an image is cached before its files are written

        time.sleep(0.3)  # let the fake record any request the killed processes had already sent
        resumed_at = time.monotonic()
        with open(tmp_path / "resumed.log", "w") as log:
            again = subprocess.Popen(
                [ADCHAIN, "materialize", CAMPAIGN], env=env, cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            again.wait(180)  # not blocked by the killed run, still "started" in the instance
        finally:
            if again.poll() is None:
                kill_group(again)
        assert again.returncode == 0, (tmp_path / "resumed.log").read_text()
        resumed = [r for r in fake.requests if r.received_at >= resumed_at]
        image_keys = {cache_key_of(r) for r in fake.requests}
        returned = {sha256(image) for image in fake.returned_images}

    # Only what was not finished was asked for again; everything that was cached came back free.
    assert len(image_keys) == IMAGES
    assert not {cache_key_of(r) for r in resumed} & cached
    assert len(resumed) == IMAGES - len(cached & image_keys)
    final = check_files(data_dir)
    assert final == {Slot(chain, k).key: "ok" for chain in CHAINS for k in range(1, SCENES + 1)}
    records = [json.loads(path.with_suffix(".json").read_text()) for path in image_paths(data_dir)]
    # the plan re-makes only what was not finished; of that, what was cached came back free
    remade = [r for r in records if f"{r['chain']}/scene_{r['scene']}" not in finished]
    assert sum(1 for record in remade if not record["cache_hit"]) == len(resumed)
    assert {record["sha256"] for record in records} <= returned  # exactly the bytes the model sent
    assert (data_dir / "campaigns" / CAMPAIGN / "storyboard.png").exists()
    assert leftovers(data_dir) == []

    # The killed run is not left "started", and it does not keep model-pool slots other runs wait for.
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        killed, resumed_run = sorted(instance.get_runs(), key=lambda run: instance.get_run_record_by_id(run.run_id).create_timestamp)
        assert (killed.status, resumed_run.status) == (DagsterRunStatus.FAILURE, DagsterRunStatus.SUCCESS)
        held = [slot for slot in instance.event_log_storage.get_concurrency_info(MODEL_POOL).claimed_slots if slot.run_id == killed.run_id]
    assert held == [], f"the killed run still holds {len(held)} {MODEL_POOL} pool slot(s)"


# --- the instants that matter, one at a time ----------------------------------------------------------------


def stored(colour, take=0) -> StoredOutput:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, "PNG")
    png = buffer.getvalue()
    return StoredOutput(data=png, provenance={"campaign": "c", "chain": "reference", "scene": 1, "take": take, "sha256": sha256(png)})


def in_a_process_killed_at(target, *, call: str, after: int, args=()) -> None:
    """Run ``target(*args)`` in a child process that SIGKILLs itself just after its ``after``-th ``os.<call>``."""

    def child():
        real, seen = getattr(os, call), []

        def counting(*a, **kw):
            result = real(*a, **kw)
            seen.append(1)
            if len(seen) == after:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        setattr(os, call, counting)
        target(*args)
        os._exit(0)

    worker = FORK.Process(target=child)
    worker.start()
    worker.join(30)
    assert worker.exitcode == -signal.SIGKILL, "the child was meant to die mid-write"


def age(path: Path, seconds: float) -> None:
    """Pretend ``path`` was last written ``seconds`` ago (the sweep's margin for a writer not yet locked)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def hidden(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("."))


def test_killed_between_the_json_and_the_png_rename_a_reader_refuses_the_pair_and_a_rerun_repairs_it(tmp_path):
    files = CampaignFiles(base_path=str(tmp_path))
    slot = Slot("reference", 1)
    path = files.image_path("c", slot)
    old, new = stored("red", take=1), stored("blue", take=2)
    write_output_file(path, old)

    in_a_process_killed_at(write_output_file, call="replace", after=1, args=(path, new))  # JSON renamed, PNG not

    local = Path(os.fspath(path))
    assert local.read_bytes() == old.data  # nothing lost: the user's image is still there ...
    assert json.loads(local.with_suffix(".json").read_text())["sha256"] == new.sha256  # ... beside the new JSON
    with pytest.raises(ProvenanceMismatch, match="does not match its provenance"):
        read_output_file(path)
    assert files.read_output("c", slot.key) is None  # refused, treated as not made ...
    with pytest.raises(ProvenanceMismatch, match="interrupted write"):
        read_output_file(path)
    assert local.read_bytes() == old.data and local.with_suffix(".json").exists()  # ... and not deleted
    assert files.current_take("c", slot) == 2  # the take the cut-short write was storing: rerun rolls forward
    [temporary] = hidden(local.parent)  # the staged PNG of the dead writer
    assert TEMPORARY.match(temporary.name)

    age(temporary, 10)
    write_output_file(path, new)  # the rerun
    assert files.read_output("c", slot.key) == new
    assert sorted(p.name for p in local.parent.iterdir()) == ["scene_1.json", "scene_1.png"]


def test_killed_between_the_renames_of_a_first_write_no_png_appears_without_its_json(tmp_path):
    files = CampaignFiles(base_path=str(tmp_path))
    slot = Slot("start", 2)
    path = files.image_path("c", slot)
    in_a_process_killed_at(write_output_file, call="replace", after=1, args=(path, stored("green")))
    local = Path(os.fspath(path))
    assert not local.exists() and local.with_suffix(".json").exists()
    assert files.read_output("c", slot.key) is None  # simply not made yet
    with pytest.raises(FileNotFoundError):
        read_output_file(path)
    assert files.current_take("c", slot) == 0


def test_killed_while_writing_the_temporary_the_old_pair_stays_and_the_temporary_is_swept(tmp_path):
    files = CampaignFiles(base_path=str(tmp_path))
    slot = Slot("end", 3)
    path = files.image_path("c", slot)
    old = stored("red")
    write_output_file(path, old)
    in_a_process_killed_at(write_output_file, call="fsync", after=1, args=(path, stored("blue")))  # PNG temp written
    local = Path(os.fspath(path))
    assert files.read_output("c", slot.key) == old
    [temporary] = hidden(local.parent)
    assert sweep_temporaries(path.parent) == []  # too fresh to tell from a writer that has not locked it yet
    age(temporary, 10)
    assert sweep_temporaries(path.parent) == [temporary.name]
    assert hidden(local.parent) == []


def test_a_temporary_whose_writer_is_alive_is_never_swept(tmp_path):
    path = UPath(tmp_path / "campaigns" / "c" / "storyboard.png")
    path.parent.mkdir(parents=True)
    staged = storage._Staged(path, b"in progress")  # a live writer: its temporary is locked
    age(Path(os.fspath(staged.temporary)), 3600)
    assert sweep_temporaries(path.parent, unlocked_after_s=0) == []
    write_atomically(path, b"another writer")  # sweeps the folder first, and must leave the live one alone
    assert staged.temporary.exists()
    staged.commit()
    assert path.read_bytes() == b"in progress" and hidden(Path(os.fspath(path.parent))) == []


def test_the_sweep_leaves_other_hidden_files_alone(tmp_path):
    folder = tmp_path / "reference"
    folder.mkdir()
    for name in (".DS_Store", ".scene_1.png.notes", ".scene_1.png.tmp", f".scene_1.png.{'0' * 32}.tmp"):
        (folder / name).write_bytes(b"x")
        age(folder / name, 3600)
    assert sweep_temporaries(UPath(folder)) == [f".scene_1.png.{'0' * 32}.tmp"]
    assert [p.name for p in hidden(folder)] == [".DS_Store", ".scene_1.png.notes", ".scene_1.png.tmp"]


def test_on_an_object_store_only_old_temporaries_are_swept_and_nothing_is_fsynced(monkeypatch):
    def no_fsync(fd):
        raise AssertionError("fsync on an object store")

    monkeypatch.setattr(os, "fsync", no_fsync)
    folder = UPath("memory://crash-test/campaigns/c/end")
    orphan = folder / f".scene_1.png.{'a' * 32}.tmp"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"half")
    write_output_file(folder / "scene_1.png", stored("red"))
    assert orphan.exists()  # young: might be a live writer on another machine
    assert sweep_temporaries(folder, remote_after_s=0) == [orphan.name]
    assert sorted(p.name for p in folder.iterdir()) == ["scene_1.json", "scene_1.png"]
    assert CampaignFiles(base_path="memory://crash-test").read_output("c", Slot("end", 1).key) == stored("red")


def test_local_writes_fsync_the_data_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        events.append(("fsync", "dir" if os.path.isdir(target) else Path(target).name.split(".")[1]))
        return real_fsync(fd)

    def replace(source, destination):
        events.append(("replace", Path(destination).name))
        return real_replace(source, destination)

    path = UPath(tmp_path / "scene_1.png")
    path.parent.mkdir(exist_ok=True)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_output_file(path, stored("red"))
    assert events == [
        ("fsync", "scene_1"), ("fsync", "scene_1"),  # both temporaries, complete, before either rename
        ("replace", "scene_1.json"), ("fsync", "dir"),  # the JSON first ...
        ("replace", "scene_1.png"), ("fsync", "dir"),  # ... then the PNG
    ]


def test_a_png_without_its_json_is_refused_but_kept(tmp_path):
    files = CampaignFiles(base_path=str(tmp_path))
    path = Path(os.fspath(files.image_path("c", Slot("reference", 2))))
    path.parent.mkdir(parents=True)
    path.write_bytes(stored("red").data)  # e.g. left by an older version, or copied in by hand
    with pytest.raises(ProvenanceMismatch, match="has no provenance"):
        read_output_file(UPath(path))
    assert files.read_output("c", Slot("reference", 2).key) is None and path.exists()
    path.with_suffix(".json").write_text("{not json")
    assert files.read_output("c", Slot("reference", 2).key) is None
    with pytest.raises(ProvenanceMismatch, match="not readable JSON"):
        read_output_file(UPath(path))
    assert files.current_take("c", Slot("reference", 2)) == 0


# --- the generation cache -------------------------------------------------------------------------------------


class Counting(ImageGenerator):
    backend, model = "counting", "counting-1"

    def __init__(self, counter: Path, die: bool = False):
        self.counter, self.die = counter, die

    def generate(self, req):
        with open(self.counter, "a") as calls:
            calls.write("x")
        if self.die:
            os.kill(os.getpid(), signal.SIGKILL)  # killed while the model is answering
        return GeneratedImage(make_png(req.prompt.text.encode(), (16, 16)), self.backend, self.model, 0.5, 0.039)


def a_request(text="a bottle") -> ImageRequest:
    return ImageRequest(ComposedPrompt(Slot("reference", 2), text, (), (), "", ""), [], "1:1", 0)


def cache_leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.name.endswith(".lock") or p.name.startswith("."))


def _generate(root, counter, die=False):
    GenerationCache(root=root).generate(Counting(Path(counter), die), a_request())


def test_lock_files_do_not_pile_up(tmp_path):
    cache = GenerationCache(root=str(tmp_path / "cache"))
    for text in ("a", "b", "a"):
        cache.generate(Counting(tmp_path / "calls"), a_request(text))
    assert cache_leftovers(tmp_path / "cache") == []
    assert (tmp_path / "calls").read_text() == "xx"


def test_killed_while_the_model_answers_the_next_run_pays_once_and_cleans_up(tmp_path):
    root, counter = str(tmp_path / "cache"), tmp_path / "calls"
    worker = FORK.Process(target=_generate, args=(root, str(counter), True))
    worker.start()
    worker.join(30)
    assert worker.exitcode == -signal.SIGKILL
    assert [name.endswith(".lock") for name in cache_leftovers(tmp_path / "cache")] == [True]  # held when it died
    made = GenerationCache(root=root).generate(Counting(counter), a_request())  # not blocked by the dead holder
    assert made.cache_hit is False and counter.read_text() == "xx"
    assert cache_leftovers(tmp_path / "cache") == []


@pytest.mark.parametrize(
    "call, after, cached",
    [
        ("fsync", 1, False),  # staging folder half written
        ("rename", 1, True),  # entry renamed into place, lock not yet released
    ],
)
def test_killed_while_storing_an_entry_nothing_half_made_is_served_or_left(tmp_path, call, after, cached):
    root, counter = str(tmp_path / "cache"), tmp_path / "calls"
    key = request_key(Counting.backend, Counting.model, a_request())
    (tmp_path / "cache" / key[:2]).mkdir(parents=True)  # so that the first fsync is the staged image's
    in_a_process_killed_at(_generate, call=call, after=after, args=(root, str(counter)))
    assert cache_leftovers(tmp_path / "cache")  # something was left behind ...
    again = GenerationCache(root=root).generate(Counting(counter), a_request())
    assert again.cache_hit is cached and counter.read_text() == ("x" if cached else "xx")
    assert cache_leftovers(tmp_path / "cache") == []  # ... and the next request for that image removed it


def test_sweep_removes_what_dead_processes_left_and_leaves_a_live_lock_alone(tmp_path):
    root = tmp_path / "cache"
    cache = GenerationCache(root=str(root))
    dead, live = "a" * 64, "b" * 64
    (root / "aa").mkdir(parents=True)
    (root / "aa" / f"{dead}.lock").touch()
    (root / "aa" / f".{dead}.x1y2z3").mkdir()
    (root / "aa" / f".{dead}.x1y2z3" / "image.png").write_bytes(b"half")
    with cache._locked(live):
        assert cache.sweep() == [dead]
        assert cache_leftovers(root) == [f"{live}.lock"]
    assert cache_leftovers(root) == []
