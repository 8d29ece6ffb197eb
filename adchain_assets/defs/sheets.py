"""The subject sheets of a ``sheets`` campaign: one asset, ``subjects``, upstream of every image.

For each subject of the brief the step makes its sheet, ``subjects/<id>`` (``campaigns/<c>/subjects/<id>.png`` and
its provenance): the subject's ``photo`` as is when it has one (no call), else a generated character reference
sheet or product packshot (one model call per subject, cached, metered, refused requests held). A sheet whose
stored request is still the one the brief asks for is left as it is, so a run re-makes only the sheets whose
request changed. Its check, ``sheet``, asks that each character sheet show one face per view and each product
sheet have the texture to be matched (its keypoints are stored as the product's anchor).

A sheet takes notes, takes and sign-off as an image does (:mod:`adchain_assets.defs.direction`; the config names
the subjects): a note edits its current take, ``pick_take`` brings a kept take back, and an approved sheet is kept
as stored by every run, so the images that show it are made from the approved bytes.

In the other reference modes the step makes nothing but still materializes (with a note), so that a run of the
whole job never skips the images because of it. A transient fault fails the step (its RetryPolicy asks again; the
sheets already made come from the cache); a model's final refusal of one sheet is recorded and the others are made:
the images that show the refused sheet fail naming it, the rest go on.
"""

import dagster as dg
from pydantic import Field

from adchain_assets.brief.model import LoadedBrief
from adchain_assets.defs.checks import SHEET_CHECK, sheet_check_result
from adchain_assets.defs.direction import OutputConfig, check_config, directed_take, keep_approved, sign_off
from adchain_assets.defs.partitions import campaigns
from adchain_assets.defs.resources import CampaignBriefs, ImageModel, Storage
from adchain_assets.defs.steps import held_call, now, paid_generator, pinned, thumbnail_markdown
from adchain_assets.media.images import inline_reference, png_size, to_png
from adchain_assets.plan.prompts import SHEET_ASPECT_RATIOS
from adchain_assets.plan.references import SHEETS, sheet_output
from adchain_assets.plan.requests import Request, build_request, pixel_digest, sheet_prompt
from adchain_assets.plan.review import direction_fields
from adchain_assets.providers.images.base import GenerationError, ImageRequest, ReferenceImage
from adchain_assets.providers.images.preview import PreviewGenerator
from adchain_assets.store.files import StoredOutput, sha256
from adchain_assets.store.ledger import CallMeter
from adchain_assets.vision.scores import score_sheet, summary

SHEETS_KEY = dg.AssetKey(SHEETS)
MODEL_POOL = "image_model"


class SheetRunConfig(dg.Config):
    new_take: list[str] = Field(
        default_factory=list,
        description="Subjects (their ids) to make a new take of: the cache is bypassed and later runs keep it.",
    )
    note: dict[str, str] = Field(
        default_factory=dict,
        description="A director's note per subject id, e.g. {woman: 'softer light'}: the next take of that sheet is"
        " the model's edit of its current take; the note stays with the sheet as direction.",
    )
    pick_take: dict[str, int] = Field(
        default_factory=dict,
        description="An earlier take per subject id to make current again (adchain takes lists them).",
    )
    approve: list[str] = Field(
        default_factory=list,
        description="Subjects whose sheets to sign off as stored: no run re-makes them until unapproved.",
    )
    unapprove: list[str] = Field(default_factory=list, description="Subjects whose sheets' sign-off to withdraw.")
    by: str = Field(default="", description="Who approves or unapproves, recorded with the sign-off.")


def subject_config(config: SheetRunConfig, subject_id: str) -> OutputConfig:
    """What ``config`` asks of one subject's sheet."""
    return OutputConfig(new_take=subject_id in config.new_take, note=config.note.get(subject_id, ""),
                        pick_take=config.pick_take.get(subject_id), approve=subject_id in config.approve,
                        unapprove=subject_id in config.unapprove, by=config.by)


def sheet_provenance(loaded: LoadedBrief, subject_id: str, png: bytes, request: Request, **fields) -> dict:
    width, height = png_size(png)
    return {
        "campaign": loaded.campaign, "asset": SHEETS, "subject": subject_id, "take": 0, "references": [],
        "sha256": sha256(png), "pixels_sha256": pixel_digest(png), "bytes": len(png), "width": width,
        "height": height, "cache_hit": False, "latency_s": 0.0, "cost_usd": 0.0,
        "request_sha256": request.fingerprint, "brief_sha256": loaded.sha256, "created_at": now(), **fields,
    }


def build_sheets_asset(retry_policy: dg.RetryPolicy) -> dg.AssetsDefinition:
    @dg.asset(
        key=SHEETS_KEY,
        partitions_def=campaigns,
        group_name="subjects",
        check_specs=[dg.AssetCheckSpec(SHEET_CHECK, asset=SHEETS_KEY, blocking=True,
                                       description="Each character sheet shows one face per view; each product "
                                                   "sheet has the texture to be recognised.")],
        pool=MODEL_POOL,
        retry_policy=retry_policy,
        kinds={"image"},
        description="A sheet per subject (a reference portrait or a packshot) that every image of the scene is shown.",
    )
    def subjects(context: dg.AssetExecutionContext, config: SheetRunConfig, briefs: CampaignBriefs,
                 image_model: ImageModel, storage: Storage):
        campaign = context.partition_key
        files = storage.files
        loaded = pinned(context, briefs, SHEETS)
        brief = loaded.brief
        if brief.reference_mode != "sheets":
            note = f"reference_mode {brief.reference_mode}: no sheets (only reference_mode sheets makes them)"
            yield dg.MaterializeResult(metadata={"note": dg.MetadataValue.text(note)})
            yield dg.AssetCheckResult(check_name=SHEET_CHECK, passed=True, metadata={"note": note})
            return
        ids = {s.id for s in brief.subjects}
        named = [*config.new_take, *config.note, *config.pick_take, *config.approve, *config.unapprove]
        unknown = sorted(set(named) - ids)
        if unknown:
            raise dg.Failure(description=f"{SHEETS}: the run config names {', '.join(unknown)}, not a subject of the"
                             " brief", allow_retries=False)
        maker = image_model.maker()
        ledger = storage.ledger
        budget = briefs.budget_of(loaded)
        generator = None
        made, kept, refused, scores = [], [], [], []
        for subject in brief.subjects:
            name = sheet_output(subject.id)
            asked = subject_config(config, subject.id)
            check_config(asked, name)
            approval = sign_off(context, storage, campaign, name, asked)
            stored = files.read_output(campaign, name)
            directed = None
            if approval is not None:  # signed off: kept as stored, and the images are made from it
                try:
                    stored = keep_approved(context, storage, campaign, name, approval, asked)
                except dg.Failure as missing:  # its file is gone: the other sheets are still made
                    refused.append(missing.description or name)
                    continue
                kept.append(name)
                png, record = stored.data, stored.provenance
            elif subject.photo:
                if asked.new_take or asked.note or asked.pick_take is not None:
                    raise dg.Failure(description=f"{name} is the subject's own photo, used as is; it cannot be"
                                     " regenerated (change the photo instead)", allow_retries=False)
                request = build_request(name, loaded, {}, image_maker=maker)
                if stored is not None and stored.provenance.get("request_sha256") == request.fingerprint:
                    kept.append(name)
                    png, record = stored.data, stored.provenance
                else:
                    raw = loaded.resolve(subject.photo).read_bytes()
                    png = to_png(raw)
                    record = sheet_provenance(loaded, subject.id, png, request, backend="user", model="user",
                                              prompt="", source={"path": subject.photo, "sha256": sha256(raw)})
            else:
                directed = directed_take(context, storage, loaded, name, asked, {}, maker)
                take = directed.take
                direction = directed.direction
                request = build_request(name, loaded, {}, image_maker=maker, take=take, direction=direction)
                if directed.restored is not None:
                    png, record = directed.restored.data, directed.restored.provenance
                elif stored is not None and stored.provenance.get("request_sha256") == request.fingerprint:
                    kept.append(name)
                    png, record = stored.data, stored.provenance
                else:
                    refusal = held_call(ledger, campaign, name, request, budget)
                    if refusal is not None:
                        refused.append(f"{name}: held: this exact request was refused ({refusal.outcome})")
                        continue
                    if generator is None:
                        generator = paid_generator(image_model, budget, SHEETS)
                    prompt = sheet_prompt(brief, subject.id, direction)
                    edit = direction.edit if direction is not None else None
                    shown, recorded = [], []
                    if edit is not None:  # an edit: the take it starts from is the one image shown
                        shown = [ReferenceImage(asset=f"{name} take {edit.take}",
                                                png=inline_reference(directed.edit_png or b""))]
                        recorded = [{"asset": name, "sha256": edit.sha256, "take": edit.take}]
                    key = request.call_keys[0]
                    one = ImageRequest(prompt=prompt, references=shown,
                                       aspect_ratio=SHEET_ASPECT_RATIOS[subject.kind], take=take)
                    try:
                        generation = storage.cache.generate(
                            generator, one, key=key, meter=CallMeter(ledger, campaign, name, key, context.run.run_id))
                    except GenerationError as error:
                        if error.retryable:  # the step's RetryPolicy asks again; made sheets come from the cache
                            raise dg.Failure(description=f"{name}: {error}", allow_retries=True,
                                             metadata={"reason": error.reason}) from error
                        refused.append(f"{name}: {error}")
                        continue
                    png = generation.image.png
                    record = sheet_provenance(
                        loaded, subject.id, png, request, backend=generation.image.backend,
                        model=generation.image.model, prompt=prompt.text, take=take, cache_hit=generation.cache_hit,
                        latency_s=round(generation.image.latency_s, 4), cost_usd=round(generation.image.cost_usd, 6),
                        references=recorded, **direction_fields(direction),
                    )
            score = score_sheet(subject, png, store=storage.features, sha=sha256(png),
                                faces_drawn=record.get("backend") != PreviewGenerator.backend)
            scores.append(score)
            if name not in kept:
                record = {**record, "consistency": summary([score])}
                if directed is not None:  # before the output: the current take is always kept
                    storage.takes.keep(campaign, name, StoredOutput(png, record))
                files.write_output(campaign, name, png, record)
                made.append(name)
            elif directed is not None:
                storage.takes.keep(campaign, name, StoredOutput(png, record))
            if directed is not None:
                directed.settle(storage, campaign, name)
        for line in refused:
            context.log.error(line)
        metadata = {
            "made": dg.MetadataValue.json(made), "unchanged": dg.MetadataValue.json(kept),
            "refused": dg.MetadataValue.json(refused),
        }
        for subject in brief.subjects:
            stored = files.read_output(campaign, sheet_output(subject.id))
            if stored is not None:
                metadata[f"sheet_{subject.id}"] = dg.MetadataValue.md(
                    thumbnail_markdown(stored.data, sheet_output(subject.id)))
        yield dg.MaterializeResult(metadata=metadata)
        yield sheet_check_result(brief, scores, refused)

    return subjects


def sheets_new_take_config(subject_ids: list[str]) -> dict:
    """Run config asking for a new take of these subjects' sheets (``adchain regenerate --subject``)."""
    return {"ops": {SHEETS: {"config": {"new_take": list(subject_ids)}}}}


def sheet_run_config(subject_id: str, *, note: str = "", pick_take: "int | None" = None) -> dict:
    """Run config of the sheets step asking one subject's sheet for an edit (``note``) or a kept take back
    (``pick_take``): what ``adchain regenerate --subject ID --note`` and ``adchain pick`` send."""
    config: dict = {}
    if note:
        config["note"] = {subject_id: note}
    if pick_take is not None:
        config["pick_take"] = {subject_id: int(pick_take)}
    return {"ops": {SHEETS: {"config": config}}}
