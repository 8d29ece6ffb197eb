"""``adchain export CAMPAIGN [--zip PATH | --to DIR]``: the campaign's deliverables written out of storage.

The deliverables must be up to date with the brief (the plan lists nothing to make for them) and match their
manifest, file by file; then they go to a zip (``--zip``; its manifest's hashes are checked against its files once
it is written) or a local folder (``--to``, default ``./<campaign>-deliverables``). Exit 2 for what the user can
fix (an unknown campaign, a brief that cannot be used, deliverables not made or out of date), 1 when the stored
deliverables do not match their manifest.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from adchain_assets.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK


def export(campaign: str, *, zip_path: Optional[str] = None, to: Optional[str] = None, out=sys.stdout) -> int:
    from adchain_assets.brief.model import BriefError, campaign_id_problem
    from adchain_assets.cli.main import open_campaign
    from adchain_assets.plan.requests import DELIVERABLES
    from adchain_assets.settings import Settings
    from adchain_assets.store.deliverables import DeliverablesError, export_folder, export_zip, read_deliverables
    from adchain_assets.store.files import CampaignFiles

    problem = campaign_id_problem(campaign)
    if problem:
        print(f"adchain export: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    settings = Settings.from_env()
    brief = settings.briefs_dir / f"{campaign}.yaml"
    if not brief.exists() and not brief.with_suffix(".yml").exists():
        print(f"adchain export: no campaign {campaign!r}: there is no brief {brief}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        plan = open_campaign(campaign).plan
    except BriefError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT
    waiting = dict(plan.outdated + plan.held).get(DELIVERABLES)
    files = CampaignFiles(settings.storage_url)
    if waiting is not None and files.read_provenances(campaign, [DELIVERABLES])[DELIVERABLES] is not None:
        print(f"{campaign}: the deliverables are out of date with the brief ({waiting}); run"
              f" `adchain materialize {campaign}` first", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        manifest, contents = read_deliverables(files, campaign)
    except DeliverablesError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT if "no deliverables yet" in str(error) else EXIT_FAILED
    if zip_path:
        target = export_zip(manifest, contents, Path(zip_path))
    else:
        target = export_folder(manifest, contents, Path(to or f"{campaign}-deliverables"))
    size = sum(len(data) for data in contents.values())
    print(f"{campaign}: {len(contents) + 1} files ({size / 1e6:.1f} MB, manifest.json included) written to"
          f" {target.resolve()}", file=out)
    for entry in manifest["files"]:
        print(f"  {entry['path']:<16} {entry['bytes']:>10,} bytes  sha256 {entry['sha256'][:16]}", file=out)
    return EXIT_OK
