"""The ``deliverables`` asset: the folder to hand over (:mod:`adchain_assets.store.deliverables`), made from the
finished ad (and its ``ad.srt``), the storyboard PDF and the report, with the manifest of their hashes, the
brief's sha256 and the campaign's spend. It copies what is stored and calls no model: changing only the brand or a
caption re-makes the ad, the PDF and this, nothing else."""

import dagster as dg

from adchain_assets.defs.clips import AD_KEY
from adchain_assets.defs.partitions import campaigns
from adchain_assets.defs.resources import CampaignBriefs, Storage
from adchain_assets.defs.review import REPORT_KEY, STORYBOARD_PDF_KEY
from adchain_assets.defs.steps import as_parents, load_parents, now, pinned
from adchain_assets.plan.requests import AD, DELIVERABLES, REPORT, STORYBOARD_PDF, build_request
from adchain_assets.store.deliverables import manifest_of, write_deliverables
from adchain_assets.store.files import SUBTITLES, sha256

DELIVERABLES_KEY = dg.AssetKey(DELIVERABLES)


def build_deliverables_asset() -> dg.AssetsDefinition:
    @dg.asset(
        key=DELIVERABLES_KEY,
        deps=[AD_KEY, STORYBOARD_PDF_KEY, REPORT_KEY],
        partitions_def=campaigns,
        group_name="review",
        kinds={"folder"},
        description=("deliverables/: the ad, ad.srt, storyboard.pdf, report.csv and manifest.json (each file's"
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
        contents = {"ad.mp4": stored[AD].data}
        srt = stored[AD].provenance.get("srt")
        if srt:
            data = (files.campaign_dir(campaign) / SUBTITLES).read_bytes()
            if sha256(data) != srt["sha256"]:
                raise dg.Failure(description=f"{DELIVERABLES}: {SUBTITLES} is not the one the ad's provenance names;"
                                 " materialize the ad again", allow_retries=False)
            contents[SUBTITLES] = data
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
