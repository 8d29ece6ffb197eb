"""The image assets' IO manager: each image is stored campaign-first, ``<storage>/campaigns/<campaign>/<chain>/
scene_<k>.png`` with its provenance JSON beside it, instead of Dagster's asset-first default layout."""

from __future__ import annotations

import json

import dagster as dg
from upath import UPath

from adchain_assets.defs.resources import Storage
from adchain_assets.plan.references import Slot
from adchain_assets.store.files import CampaignFiles, StoredOutput, read_output_file, write_output_file


def unchanged(path: UPath, output: StoredOutput) -> bool:
    """True when ``path``'s provenance JSON is already exactly ``output``'s (it names the PNG's sha256) and the PNG
    beside it has its size: writing them again would change nothing but the files' times."""
    try:
        same = json.loads(path.with_suffix(".json").read_text()) == dict(output.provenance)
        return same and path.fs.size(path.path) == len(output.data)
    except (FileNotFoundError, ValueError):
        return False


class CampaignImageIOManager(dg.UPathIOManager):
    extension = ".png"

    def __init__(self, files: CampaignFiles):
        super().__init__(base_path=files.base)
        self.files = files

    def get_path_for_partition(self, context, path: UPath, partition: str) -> UPath:
        slot = Slot.parse("/".join(context.asset_key.path))
        return self.files.image_path(partition, slot).with_suffix("")

    def dump_to_path(self, context: dg.OutputContext, obj: StoredOutput, path: UPath) -> None:
        if unchanged(path, obj):  # an approved image kept as stored: its files are not rewritten
            return
        write_output_file(path, obj)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> StoredOutput:
        return read_output_file(path)


class CampaignImageStorage(dg.ConfigurableIOManagerFactory):
    """The IO manager resource of the image assets."""

    storage: Storage

    def create_io_manager(self, context) -> CampaignImageIOManager:
        return CampaignImageIOManager(self.storage.files)
