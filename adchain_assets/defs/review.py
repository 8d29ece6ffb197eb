"""The review outputs: the storyboard sheet (every scene's three images), the report (what each output cost and
how consistent it is, and for the run that made it, each output's estimate beside what its calls cost) and the
storyboard PDF (a cover and a page per scene, to annotate and hand over).

They are how a team reviews a whole campaign at a glance, so each is an asset of its own, downstream of every
image (the report and the PDF also of every clip, so they count their spend). They read the images from storage
rather than as inputs: slots beyond the brief's scene count have no image, and an input from them would make
Dagster skip them.
"""

import dagster as dg

from adchain_assets.brief.lint import lint_messages
from adchain_assets.defs.clips import clip_key
from adchain_assets.defs.costs import ESTIMATE_ID_TAG
from adchain_assets.defs.images import image_asset_keys
from adchain_assets.defs.partitions import campaigns
from adchain_assets.defs.placements import placement_keys
from adchain_assets.defs.resources import CampaignBriefs, Storage
from adchain_assets.defs.sheets import SHEETS_KEY
from adchain_assets.defs.steps import as_parents, load_parents, now, pinned, thumbnail_markdown
from adchain_assets.media.pdf import PdfCell, StoryboardDocument, render_storyboard_pdf
from adchain_assets.media.report import report_rows
from adchain_assets.media.storyboard import render_storyboard
from adchain_assets.plan.calls import spend_of
from adchain_assets.plan.references import CHAINS, Slot
from adchain_assets.plan.requests import (
    REPORT,
    STORYBOARD,
    STORYBOARD_PDF,
    Parent,
    build_request,
    kind_of,
    parents_of,
    subject_of,
)
from adchain_assets.store.estimates import load_estimate

STORYBOARD_KEY = dg.AssetKey(STORYBOARD)
REPORT_KEY = dg.AssetKey(REPORT)
STORYBOARD_PDF_KEY = dg.AssetKey(STORYBOARD_PDF)


def build_storyboard_asset(max_scenes: int) -> dg.AssetsDefinition:
    @dg.asset(
        key=STORYBOARD_KEY,
        deps=[SHEETS_KEY] + image_asset_keys(max_scenes),
        partitions_def=campaigns,
        group_name="review",
        kinds={"image"},
        description="One sheet per campaign: every scene's reference image, start frame and end frame.",
    )
    def storyboard(context: dg.AssetExecutionContext, briefs: CampaignBriefs, storage: Storage) -> dg.MaterializeResult:
        campaign = context.partition_key
        files = storage.files
        loaded = pinned(context, briefs, STORYBOARD)
        brief = loaded.brief
        stored = load_parents(files, campaign, STORYBOARD, loaded, required=False)  # a missing cell is drawn empty
        approved = set(storage.review.read(campaign).approvals)
        request = build_request(STORYBOARD, loaded, as_parents(stored), approved=approved)
        rows = [
            {chain: stored.get(Slot(chain, k).key) for chain in CHAINS}
            for k in range(1, len(brief.scenes) + 1)
        ]
        sheets = [(name, stored.get(name)) for name in parents_of(STORYBOARD, loaded) if kind_of(name) == "sheet"]
        png, reused = storage.cache.remember(
            request.fingerprint, "storyboard.png",
            lambda: render_storyboard(brief.title, brief.aspect_ratio, rows, sheets, approved=approved),
        )
        provenance = {
            "campaign": campaign, "asset": STORYBOARD, "cache_hit": reused,
            "inputs": [{"asset": name, "sha256": image.sha256} for name, image in stored.items()],
            "request_sha256": request.fingerprint, "brief_sha256": loaded.sha256, "created_at": now(),
        }
        path = files.write_output(campaign, STORYBOARD, png, provenance)
        return dg.MaterializeResult(
            metadata={
                "preview": dg.MetadataValue.md(thumbnail_markdown(png, f"storyboard of {campaign}")),
                "path": dg.MetadataValue.path(str(path)),
                "images": dg.MetadataValue.int(len(stored)),
                "missing": dg.MetadataValue.int(3 * len(rows) + len(sheets) - len(stored)),
                "lint": dg.MetadataValue.md("\n".join(f"- {line}" for line in lint_messages(loaded)) or "no warnings"),
            }
        )

    return storyboard


def made_before_spend(max_scenes: int) -> list[dg.AssetKey]:
    """Every asset that can pay a model call (the sheets, images, clips and the placements'): the report and the PDF
    come after them all, so the campaign's spend they state is final."""
    return ([SHEETS_KEY] + image_asset_keys(max_scenes) + [clip_key(k) for k in range(1, max_scenes + 1)]
            + placement_keys(max_scenes))


def build_report_asset(max_scenes: int) -> dg.AssetsDefinition:
    @dg.asset(
        key=REPORT_KEY,
        deps=made_before_spend(max_scenes),
        partitions_def=campaigns,
        group_name="review",
        kinds={"pandas", "csv"},
        description="What each image and clip (the placements' too) cost and how consistent each image is, and the"
                    " campaign's spend.",
    )
    def report(context: dg.AssetExecutionContext, briefs: CampaignBriefs, storage: Storage) -> dg.MaterializeResult:
        campaign = context.partition_key
        files = storage.files
        loaded = pinned(context, briefs, REPORT)
        stored = files.read_provenances(campaign, parents_of(REPORT, loaded))
        stored = {name: record for name, record in stored.items() if record is not None}
        calls = storage.ledger.calls(campaign)
        spend = spend_of(calls)
        approved = set(storage.review.read(campaign).approvals)
        request = build_request(REPORT, loaded, {n: Parent(n, r) for n, r in stored.items()}, spend_usd=spend.spend_usd,
                                approved=approved)
        # the estimate this run was launched with, beside what its calls cost (retries included)
        estimate = load_estimate(storage.url, campaign, context.run.tags.get(ESTIMATE_ID_TAG)) or {}
        run_costs: dict[str, float] = {}
        for call in calls:
            if call.run_id == context.run.run_id and call.usage and call.cost_usd is not None:
                run_costs[call.output] = run_costs.get(call.output, 0.0) + call.cost_usd
        table = report_rows(stored, estimate.get("outputs"), run_costs, approved)
        provenance = {
            "campaign": campaign, "asset": REPORT, "spend_usd": spend.spend_usd, "paid_calls": spend.paid_calls,
            "unpriced_calls": spend.unpriced_calls,
            "request_sha256": request.fingerprint, "brief_sha256": loaded.sha256, "created_at": now(),
        }
        path = files.write_output(campaign, REPORT, table.to_csv(index=False).encode(), provenance)
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".3f")),
                "path": dg.MetadataValue.path(str(path)),
                "spend_usd": dg.MetadataValue.float(spend.spend_usd),
                "paid_calls": dg.MetadataValue.int(spend.paid_calls),
                "unpriced_calls": dg.MetadataValue.int(spend.unpriced_calls),
            }
        )

    return report


def build_storyboard_pdf_asset(max_scenes: int) -> dg.AssetsDefinition:
    @dg.asset(
        key=STORYBOARD_PDF_KEY,
        deps=made_before_spend(max_scenes),
        partitions_def=campaigns,
        group_name="review",
        kinds={"pdf"},
        description=("storyboard.pdf: a cover (title, subjects, brand, spend) and a page per scene (its frames,"
                     " texts, scores, notes and approval), numbered; made after the clips so the spend is final."),
    )
    def storyboard_pdf(context: dg.AssetExecutionContext, briefs: CampaignBriefs,
                       storage: Storage) -> dg.MaterializeResult:
        campaign = context.partition_key
        files = storage.files
        loaded = pinned(context, briefs, STORYBOARD_PDF)
        brief = loaded.brief
        images = [name for name in parents_of(STORYBOARD_PDF, loaded) if not name.startswith("clip/")]
        stored = {}
        for name in images:  # a missing image is an empty cell
            found = files.read_output(campaign, name)
            if found is not None:
                stored[name] = found
        spend = storage.ledger.spend(campaign)
        request = build_request(STORYBOARD_PDF, loaded, as_parents(stored), spend_usd=spend.spend_usd)

        def read(relative):
            return loaded.resolve(relative).read_bytes() if relative else None

        def render() -> bytes:
            rows = [{chain: PdfCell(stored[key].data, stored[key].provenance) if key in stored else None
                     for chain in CHAINS for key in [Slot(chain, k).key]}
                    for k in range(1, len(brief.scenes) + 1)]
            # a subject's sheet where the brief uses sheets (a photo's sheet is the photo), else its photo
            photos = {s.id: read(s.photo) for s in brief.subjects if s.photo}
            photos.update({subject_of(name): found.data for name, found in stored.items() if kind_of(name) == "sheet"})
            brand = brief.brand
            return render_storyboard_pdf(StoryboardDocument(
                brief=brief, campaign=campaign, brief_sha256=loaded.sha256, spend_usd=spend.spend_usd, rows=rows,
                subject_images=photos, logo=read(brand.logo) if brand else None,
                font=read(brand.font) if brand else None,
            ))

        pdf, reused = storage.cache.remember(request.fingerprint, "storyboard.pdf", render)
        provenance = {
            "campaign": campaign, "asset": STORYBOARD_PDF, "cache_hit": reused, "pages": 1 + len(brief.scenes),
            "inputs": [{"asset": name, "sha256": image.sha256} for name, image in stored.items()],
            "spend_usd": spend.spend_usd,
            "request_sha256": request.fingerprint, "brief_sha256": loaded.sha256, "created_at": now(),
        }
        path = files.write_output(campaign, STORYBOARD_PDF, pdf, provenance)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "pages": dg.MetadataValue.int(provenance["pages"]),
                "images": dg.MetadataValue.int(len(stored)),
                "bytes": dg.MetadataValue.int(len(pdf)),
            }
        )

    return storyboard_pdf
