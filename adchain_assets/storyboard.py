"""The campaign's storyboard sheet: one row per scene, its reference image, start frame and end frame.

It is how a team reviews a whole campaign at a glance, so it is an asset of its own, downstream of every
image. It reads the images from storage rather than as inputs: slots beyond the brief's scene count have no
image, and an input from them would make Dagster skip the sheet.
"""


import io
from typing import Optional

from datetime import datetime, timezone

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset
from PIL import Image, ImageDraw

from adchain_assets.generators.preview import drawable_text, load_font
from adchain_assets.chains import STORYBOARD_KEY, campaigns, image_asset_keys, thumbnail_markdown
from adchain_assets.references import CHAINS, Slot
from adchain_assets.cache import GenerationCache
from adchain_assets.clips import as_parents, load_parents, pinned
from adchain_assets.ledger import Ledger
from adchain_assets.lint import lint_messages
from adchain_assets.outputs import REPORT, STORYBOARD, Parent, build_request, parents_of
from adchain_assets.report import report_rows
from adchain_assets.resources import CampaignBriefs
from adchain_assets.storage import CampaignFiles, StoredImage

REPORT_KEY = AssetKey(REPORT)

CELL_WIDTH = 240
MARGIN = 16
LABEL_HEIGHT = 56
BACKGROUND = (246, 244, 240)
INK = (40, 40, 40)
MISSING = (214, 210, 204)


def render_storyboard(title: str, aspect_ratio: str, rows: list[dict[str, Optional[StoredImage]]]) -> bytes:
    """A PNG sheet: ``rows[k-1]`` maps each chain name to scene k's image (None when not made yet)."""
    ratio_w, ratio_h = (int(part) for part in aspect_ratio.split(":"))
    cell_height = round(CELL_WIDTH * ratio_h / ratio_w)
    header = 56
    width = MARGIN + len(CHAINS) * (CELL_WIDTH + MARGIN)
    height = header + len(rows) * (cell_height + LABEL_HEIGHT + MARGIN) + MARGIN
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((MARGIN, 14), drawable_text(title) or "storyboard", fill=INK, font=load_font(22))
    small = load_font(13)
    for row_index, row in enumerate(rows):
        top = header + row_index * (cell_height + LABEL_HEIGHT + MARGIN)
        for column, chain in enumerate(CHAINS):
            left = MARGIN + column * (CELL_WIDTH + MARGIN)
            image = row.get(chain)
            box = (left, top, left + CELL_WIDTH, top + cell_height)
            label = f"{chain}/scene_{row_index + 1}"
            if image is None:
                draw.rectangle(box, fill=MISSING)
                label += "  (not made)"
            else:
                with Image.open(io.BytesIO(image.png)) as picture:
                    sheet.paste(picture.convert("RGB").resize((CELL_WIDTH, cell_height)), box[:2])
                record = image.provenance
                label += f"  take {record['take']}"
                # What made it, not what it cost this time: a sheet of the same images is the same sheet, whether
                # they came from the model or the cache (costs are in the report).
                detail = f"{record['backend']} | {record.get('model', '')}"
                draw.text((left, top + cell_height + 20), detail, fill=INK, font=small)
                scores = "  ".join(
                    f"{subject} {'-' if score['value'] is None else format(score['value'], '.2f')} {'ok' if score['passed'] else 'X'}"
                    for subject, score in record.get("consistency", {}).items()
                )
                draw.text((left, top + cell_height + 36), drawable_text(scores), fill=INK, font=small)
            draw.text((left, top + cell_height + 4), label, fill=INK, font=small)
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG")
    return buffer.getvalue()


def build_storyboard_asset(max_scenes: int):
    @asset(
        key=STORYBOARD_KEY,
        deps=image_asset_keys(max_scenes),
        partitions_def=campaigns,
        group_name="review",
        kinds={"image"},
        description="One sheet per campaign: every scene's reference image, start frame and end frame.",
    )
    def storyboard(context: AssetExecutionContext, briefs: CampaignBriefs, files: CampaignFiles,
                   cache: GenerationCache) -> MaterializeResult:
        campaign = context.partition_key
        loaded = pinned(context, briefs, STORYBOARD)
        brief = loaded.brief
        stored = load_parents(files, campaign, STORYBOARD, loaded, required=False)  # a missing cell is drawn empty
        request = build_request(STORYBOARD, loaded, as_parents(stored))
        rows = [
            {chain: stored.get(Slot(chain, k).key) for chain in CHAINS}
            for k in range(1, len(brief.scenes) + 1)
        ]
        png, reused = cache.remember(
            request.fingerprint, "storyboard.png", lambda: render_storyboard(brief.title, brief.aspect_ratio, rows)
        )
        provenance = {
            "campaign": campaign, "asset": STORYBOARD, "cache_hit": reused,
            "inputs": [{"asset": name, "sha256": image.sha256} for name, image in stored.items()],
            "request_sha256": request.fingerprint, "brief_sha256": loaded.sha256,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        path = files.write_output(campaign, STORYBOARD, png, provenance)
        return MaterializeResult(
            metadata={
                "preview": MetadataValue.md(thumbnail_markdown(png, f"storyboard of {campaign}")),
                "path": MetadataValue.path(str(path)),
                "images": MetadataValue.int(len(stored)),
                "missing": MetadataValue.int(3 * len(rows) - len(stored)),
                "lint": MetadataValue.md("\n".join(f"- {line}" for line in lint_messages(loaded)) or "no warnings"),
            }
        )

    return storyboard


def build_report_asset(max_scenes: int):
    @asset(
        key=REPORT_KEY,
        deps=image_asset_keys(max_scenes),
        partitions_def=campaigns,
        group_name="review",
        kinds={"pandas", "csv"},
        description="What each image cost and how consistent it is, and the campaign's spend from the ledger.",
    )
    def report(context: AssetExecutionContext, briefs: CampaignBriefs, files: CampaignFiles) -> MaterializeResult:
        campaign = context.partition_key
        loaded = pinned(context, briefs, REPORT)
        stored = files.read_provenances(campaign, parents_of(REPORT, loaded))
        stored = {name: record for name, record in stored.items() if record is not None}
        spend = Ledger(files.base_path).spend(campaign)
        request = build_request(REPORT, loaded, {n: Parent(n, r) for n, r in stored.items()}, spend_usd=spend.spend_usd)
        table = report_rows(stored)
        provenance = {
            "campaign": campaign, "asset": REPORT, "spend_usd": spend.spend_usd, "paid_calls": spend.paid_calls,
            "unpriced_calls": spend.unpriced_calls,
            "request_sha256": request.fingerprint, "brief_sha256": loaded.sha256,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        path = files.write_output(campaign, REPORT, table.to_csv(index=False).encode(), provenance)
        return MaterializeResult(
            metadata={
                "report": MetadataValue.md(table.to_markdown(index=False, floatfmt=".3f")),
                "path": MetadataValue.path(str(path)),
                "spend_usd": MetadataValue.float(spend.spend_usd),
                "paid_calls": MetadataValue.int(spend.paid_calls),
                "unpriced_calls": MetadataValue.int(spend.unpriced_calls),
            }
        )

    return report
