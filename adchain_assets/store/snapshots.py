"""Pinned briefs: the exact brief a run uses, stored content-addressed beside the campaign.

``pin`` stores the brief file's bytes as ``<storage>/campaigns/<campaign>/briefs/<sha256>.yaml`` and every file it
names (``reference_image``, subjects' ``photo``, ``brand.logo``, ``brand.font``, ``music``) as
``briefs/files/<sha256><suffix>``, with a manifest ``briefs/<sha256>.files.json`` mapping the brief's relative paths
to those copies. A run carries the sha256 in its
``adchain/brief_sha256`` tag and every step of it loads that snapshot, so editing the file during a run never
mixes two versions in one run; the next tick sees the edit.

A run started without the tag (from the UI, or by the automation sensor) is pinned by its first step: the step
pins the current file and records ``campaigns/<campaign>/runs/<run id>.json``; later steps of the run read that
record. Two first steps racing may both pin, and the first record written wins (on object stores, where nothing is
create-if-absent, the race window is one request long).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Mapping, Optional

from upath import UPath

from adchain_assets.brief.model import BriefError, BriefProblem, LoadedBrief, parse_brief
from adchain_assets.store.files import write_atomically

BRIEF_TAG = "adchain/brief_sha256"


def _briefs_folder(storage_url: str, campaign: str) -> UPath:
    return UPath(storage_url) / "campaigns" / campaign / "briefs"


def pin(loaded: LoadedBrief, storage_url: str) -> str:
    """Store ``loaded``'s file and the files it names, content-addressed; returns the brief's sha256."""
    folder = _briefs_folder(storage_url, loaded.campaign)
    raw = Path(loaded.path).read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    target = folder / f"{sha}.yaml"
    if not target.exists():
        write_atomically(target, raw)
    brief = loaded.brief
    named = [brief.reference_image, brief.music] + [s.photo for s in brief.subjects]
    if brief.brand is not None:
        named += [brief.brand.logo, brief.brand.font]
    manifest = {}
    for relative in sorted({n for n in named if n}):
        data = Path(loaded.resolve(relative)).read_bytes()
        name = f"files/{hashlib.sha256(data).hexdigest()}{Path(relative).suffix.lower()}"
        if not (folder / name).exists():
            write_atomically(folder / name, data)
        manifest[relative] = name
    write_atomically(folder / f"{sha}.files.json", json.dumps(manifest, sort_keys=True).encode())
    return sha


def load_pinned(campaign: str, sha: str, storage_url: str, *, max_scenes: int) -> LoadedBrief:
    folder = _briefs_folder(storage_url, campaign)
    try:
        raw = (folder / f"{sha}.yaml").read_bytes()
    except FileNotFoundError:
        raise BriefError([BriefProblem(f"{campaign} brief {sha[:12]}", "", "pinned snapshot not found in storage")]) from None
    try:
        manifest = json.loads((folder / f"{sha}.files.json").read_text())
    except FileNotFoundError:
        manifest = {}
    brief = parse_brief(raw.decode("utf-8"), file=f"{campaign}.yaml@{sha[:12]}", brief_dir=None, max_scenes=max_scenes)
    files = {relative: folder / name for relative, name in manifest.items()}
    return LoadedBrief(campaign=campaign, path=Path(f"{campaign}.yaml"), brief=brief, sha256=sha, files=files)


def run_record(storage_url: str, campaign: str, run_id: str) -> UPath:
    return UPath(storage_url) / "campaigns" / campaign / "runs" / f"{run_id}.json"


def pinned_for_run(campaign: str, run_id: str, tags: Mapping[str, str], load_current: Callable[[], LoadedBrief],
                   storage_url: str, *, max_scenes: int) -> LoadedBrief:
    """The brief of run ``run_id``: its tag's snapshot, else the one its first step pinned (the current file)."""
    sha: Optional[str] = tags.get(BRIEF_TAG)
    if not sha:
        record = run_record(storage_url, campaign, run_id)
        try:
            sha = json.loads(record.read_text())["brief_sha256"]
        except (FileNotFoundError, ValueError, KeyError):
            sha = pin(load_current(), storage_url)
            if not record.exists():
                write_atomically(record, json.dumps({"brief_sha256": sha}).encode())
            sha = json.loads(record.read_text())["brief_sha256"]
    return load_pinned(campaign, sha, storage_url, max_scenes=max_scenes)
