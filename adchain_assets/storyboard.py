"""The campaign's storyboard sheet: one row per scene, its reference image, start frame and end frame.

It is how a team reviews a whole campaign at a glance, so it is an asset of its own, downstream of every
image. It reads the images from storage rather than as inputs: slots beyond the brief's scene count have no
image, and an input from them would make Dagster skip the sheet.
"""


import io
from typing import Optional

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from PIL import Image, ImageDraw

from adchain_assets.generators.preview import drawable_text, load_font
from adchain_assets.chains import STORYBOARD_KEY, campaigns, image_asset_keys, thumbnail_markdown
from adchain_assets.references import CHAINS, Slot
from adchain_assets.report import report_rows
from adchain_assets.resources import CampaignBriefs
from adchain_assets.storage import CampaignFiles, StoredImage, write_atomically

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
                detail = f"{record['backend']} | ${float(record['cost_usd']):.3f}"
                if record.get("cache_hit"):
                    detail += " | cached"
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
    def storyboard(context: AssetExecutionContext, briefs: CampaignBriefs, files: CampaignFiles) -> MaterializeResult:
        campaign = context.partition_key
        brief = briefs.load(campaign).brief
        rows = [
            {chain: files.read_image(campaign, Slot(chain, k)) for chain in CHAINS}
            for k in range(1, len(brief.scenes) + 1)
        ]
        png = render_storyboard(brief.title, brief.aspect_ratio, rows)
        path = files.campaign_dir(campaign) / "storyboard.png"
        write_atomically(path, png)
        made = [image for row in rows for image in row.values() if image is not None]
        report = report_rows({f"{i.provenance['chain']}/scene_{i.provenance['scene']}": i.provenance for i in made})
        report_path = files.campaign_dir(campaign) / "report.csv"
        write_atomically(report_path, report.to_csv(index=False).encode())
        return MaterializeResult(
            metadata={
                "preview": MetadataValue.md(thumbnail_markdown(png, f"storyboard of {campaign}")),
                "path": MetadataValue.path(str(path)),
                "report": MetadataValue.md(report.to_markdown(index=False, floatfmt=".3f")),
                "report_path": MetadataValue.path(str(report_path)),
                "images": MetadataValue.int(len(made)),
                "missing": MetadataValue.int(3 * len(rows) - len(made)),
                "cost_usd": MetadataValue.float(round(sum(float(i.provenance["cost_usd"]) for i in made), 6)),
            }
        )

    return storyboard
