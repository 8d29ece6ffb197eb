"""What many tests do the same way: a data folder's definitions, an in-process run of a campaign, a sensor tick,
an edit of a brief, the `adchain` command as a process, and a model call's request."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Optional

import dagster as dg

from adchain_assets.definitions import build_definitions
from adchain_assets.defs.jobs import CAMPAIGN_JOB, asset_keys
from adchain_assets.defs.resources import build_resources
from adchain_assets.plan.prompts import ComposedPrompt, SubjectLine
from adchain_assets.plan.references import CHAINS, Slot, all_slots, upstream
from adchain_assets.plan.requests import AD, REPORT, STORYBOARD, clip_output
from adchain_assets.providers.images.base import ImageRequest, ReferenceImage
from adchain_assets.settings import Settings

from .gemini_server import image_reply, image_size, make_png

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE_BRIEFS = PROJECT / "data" / "briefs"
SHEETS_SAMPLES = ("lumen-dive.yaml",)  # the sample of reference_mode: sheets
ADCHAIN = str(Path(sys.executable).parent / "adchain")

SIX = {"reference/scene_3", "reference/scene_4", "start/scene_3", "start/scene_4", "end/scene_3", "end/scene_4"}
IMAGES = {f"{c}/scene_{k}" for c in ("reference", "start", "end") for k in range(1, 5)}
CLIPS = {f"clip/scene_{k}" for k in range(1, 5)}
FINISHING = {"storyboard", "ad", "report", "storyboard_pdf", "deliverables"}
EVERYTHING = IMAGES | CLIPS | FINISHING
# A campaign's first run also runs the subjects step, which every image lists upstream (defs/jobs.py: run_assets).
FIRST_RUN = EVERYTHING | {"subjects"}
SENSOR_RESOURCES = ("briefs", "storage", "image_model", "video_model")


def definitions_for(data_dir: Path, *, quick_retries: bool = False, resources: Optional[dict] = None,
                    **overrides) -> dg.Definitions:
    """The project's definitions over ``data_dir``: the settings of this process's environment (so a test's
    GEMINI_* variables count), with ``overrides``; ``quick_retries`` makes the image model's waits between
    retries 20 ms instead of 1 s (the number of retries stays); ``resources`` replace the project's own (a video
    model pointed at a local server)."""
    settings = replace(Settings.from_env(), data_dir=str(data_dir), storage="", **overrides)
    resources = dict(resources or {})
    if quick_retries:
        model = build_resources(settings)["image_model"]
        resources["image_model"] = type(model)(**{**{name: getattr(model, name) for name in type(model).model_fields},
                                                   "initial_delay_s": 0.02})
    return build_definitions(settings, resources)


def run_selection(slots: Iterable[Slot]) -> list[dg.AssetKey]:
    """These images, the clips made from their frames, the storyboard, the ad and the report."""
    slots = list(slots)
    scenes = sorted({slot.scene for slot in slots if slot.chain in ("start", "end")})
    clips = [clip_output(k) for k in scenes]
    return asset_keys([slot.key for slot in slots] + [STORYBOARD] + clips + ([AD] if clips else []) + [REPORT])


def run_campaign(data_dir: Path, instance, campaign: str, selection=None, run_config=None, **settings):
    """One in-process run of the campaign job on ``campaign``; by default every image slot of the graph."""
    from adchain_assets.defs.images import image_asset_keys

    defs = definitions_for(data_dir, **settings)
    if not instance.has_dynamic_partition("campaigns", campaign):
        instance.add_dynamic_partitions("campaigns", [campaign])
    return defs.resolve_job_def(CAMPAIGN_JOB).execute_in_process(
        partition_key=campaign,
        instance=instance,
        raise_on_error=False,
        asset_selection=selection or image_asset_keys(settings.get("max_scenes", 8)),
        run_config=run_config,
    )


def tick(defs, instance) -> dg.SensorResult:
    """One tick of brief_sensor, and what the daemon does with its result: add the partitions it asks for."""
    sensor = defs.resolve_sensor_def("brief_sensor")
    context = dg.build_sensor_context(
        instance=instance, definitions=defs, resources={name: defs.resources[name] for name in SENSOR_RESOURCES}
    )
    result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def selected(result) -> dict[str, set[str]]:
    """Every output each run request selects."""
    return {
        request.partition_key: {key.to_user_string() for key in request.asset_selection}
        for request in result.run_requests or []
    }


def images_of(selection: set[str]) -> set[str]:
    return {key for key in selection if key.split("/")[0] in ("reference", "start", "end")}


def execute(defs, instance, request):
    return defs.resolve_job_def(CAMPAIGN_JOB).execute_in_process(
        partition_key=request.partition_key, asset_selection=request.asset_selection, instance=instance,
        tags=request.tags, raise_on_error=False,
    )


def snapshot(data_dir, campaign):
    root = data_dir / "campaigns" / campaign
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("scene_*.png")
    }


def short_clips(path: Path, seconds: int = 1) -> Path:
    """The brief at ``path`` with every scene's clip ``seconds`` long (the preview renders any length): the same
    images, requests and plan, and a fraction of the frames to render, cut and encode. For tests where the clips'
    length is not the subject."""
    text = path.read_text()
    assert "duration_s" not in text, f"{path} sets its own clip lengths"
    path.write_text(re.sub(r"(\n    end: [^\n]*)", rf"\1\n    duration_s: {seconds}", text))
    return path


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    stat = path.stat()  # a later mtime even on coarse clocks
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def adchain(env, *args, cwd=PROJECT):
    """The `adchain` command as a user runs it: its own process, in ``cwd``."""
    return subprocess.run([ADCHAIN, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def instance_of(env) -> dg.DagsterInstance:
    """The instance of ``env``'s DAGSTER_HOME."""
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    try:
        return dg.DagsterInstance.get()
    finally:
        del os.environ["DAGSTER_HOME"]


def sampling_like_a_real_model(server):
    """A real model answers the same request with a new picture each time; the fake server by default does not.
    The pictures are a tenth of the model's size: what is asked and stored is the same, and their checks are quick."""
    answered = []

    def answer(request):
        answered.append(request)
        width, height = image_size(request.aspect_ratio)
        return image_reply(make_png(f"call {len(answered)}".encode(), (width // 10, height // 10)))

    server.default_reply = answer


def prompt(scene_text: str = "The woman holding the bottle by a window") -> ComposedPrompt:
    return ComposedPrompt(
        slot=Slot("reference", 2),
        scene_text=scene_text,
        subjects=(SubjectLine("woman", "character", "Woman, 32, chestnut hair, emerald eyes"),),
        look=(("style", "cinematic"), ("lighting", "golden hour")),
        continuity="",
        reference_note="Reference images, in the order attached. Image 1: the reference image of scene 1.",
    )


def image_request(references: tuple[bytes, ...] = (), aspect_ratio: str = "1:1", text: str | None = None) -> ImageRequest:
    refs = [ReferenceImage(f"reference/scene_{i}", png) for i, png in enumerate(references, start=1)]
    return ImageRequest(prompt=prompt(text) if text else prompt(), references=refs, aspect_ratio=aspect_ratio)


def downstream_closure(changed: Iterable[Slot], max_scenes: int) -> set[Slot]:
    """``changed`` plus every slot that depends on one of them, directly or not, up to ``max_scenes``."""
    result = set(changed)
    for slot in sorted(all_slots(max_scenes), key=lambda s: (s.scene, CHAINS.index(s.chain))):
        if slot not in result and any(parent in result for parent in upstream(slot)):
            result.add(slot)
    return result


def small_images(gemini, bill_factor: int = 1) -> None:
    """The fake Gemini's default replies, billed as they are (times ``bill_factor``), with images a tenth of the
    size: what is asked and billed is unchanged, and the consistency checks of small images take a fraction of the
    time."""
    import base64

    from .gemini_server import FakeGemini, image_size, make_png

    def answer(request):
        reply = FakeGemini.default_reply(gemini, request)
        width, height = image_size(request.aspect_ratio)
        seed = request.prompt_text.encode() + b"".join(request.images)
        part = reply.body["candidates"][0]["content"]["parts"][-1]
        part["inlineData"]["data"] = base64.b64encode(make_png(seed, (width // 10, height // 10))).decode()
        reply.body["usageMetadata"]["candidatesTokenCount"] *= bill_factor
        return reply

    gemini.default_reply = answer
