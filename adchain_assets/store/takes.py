"""Every take of an image, kept: ``<storage>/takes/<campaign>/<output>/take_<n>_<sha256[:16]>.png`` with its
provenance JSON beside it, one pair per distinct picture ever made for that output (a take re-made after its scene
text changed is another picture of the same take number). Beside the campaign folder, as the ledger is: the
campaign folder holds the outputs as they are now, and the plan's listing of it stays one page however many takes
were made.

The image step keeps each picture it makes (and the take an edit starts from) before the output itself is
written, so the current image is always among the kept ones; a picture kept before is not written again. Pairs
are written like outputs (JSON first, then the PNG, each atomically), and a pair whose PNG does not match its JSON
is not listed. Nothing here deletes: ``adchain pick`` copies a kept take back as the current output, with its exact
bytes and no model call. Best-of-N candidates stay where the step keeps them (``candidates/``); a take's
provenance lists them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from upath import UPath

from adchain_assets.store.files import (
    CampaignFiles,
    ProvenanceMismatch,
    StoredOutput,
    files_below,
    made_record,
    read_below,
    read_output_file,
    write_output_file,
)


class TakeHistory:
    """The kept takes of a campaign's images."""

    def __init__(self, files: CampaignFiles):
        self.files = files

    def folder(self, campaign: str, output: str) -> UPath:
        return self.files.base / "takes" / campaign / output

    def path(self, campaign: str, output: str, take: int, sha256: str) -> UPath:
        return self.folder(campaign, output) / f"take_{int(take)}_{sha256[:16]}.png"

    def keep(self, campaign: str, output: str, image: StoredOutput) -> UPath:
        """Keep ``image`` (bytes and provenance) as one of ``output``'s takes, unless it is kept already."""
        record = image.provenance
        path = self.path(campaign, output, int(record.get("take", 0)), image.sha256)
        if not path.with_suffix(".json").exists() or not path.exists():
            kept_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")  # orders takes of one second
            write_output_file(path, StoredOutput(image.data, {**record, "kept_at": kept_at}))
        return path

    def records(self, campaign: str, output: str) -> list[dict]:
        """The provenance of every kept take of ``output`` (each with ``kept_as``, its PNG below the storage URL,
        and ``kept_at``), in the order they were kept: one listing and one batch of reads."""
        folder = self.folder(campaign, output)
        sizes = files_below(folder)
        names = [n for n in sizes if n.endswith(".json") and "/" not in n and not n.startswith(".")]
        found = []
        prefix = f"takes/{campaign}/{output}/"
        for name, text in read_below(folder, names).items():
            png = name[: -len(".json")] + ".png"
            record = made_record(text, sizes.get(png))
            if record is not None:
                found.append({**record, "kept_as": prefix + png})
        return sorted(found, key=lambda r: str(r.get("kept_at") or r.get("created_at") or ""))

    def read(self, campaign: str, output: str, take: int, sha256: str) -> Optional[StoredOutput]:
        """A kept take's bytes and provenance, verified by sha256 (None when it is not kept)."""
        try:
            kept = read_output_file(self.path(campaign, output, take, sha256))
        except (FileNotFoundError, ProvenanceMismatch):
            return None
        return kept if kept.sha256 == sha256 else None

    def find(self, campaign: str, output: str, sha256: str) -> Optional[StoredOutput]:
        """The kept take whose bytes have ``sha256``, whatever its take number."""
        for record in self.records(campaign, output):
            if record.get("sha256") == sha256:
                return self.read(campaign, output, int(record.get("take", 0)), sha256)
        return None


def without_keeping_fields(record: dict) -> dict:
    """A kept take's provenance as the output's own (without where it was kept)."""
    return {name: value for name, value in record.items() if name not in ("kept_as", "kept_at")}
