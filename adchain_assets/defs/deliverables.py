"""The ``deliverables`` asset: the folder to hand over (:mod:`adchain_assets.store.deliverables`), made from the
finished ad (and its ``ad.srt``), each placement's finished ad (``ad_9x16.mp4``, ``ad_9x16.srt``), the storyboard PDF
and the report, with the manifest of their hashes, the
brief's sha256 and the campaign's spend. It copies what is stored and calls no model: changing only the brand or a
caption re-makes the ad, the PDF and this, nothing else."""

import dagster as dg

from adchain_assets.defs.clips import AD_KEY
from adchain_assets.defs.partitions import campaigns
from adchain_assets.defs.placements import placement_key
from adchain_assets.defs.resources import CampaignBriefs, Storage
from adchain_assets.defs.review import REPORT_KEY, STORYBOARD_PDF_KEY
from adchain_assets.defs.steps import as_parents, load_parents, now, pinned
from adchain_assets.plan.placements import folder_of, placement_output
from adchain_assets.plan.requests import AD, DELIVERABLES, REPORT, STORYBOARD_PDF, build_request
from adchain_assets.store.deliverables import manifest_of, write_deliverables
from adchain_assets.store.files import SUBTITLES, sha256

DELIVERABLES_KEY = dg.AssetKey(DELIVERABLES)


def build_deliverables_asset() -> dg.AssetsDefinition:
    @dg.asset(
        key=DELIVERABLES_KEY,
        deps=[AD_KEY, placement_key(AD), STORYBOARD_PDF_KEY, REPORT_KEY],
        partitions_def=campaigns,
        group_name="review",
        kinds={"folder"},
        description=("deliverables/: the ad, ad.srt, each placement's ad, storyboard.pdf, report.csv and manifest.json (each file's"
                     " sha256 and size, the brief's sha256, the spend); `adchain export` writes it out."),
    )
    def deliverables(context: dg.AssetExecutionContext, briefs: CampaignBriefs,
                     storage: Storage) -> dg.MaterializeResult:
        campaign = context.partition_key
        files = storage.files
        loaded = pinned(context, briefs, DELIVERABLES)
        stored = load_parents(files, campaign, DELIVERABLES, loaded)
        spend = storage.ledger.spend(campaign)
        request = build_request(DELIVERABLES, loaded, as_parents(stored), spend_usd=spend.spend_usd)
        contents: dict[str, bytes] = {}
        ads = [(AD, "", "ad")] + [(placement_output(shape, AD), f"placements/{folder_of(shape)}/",
                                   f"ad_{folder_of(shape)}") for shape in loaded.brief.placements]
        for name, folder, stem in ads:  # ad.mp4 and ad.srt; ad_9x16.mp4 and ad_9x16.srt
            contents[f"{stem}.mp4"] = stored[name].data
            srt = stored[name].provenance.get("srt")
            if srt:
                data = (files.campaign_dir(campaign) / f"{folder}{SUBTITLES}").read_bytes()
                if sha256(data) != srt["sha256"]:
                    raise dg.Failure(description=f"{DELIVERABLES}: {folder}{SUBTITLES} is not the one {name}'s"
                                     " provenance names; materialize it again", allow_retries=False)
                contents[f"{stem}.srt"] = data
        contents["storyboard.pdf"] = stored[STORYBOARD_PDF].data
        contents["report.csv"] = stored[REPORT].data
        manifest = manifest_of(campaign, loaded.brief.title, contents, loaded.sha256, spend.spend_usd)
        provenance = {
            "campaign": campaign, "asset": DELIVERABLES, "files": manifest["files"],
            "inputs": [{"asset": name, "sha256": output.sha256} for name, output in stored.items()],
            "spend_usd": spend.spend_usd,
            "request_sha256": request.fingerprint, "brief_sha256": loaded.sha256, "created_at": now(),
        }
        path = write_deliverables(files, campaign, contents, manifest, provenance)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path.parent)),
                "files": dg.MetadataValue.md(
                    "\n".join(f"- {f['path']}: {f['bytes']:,} bytes" for f in manifest["files"])),
                "spend_usd": dg.MetadataValue.float(spend.spend_usd),
            }
        )

    return deliverables
