"""Campaign-first storage of images and their provenance, over any fsspec path.

``<base>/campaigns/<campaign>/<chain>/scene_<k>.png`` holds exactly the bytes the backend returned and
``scene_<k>.json`` beside it says where they came from. Both are written to a temporary name and renamed,
so a crash never leaves a truncated file; the JSON records the PNG's sha256, so a reader can tell when the
pair does not belong together.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from dagster import ConfigurableIOManagerFactory, ConfigurableResource, InputContext, OutputContext, UPathIOManager
from PIL import Image
from upath import UPath
from upath.implementations.local import LocalPath

from adchain_assets.references import Slot


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class StoredImage:
    """An image asset's value: the PNG bytes and the provenance record that goes beside them."""

    png: bytes
    provenance: Mapping[str, Any]

    @property
    def sha256(self) -> str:
        return sha256(self.png)


class ProvenanceMismatch(Exception):
    """The PNG on disk is not the one its provenance JSON describes."""


def write_atomically(path: UPath, data: bytes) -> None:
    """Write to a hidden temporary sibling, then rename over the target.

    Locally the rename is atomic (``os.replace``); on object stores the final object appears whole.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(data)
    try:
        if isinstance(temporary, LocalPath):
            temporary.replace(path)
        else:
            temporary.rename(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_image(path: UPath, image: StoredImage) -> None:
    provenance = dict(image.provenance)
    if provenance.get("sha256") != image.sha256:
        raise ProvenanceMismatch(f"provenance for {path} names sha256 {provenance.get('sha256')}")
    write_atomically(path, image.png)
    write_atomically(path.with_suffix(".json"), json.dumps(provenance, indent=2).encode() + b"\n")


def read_image(path: UPath) -> StoredImage:
    png = path.read_bytes()
    provenance = json.loads(path.with_suffix(".json").read_text())
    if provenance.get("sha256") != sha256(png):
        raise ProvenanceMismatch(
            f"{path} does not match its provenance {path.with_suffix('.json').name}"
            " (interrupted write?); materialize this image again"
        )
    return StoredImage(png=png, provenance=provenance)


def png_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as image:
        return image.size


class CampaignFiles(ConfigurableResource):
    """The campaign folder tree; ``base_path`` may be a local folder or an ``s3://`` / ``gs://`` URL."""

    base_path: str

    @property
    def base(self) -> UPath:
        return UPath(self.base_path)

    def campaign_dir(self, campaign: str) -> UPath:
        return self.base / "campaigns" / campaign

    def image_path(self, campaign: str, slot: Slot) -> UPath:
        return self.campaign_dir(campaign) / slot.chain / f"scene_{slot.scene}.png"

    def current_take(self, campaign: str, slot: Slot) -> int:
        """The take of the stored image (0 when there is none): a new take is kept by later runs."""
        try:
            return int(json.loads(self.image_path(campaign, slot).with_suffix(".json").read_text())["take"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return 0

    def read_image(self, campaign: str, slot: Slot) -> Optional[StoredImage]:
        """The stored image of ``slot``, or None when it has not been made."""
        path = self.image_path(campaign, slot)
        return read_image(path) if path.exists() else None


class CampaignImageIOManager(UPathIOManager):
    """Stores image assets campaign-first instead of Dagster's asset-first default layout."""

    extension = ".png"

    def __init__(self, files: CampaignFiles):
        super().__init__(base_path=files.base)
        self.files = files

    def get_path_for_partition(self, context, path: UPath, partition: str) -> UPath:
        slot = Slot.parse("/".join(context.asset_key.path))
        return self.files.image_path(partition, slot).with_suffix("")

    def dump_to_path(self, context: OutputContext, obj: StoredImage, path: UPath) -> None:
        write_image(path, obj)

    def load_from_path(self, context: InputContext, path: UPath) -> StoredImage:
        return read_image(path)


class CampaignImageStorage(ConfigurableIOManagerFactory):
    """The IO manager resource of the image assets."""

    files: CampaignFiles

    def create_io_manager(self, context) -> CampaignImageIOManager:
        return CampaignImageIOManager(self.files)
