"""The folder to hand over: ``<storage>/campaigns/<campaign>/deliverables/`` with the final ad, its captions
(``ad.srt``, when the ad has captions), ``storyboard.pdf``, ``report.csv`` and ``manifest.json``, and the ways to
write it out (a local folder or a zip).

``manifest.json`` is ``{"campaign", "title", "files": [{"path", "sha256", "bytes"}], "brief_sha256", "spend_usd",
"created_at"}``. It is the ``deliverables`` output's data file (its provenance is ``deliverables.json`` beside the
folder, so nothing but the hand-over is inside it): each file is written atomically first (a file whose bytes are
already there is left alone), then the manifest with its provenance, then files the manifest no longer lists are
removed. A reader that finds files not matching the manifest (a write cut short, or a file changed by hand) is
told which; :func:`read_deliverables` never hands them over.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from upath import UPath

from adchain_assets.store.files import DELIVERABLES_DIR, CampaignFiles, sha256, write_atomically

OUTPUT = "deliverables"
MANIFEST = "manifest.json"
STORED = (".mp4", ".pdf", ".png", ".jpg")  # already compressed: stored as they are in a zip


class DeliverablesError(Exception):
    """The deliverables cannot be handed over; the message says why and what to do."""


def manifest_of(campaign: str, title: str, contents: Mapping[str, bytes], brief_sha256: str,
                spend_usd: float) -> dict[str, Any]:
    return {
        "campaign": campaign,
        "title": title,
        "files": [{"path": name, "sha256": sha256(data), "bytes": len(data)} for name, data in contents.items()],
        "brief_sha256": brief_sha256,
        "spend_usd": round(spend_usd, 6),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_deliverables(files: CampaignFiles, campaign: str, contents: Mapping[str, bytes],
                       manifest: Mapping[str, Any], provenance: Mapping[str, Any]) -> UPath:
    """Write the folder: the files, then the manifest (the output's data) with its provenance, then drop files
    the manifest does not list. Returns the manifest's path."""
    folder = files.campaign_dir(campaign) / DELIVERABLES_DIR
    for name, data in contents.items():
        target = folder / name
        try:
            if target.exists() and target.stat().st_size == len(data) and sha256(target.read_bytes()) == sha256(data):
                continue
        except FileNotFoundError:
            pass
        write_atomically(target, data)
    body = json.dumps(manifest, indent=2).encode() + b"\n"
    path = files.write_output(campaign, OUTPUT, body, provenance)
    for leftover in folder.iterdir():
        if leftover.is_file() and leftover.name not in contents and leftover.name != MANIFEST \
                and not leftover.name.startswith("."):
            leftover.unlink(missing_ok=True)
    return path


def read_deliverables(files: CampaignFiles, campaign: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and every file it lists, each checked against it."""
    stored = files.read_output(campaign, OUTPUT)
    if stored is None:
        raise DeliverablesError(f"{campaign}: no deliverables yet (nothing at {files.output_path(campaign, OUTPUT)});"
                                f" run `adchain materialize {campaign}` first")
    manifest = json.loads(stored.data)
    folder = files.campaign_dir(campaign) / DELIVERABLES_DIR
    contents: dict[str, bytes] = {}
    for entry in manifest["files"]:
        try:
            data = (folder / entry["path"]).read_bytes()
        except FileNotFoundError:
            raise DeliverablesError(f"{campaign}: deliverables/{entry['path']} is missing; run"
                                    f" `adchain materialize {campaign}` again") from None
        if len(data) != entry["bytes"] or sha256(data) != entry["sha256"]:
            raise DeliverablesError(f"{campaign}: deliverables/{entry['path']} does not match manifest.json (changed"
                                    " after it was written); it is not handed over")
        contents[entry["path"]] = data
    return manifest, contents


def _manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return json.dumps(manifest, indent=2).encode() + b"\n"


def export_zip(manifest: Mapping[str, Any], contents: Mapping[str, bytes], target: Path) -> Path:
    """A zip of the files and the manifest at ``target`` (written beside it, then renamed over it), read back and
    checked against the manifest."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(temporary, "w") as archive:
            for name, data in contents.items():
                kind = zipfile.ZIP_STORED if name.lower().endswith(STORED) else zipfile.ZIP_DEFLATED
                archive.writestr(name, data, compress_type=kind)
            archive.writestr(MANIFEST, _manifest_bytes(manifest), compress_type=zipfile.ZIP_DEFLATED)
        check_zip(Path(temporary))
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


def check_zip(path: Path) -> dict[str, Any]:
    """The manifest of the zip at ``path``, after checking every file it lists against it."""
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read(MANIFEST))
        for entry in manifest["files"]:
            data = archive.read(entry["path"])
            if len(data) != entry["bytes"] or sha256(data) != entry["sha256"]:
                raise DeliverablesError(f"{path}: {entry['path']} does not match the manifest")
    return manifest


def export_folder(manifest: Mapping[str, Any], contents: Mapping[str, bytes], target: Path) -> Path:
    """The files and the manifest written into the local folder ``target`` (other files in it are left alone)."""
    target = Path(target)
    for name, data in contents.items():
        write_atomically(UPath(target / name), data)
    write_atomically(UPath(target / MANIFEST), _manifest_bytes(manifest))
    return target
