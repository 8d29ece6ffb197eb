"""``adchain draft "IDEA"``: from a one-line idea to a brief file, written by a Gemini text model.

The model (``ADCHAIN_TEXT_MODEL``, through google-genai on ``GEMINI_API_KEY`` / ``GEMINI_BASE_URL``) is asked for
structured output: ``response_mime_type="application/json"`` and a response schema derived from the pydantic
:class:`~adchain_assets.brief.Brief` model (:func:`response_schema`: the fields a draft fills, ``$ref``\\ s inlined,
and only the keywords of Gemini's schema subset). Its answer is validated exactly like a brief file (every
structural and cross-reference problem at once) and linted (:mod:`adchain_assets.brief.lint`); an answer with problems is
sent back once, in the same conversation, with the messages. A valid answer is written to
``<data>/briefs/<id>.yaml`` (atomically, and never over an existing file: a free id is picked, or an explicit
``--id`` that is taken is refused) and printed. ``--photo`` copies the photo to ``<data>/briefs/refs/``, sends it
with the request so that the description is written from it, and makes it the brief's ``reference_image`` and the
``photo`` of the subject it shows. Every reply is recorded in the ledger under the new campaign's id
(``output: draft``, ``kind: text``).

What it cannot do: it does not judge taste; a second answer that is still invalid is not written into
``briefs/`` (the sensor would report it on every tick) but kept as ``<data>/drafts/<id>.yaml`` with its problems
printed, so that a human can fix it; a second answer that is valid but still has lint warnings is written, and
the warnings printed. HTTP-level retries (408, 429, 5xx, timeouts) are the SDK's and count as one call here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from adchain_assets.brief.lint import CHARACTER_EXAMPLE, MIN_DESCRIPTION_WORDS, PRODUCT_EXAMPLE, lint_brief
from adchain_assets.brief.model import (
    ASPECT_RATIOS,
    CAMPAIGN_ID_PATTERN,
    Brief,
    BriefError,
    campaign_id_problem,
    image_problem,
    parse_brief,
)
from adchain_assets.providers.text import TextModel, TextModelError
from adchain_assets.settings import Settings
from adchain_assets.store.ledger import CallMeter, Ledger

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
OUTPUT = "draft"  # the ledger's output name for a draft call
MAX_ID_CHARS = 40
PHOTO_FORMATS = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png"), "WEBP": ("image/webp", ".webp")}

# Gemini's response schema is an OpenAPI subset: these keywords are kept, everything else is dropped.
SCHEMA_KEYWORDS = frozenset({
    "type", "format", "description", "nullable", "enum", "items", "properties", "required", "minItems", "maxItems",
    "minLength", "maxLength", "pattern", "minimum", "maximum", "anyOf", "propertyOrdering",
})
# Fields a draft leaves to their defaults (or fills itself): never asked of the model.
NOT_DRAFTED = {"Brief": {"video", "checks", "takes_per_image", "reference_image", "reference_mode", "budget_usd",
                         "brand", "music", "placements"},
               "Subject": {"photo"}, "Scene": {"caption"}}  # the finish (brand, supers, sound) and the shapes are the user's
# A draft's subjects each get a sheet that every image showing them is shown (docs/reference-modes.md).
DRAFTED_MODE = "sheets"
_STOP_WORDS = frozenset("a an the on at in of with and for to by from into its her his their our".split())


class DraftError(Exception):
    """The draft cannot be made; ``exit_code`` says whose fault (2: the input, 1: the model or the network)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, *, kept: Optional[Path] = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.kept = kept  # a rejected draft kept for a human (it may name the copied photo)


def response_schema(scenes: int, *, aspect_ratio: Optional[str] = None, photo: bool = False) -> dict[str, Any]:
    """The response schema of a draft request, derived from :class:`Brief`'s JSON schema.

    ``$ref``\\ s are inlined, ``Optional`` becomes ``nullable``, keywords outside Gemini's subset (``title``,
    ``default``, ``additionalProperties``, ``exclusiveMinimum``, ...) are dropped, and every property is required
    (the model then fills all of them) and ordered as in the model. ``scenes`` is exactly ``scenes`` long;
    ``aspect_ratio`` (when given) is the only choice. With ``photo`` each subject may name the photo.
    """
    source = Brief.model_json_schema()
    defs = source.get("$defs", {})

    def convert(node: Any, model: Optional[str]) -> Any:
        if isinstance(node, list):
            return [convert(item, None) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            resolved = convert(defs[name], name)
            return {**resolved, **{k: v for k, v in convert({k: v for k, v in node.items() if k != "$ref"}, None).items()}}
        if "anyOf" in node:
            options = [o for o in node["anyOf"] if o != {"type": "null"}]
            if len(options) == 1 and len(options) < len(node["anyOf"]):
                merged = {**{k: v for k, v in node.items() if k != "anyOf"}, **options[0], "nullable": True}
                return convert(merged, model)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key not in SCHEMA_KEYWORDS:
                continue
            if key == "properties":
                skip = NOT_DRAFTED.get(model or "", set()) - ({"photo"} if photo else set())
                value = {name: convert(prop, None) for name, prop in value.items() if name not in skip}
            else:
                value = convert(value, None)
            out[key] = value
        if "enum" in out and out.get("type") == "string":
            out["format"] = "enum"  # how Gemini's Schema marks a string enum
        if "properties" in out:
            out["required"] = list(out["properties"])
            out["propertyOrdering"] = list(out["properties"])
        return out

    schema = convert(source, "Brief")
    properties = schema["properties"]
    properties["aspect_ratio"]["enum"] = [aspect_ratio] if aspect_ratio else list(ASPECT_RATIOS)
    properties["aspect_ratio"]["format"] = "enum"
    properties["scenes"]["minItems"] = properties["scenes"]["maxItems"] = scenes
    subject = properties["subjects"]["items"]
    subject["properties"]["description"]["minLength"] = MIN_DESCRIPTION_WORDS * 4
    if photo:
        subject["required"] = [name for name in subject["required"] if name != "photo"]
    return schema


INSTRUCTIONS = f"""\
You write campaign briefs for adchain, which turns a brief into chains of consistent ad images with an image model
(each image is generated with the previous one as its visual reference) and a short video clip per scene.
Answer with one JSON object following the response schema.

The subject bible is what keeps every image the same person and the same product. Each subject's description is
repeated verbatim in every prompt that shows the subject, and the image model follows the text over the reference
image: a generic text like "woman in her 30s wearing ivory blouse" produced a different woman in every scene.
So each description must pin one identity, in at least {MIN_DESCRIPTION_WORDS * 2} words:
- a character: exact age in years, height and build, hair colour, length and style, eye colour, skin tone, at least
  one distinguishing mark (beauty mark, mole, scar, freckles, tattoo, glasses), and the outfit. Example:
  {CHARACTER_EXAMPLE}
- a product: shape, size, material, every colour (cap, body, liquid), and its label or marking with the exact text
  in double quotes. Example: {PRODUCT_EXAMPLE}
Give every recurring person and product a subject; a scene lists the ids of the subjects it shows.
Scene texts say what happens in that scene only (place, action, framing, light), call the subjects by their role
("the woman", "the bottle") and never give them another hair, eye or product colour than their description.
reference is the scene's establishing image, start its first frame and end its last frame; continuity (from the
second scene on) says how it follows the previous scene. The look (style, color_palette, lighting, composition,
mood) holds for every image.
"""


def request_text(idea: str, scenes: int, aspect_ratio: Optional[str], photo: Optional[str]) -> str:
    lines = [f"Idea: {idea.strip()}", f"Write a brief with exactly {scenes} scenes."]
    if aspect_ratio:
        lines.append(f"The aspect ratio is {aspect_ratio}.")
    if photo:
        lines.append(
            f"The attached photo is this campaign's reference image: it becomes the first scene's reference image as"
            f" it is, so the first scene's reference text describes the photo. Describe the subject it shows from the"
            f" photo, exactly as seen (for a person: age, hair, eyes, skin, marks, outfit), and set that subject's"
            f" photo to \"{photo}\"; set photo to null on the other subjects."
        )
    return "\n".join(lines)


def retry_text(problems: list[str]) -> str:
    listed = "\n".join(f"- {line}" for line in problems)
    return (
        "Your brief has these problems:\n" + listed + "\nFix every one of them and answer with the complete"
        " corrected brief (the whole JSON object, not only the changes)."
    )


def campaign_id_from(idea: str) -> str:
    """A campaign id from the idea's words: "a perfume ad: a woman on a Paris balcony" -> perfume-ad-woman-paris-balcony."""
    words = [w for w in re.findall(r"[a-z0-9]+", idea.lower()) if w not in _STOP_WORDS]
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > MAX_ID_CHARS:
            break
        slug = candidate
    return slug or "draft"


def _taken(briefs_dir: Path, campaign: str) -> Optional[Path]:
    for suffix in (".yaml", ".yml"):
        if (briefs_dir / f"{campaign}{suffix}").exists():
            return briefs_dir / f"{campaign}{suffix}"
    return None


def free_id(briefs_dir: Path, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``, ... : the first id with no brief file."""
    number = 1
    while True:
        suffix = "" if number == 1 else f"-{number}"
        candidate = base[: MAX_ID_CHARS - len(suffix)].rstrip("-") + suffix
        if not _taken(briefs_dir, candidate):
            return candidate
        number += 1


@dataclass
class Photo:
    relative: str  # as the brief names it, relative to the briefs folder
    path: Path
    data: bytes
    mime_type: str
    created: bool = False


def _copy_photo(source: Path, briefs_dir: Path, campaign: str) -> Photo:
    """Copy the user's photo to ``<briefs>/refs/<campaign>.<ext>`` (never over another file; PNG when Pillow reads
    it but the model would not take its format)."""
    from PIL import Image

    if not source.is_file():
        raise DraftError(f"--photo {source}: file not found", EXIT_BAD_INPUT)
    stat = source.stat()
    problem = image_problem(str(source.resolve()), stat.st_mtime_ns, stat.st_size)
    if problem:
        raise DraftError(f"--photo {source}: {problem}", EXIT_BAD_INPUT)
    data = source.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        kind = PHOTO_FORMATS.get(image.format or "")
        if kind is None:
            out = io.BytesIO()
            image.convert("RGB").save(out, format="PNG")
            data, kind = out.getvalue(), PHOTO_FORMATS["PNG"]
    mime, ext = kind
    refs = briefs_dir / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        name = f"{campaign}{'' if number == 1 else f'-{number}'}{ext}"
        target = refs / name
        try:
            with open(target, "xb") as handle:
                handle.write(data)
            return Photo(f"refs/{name}", target, data, mime, created=True)
        except FileExistsError:
            if target.read_bytes() == data:
                return Photo(f"refs/{name}", target, data, mime)
            number += 1


@dataclass
class Answer:
    text: str
    data: Optional[dict]
    problems: list[str]  # validation problems and lint warnings, as sent back to the model (field: reason)
    errors: list[str]  # validation problems only (the brief cannot be written)
    warnings: list[str]  # lint warnings (file: field: ...)
    yaml_text: str = ""


@dataclass
class DraftResult:
    campaign: str
    path: Path
    text: str
    warnings: list[str] = field(default_factory=list)
    calls: int = 0


def _tidy(data: dict) -> dict:
    """The answer as a brief mapping in the brief's key order, without empty optional texts or default durations."""
    order = ["title", "aspect_ratio", "reference_image", "reference_mode", "look", "subjects", "scenes"]
    out = {key: data[key] for key in order if key in data}
    out.update({k: v for k, v in data.items() if k not in out})
    if isinstance(out.get("look"), dict):
        out["look"] = {k: v for k, v in out["look"].items() if v not in ("", None)}
    for subject in out.get("subjects") or []:
        if isinstance(subject, dict) and subject.get("photo") is None:
            subject.pop("photo", None)
    for scene in out.get("scenes") or []:
        if isinstance(scene, dict):
            if scene.get("continuity") in ("", None):
                scene.pop("continuity", None)
            if scene.get("duration_s") in (4, 4.0):
                scene.pop("duration_s", None)
    return out


def _apply_photo(data: dict, photo: Optional[Photo]) -> None:
    """Only the user's photo may be named: ``reference_image`` is it, and so is the photo of the subject the model
    said it shows (else the first character, else the first product)."""
    data.pop("reference_image", None)
    subjects = [s for s in data.get("subjects") or [] if isinstance(s, dict)]
    named = [s for s in subjects if photo is not None and s.get("photo") == photo.relative]
    for subject in subjects:
        subject.pop("photo", None)
    if photo is None:
        return
    data["reference_image"] = photo.relative
    if not named:
        named = [s for s in subjects if s.get("kind") == "character"][:1] or subjects[:1]
    for subject in named[:1]:
        subject["photo"] = photo.relative


class _BriefDumper(yaml.SafeDumper):
    """Block style, as the sample briefs are written; a scene's list of subject ids on one line."""


def _represent_list(dumper: yaml.SafeDumper, items: list):
    flow = all(isinstance(item, str) and len(item) <= 32 for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


_BriefDumper.add_representer(list, _represent_list)


def _dump(data: dict, header: str) -> str:
    body = yaml.dump(data, Dumper=_BriefDumper, sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)
    return header + body


def check_answer(text: str, *, scenes: int, target: Path, briefs_dir: Path, max_scenes: int,
                 photo: Optional[Photo], header: str = "") -> Answer:
    """Parse, validate and lint one answer of the model."""
    try:
        data = json.loads(text)
    except ValueError as error:
        problem = f"the answer is not JSON ({error})"
        return Answer(text, None, [problem], [problem], [])
    if not isinstance(data, dict):
        problem = f"the answer is a JSON {type(data).__name__}, not an object"
        return Answer(text, None, [problem], [problem], [])
    _apply_photo(data, photo)
    data["reference_mode"] = DRAFTED_MODE
    data = _tidy(data)
    yaml_text = _dump(data, header)
    problems: list[tuple[str, str]] = []
    if isinstance(data.get("scenes"), list) and len(data["scenes"]) != scenes:
        problems.append(("scenes", f"has {len(data['scenes'])} scenes; the idea asked for exactly {scenes}"))
    brief = None
    try:
        brief = parse_brief(yaml_text, file=str(target), brief_dir=briefs_dir, max_scenes=max_scenes)
    except BriefError as error:
        problems += [(p.field, p.reason) for p in error.problems]
    if problems or brief is None:
        errors = [f"{f}: {r}" if f else r for f, r in problems]
        return Answer(text, data, errors, [f"{target}: {line}" for line in errors], [], yaml_text)
    warnings = lint_brief(brief, file=str(target))
    return Answer(text, data, [w.message for w in warnings], [],
                  [str(w) for w in warnings], yaml_text)


def _fingerprint(model: str, contents: list[dict], config: dict) -> str:
    return hashlib.sha256(json.dumps({"model": model, "contents": contents, "config": config}, sort_keys=True,
                                     default=str).encode()).hexdigest()


def _write_new(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically and only if no file is there (a hard link never replaces one)."""
    temporary = path.parent / f".{path.name}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink()


def draft_brief(idea: str, *, scenes: int, data_dir: Path, storage_url: str, max_scenes: int, model: TextModel,
                photo: Optional[Path] = None, aspect_ratio: Optional[str] = None, campaign: Optional[str] = None,
                log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> DraftResult:
    """Ask ``model`` for a brief of ``idea`` and write it to ``<data_dir>/briefs/<id>.yaml``; see the module."""
    if not idea.strip():
        raise DraftError("the idea is empty: say what the ad shows, e.g. \"a perfume ad: a woman on a Paris balcony\"", EXIT_BAD_INPUT)
    if not 1 <= scenes <= max_scenes:
        raise DraftError(f"--scenes {scenes}: from 1 to {max_scenes} (ADCHAIN_MAX_SCENES)", EXIT_BAD_INPUT)
    if aspect_ratio is not None and aspect_ratio not in ASPECT_RATIOS:
        raise DraftError(f"--aspect {aspect_ratio}: use one of {', '.join(ASPECT_RATIOS)}", EXIT_BAD_INPUT)
    briefs_dir = Path(data_dir) / "briefs"
    if campaign is not None:
        problem = campaign_id_problem(campaign)
        if problem:
            raise DraftError(f"--id {campaign}: {problem}", EXIT_BAD_INPUT)
        existing = _taken(briefs_dir, campaign)
        if existing:
            raise DraftError(f"--id {campaign}: {existing} already exists; a draft never overwrites a brief"
                             " (choose another --id, or leave --id out for a free one)", EXIT_BAD_INPUT)
    briefs_dir.mkdir(parents=True, exist_ok=True)
    chosen = campaign or free_id(briefs_dir, campaign_id_from(idea))
    assert CAMPAIGN_ID_PATTERN.fullmatch(chosen), chosen
    stored_photo = _copy_photo(Path(photo), briefs_dir, chosen) if photo is not None else None
    try:
        return _draft(idea, scenes, briefs_dir, storage_url, max_scenes, model, stored_photo, aspect_ratio,
                      chosen, explicit=campaign is not None, log=log)
    except BaseException as error:
        kept = isinstance(error, DraftError) and error.kept is not None
        if stored_photo is not None and stored_photo.created and not kept:
            stored_photo.path.unlink(missing_ok=True)  # ours, and nothing refers to it
        raise


def _draft(idea, scenes, briefs_dir, storage_url, max_scenes, model, photo, aspect_ratio, campaign, *, explicit,
           log) -> DraftResult:
    ledger = Ledger(storage_url)
    schema = response_schema(scenes, aspect_ratio=aspect_ratio, photo=photo is not None)
    first: list = [request_text(idea, scenes, aspect_ratio, photo.relative if photo else None)]
    if photo is not None:
        first.append((photo.data, photo.mime_type))
    turns: list[tuple[str, list]] = [("user", first)]
    target = briefs_dir / f"{campaign}.yaml"
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    header = f"# Drafted by `adchain draft` with {model.model} on {stamp} from the idea:\n#   {' '.join(idea.split())}\n"
    answer: Optional[Answer] = None
    for attempt in (1, 2):
        fingerprint = _fingerprint(model.model, [
            [role, [p if isinstance(p, str) else hashlib.sha256(p[0]).hexdigest() for p in parts]] for role, parts in turns
        ], {"schema": schema, "instructions": INSTRUCTIONS})
        meter = CallMeter(ledger, campaign=campaign, output=OUTPUT, request_sha256=fingerprint)
        try:
            text = model.ask(turns, schema, meter, attempt, instructions=INSTRUCTIONS)
        except TextModelError as error:
            raise DraftError(str(error), EXIT_BAD_INPUT if error.bad_input else EXIT_FAILED) from None
        answer = check_answer(text, scenes=scenes, target=target, briefs_dir=briefs_dir, max_scenes=max_scenes, photo=photo, header=header)
        if not answer.problems:
            break
        log(f"{campaign}: answer {attempt} has {len(answer.problems)} problem(s):")
        for line in answer.problems:
            log(f"  {line}")
        if attempt == 1:
            log(f"{campaign}: sending them back to {model.model} once")
            turns += [("model", [text]), ("user", [retry_text(answer.problems)])]
    assert answer is not None
    if answer.errors:
        kept = _keep_rejected(briefs_dir.parent, campaign, answer)
        raise DraftError(
            f"{campaign}: the model's second answer is still not a valid brief; it is kept in {kept} (fix it and"
            " move it into briefs/):\n" + "\n".join(f"{kept}: {line}" for line in answer.problems), EXIT_FAILED,
            kept=kept)
    while not _write_new(target, answer.yaml_text):
        if explicit:
            raise DraftError(f"--id {campaign}: {target} appeared while drafting; a draft never overwrites a brief",
                             EXIT_BAD_INPUT)
        # another process took the id meanwhile: the next free one (the brief names no file by the id)
        campaign = free_id(briefs_dir, campaign)
        target = briefs_dir / f"{campaign}.yaml"
    return DraftResult(campaign, target, answer.yaml_text, answer.warnings, attempt)


def _keep_rejected(data_dir: Path, campaign: str, answer: Answer) -> Path:
    folder = data_dir / "drafts"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    text = answer.yaml_text or answer.text
    notes = "".join(f"# problem: {line}\n" for line in answer.problems)
    number = 1
    while True:
        path = folder / f"{campaign}-{stamp}{'' if number == 1 else f'-{number}'}.yaml"
        if _write_new(path, notes + text):
            return path
        number += 1


def cmd_draft(args) -> int:
    """The ``adchain draft`` command."""
    settings = Settings.from_env()
    try:
        model = TextModel(api_key=settings.gemini_api_key, model=settings.text_model,
                          base_url=settings.gemini_base_url or None)
        result = draft_brief(
            args.idea, scenes=args.scenes, data_dir=Path(settings.data_dir), storage_url=settings.storage_url,
            max_scenes=settings.max_scenes, model=model, photo=args.photo, aspect_ratio=args.aspect, campaign=args.id,
        )
    except TextModelError as error:
        print(f"adchain draft: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT if error.bad_input else EXIT_FAILED
    except DraftError as error:
        print(f"adchain draft: {error}", file=sys.stderr)
        return error.exit_code
    print(result.text, end="" if result.text.endswith("\n") else "\n")
    for line in result.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(f"{result.path}: written (campaign {result.campaign}, {result.calls} call(s) to {settings.text_model});"
          f" check it with: adchain validate --strict {result.path}", file=sys.stderr)
    return EXIT_OK


def add_parser(commands) -> None:
    """``adchain draft "IDEA" [--scenes N] [--photo PATH] [--aspect RATIO] [--id ID]``."""
    draft = commands.add_parser("draft", help="write a new brief from a one-line idea with a Gemini text model")
    draft.add_argument("idea", help='what the ad shows, e.g. "a perfume ad: a woman on a Paris balcony at dawn"')
    draft.add_argument("--scenes", type=int, default=4, metavar="N", help="number of scenes (default 4)")
    draft.add_argument("--photo", type=Path, metavar="PATH",
                       help="a photo of the subject: copied next to the brief, used as reference_image and the subject's photo")
    draft.add_argument("--aspect", choices=ASPECT_RATIOS, metavar="RATIO", help=f"aspect ratio ({' '.join(ASPECT_RATIOS)})")
    draft.add_argument("--id", metavar="ID", help="campaign id (the file name); default: from the idea, a free one")
    draft.set_defaults(handler=cmd_draft)
