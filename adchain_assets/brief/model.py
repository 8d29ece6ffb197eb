"""The campaign brief: a strict model of the YAML file, and the errors a user can act on.

Strict on purpose: a typo in a key or an undefined subject would otherwise silently produce a campaign of
images that do not match the brief, and every image costs money.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Mapping, Optional

import imageio_ffmpeg
import yaml
from PIL import Image, ImageFont, UnidentifiedImageError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CAMPAIGN_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
MAX_TEXT_CHARS = 2000
MAX_DESCRIPTION_CHARS = 1000
MAX_IMAGE_PIXELS = 40_000_000
MAX_TAKES_PER_IMAGE = 4
MIN_CLIP_S, MAX_CLIP_S = 1.0, 8.0  # Veo makes clips of 4 to 8 seconds; the preview renderer any length
MAX_CAPTION_CHARS = 200  # a super is read in a few seconds; whether it fits its safe area is checked by the finish
MAX_BRAND_TEXT_CHARS = 300
MAX_LEGAL_CHARS = 1000
MIN_END_CARD_S, MAX_END_CARD_S = 1.0, 8.0
HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _text(max_chars: int, *, required: bool = True, description: Optional[str] = None):
    if required:
        return Field(min_length=1, max_length=max_chars, description=description)
    return Field(default="", max_length=max_chars, description=description)


class Look(_Strict):
    style: str = _text(MAX_TEXT_CHARS, required=False, description="Visual style, e.g. cinematic, shallow depth of field, 35 mm film grain")
    color_palette: str = _text(MAX_TEXT_CHARS, required=False, description="The campaign's colours, e.g. warm gold, ivory, blush")
    lighting: str = _text(MAX_TEXT_CHARS, required=False, description="Light, e.g. soft window light at golden hour")
    composition: str = _text(MAX_TEXT_CHARS, required=False, description="Framing, e.g. subject on the right third")
    mood: str = _text(MAX_TEXT_CHARS, required=False, description="Mood, e.g. intimate, luminous")

    def markers(self) -> list[tuple[str, str]]:
        """The non-empty look fields, in the brief's order, as (label, value)."""
        return [(name.replace("_", " "), value) for name, value in self if value.strip()]


class Subject(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="Short lower-case name scenes use, e.g. woman, bottle")
    kind: Literal["product", "character"] = Field(description="character: a person; product: an object")
    description: str = _text(MAX_DESCRIPTION_CHARS, description=(
        "Repeated verbatim in every prompt that shows the subject, so specific enough to pin one identity (at least"
        " 12 words). A character: age, hair colour and style, eye colour, a distinguishing mark (beauty mark, scar,"
        " freckles, tattoo, glasses), build, outfit. A product: shape, size, material, every colour, label or marking"
        " (the text on it in quotes)."))
    photo: Optional[str] = Field(default=None, description="Photo of this subject, relative to the brief's folder")

    @field_validator("description")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class Scene(_Strict):
    subjects: list[str] = Field(default_factory=list, description="Ids of the subjects this scene shows")
    reference: str = _text(MAX_TEXT_CHARS, description=(
        "The scene's establishing image: place, action, framing. Name subjects by role (the woman, the bottle);"
        " never give them another hair, eye or product colour than their description"))
    start: str = _text(MAX_TEXT_CHARS, description="The scene's first frame (the clip starts here)")
    end: str = _text(MAX_TEXT_CHARS, description="The scene's last frame (the clip ends here)")
    continuity: str = _text(MAX_TEXT_CHARS, required=False, description="How this scene follows the previous one")
    duration_s: float = Field(default=4.0, ge=MIN_CLIP_S, le=MAX_CLIP_S, description="Clip length in seconds")
    caption: str = _text(MAX_CAPTION_CHARS, required=False, description=(
        "A super burned into this scene in the ad (never into its clip), inside the shape's safe area; also a cue"
        " of ad.srt"))

    @field_validator("reference", "start", "end")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    def text_for(self, chain: str) -> str:
        return {"reference": self.reference, "start": self.start, "end": self.end}[chain]


class Video(_Strict):
    """How the clips are made; bounded to what the video models accept."""

    resolution: Literal["720p", "1080p"] = "720p"
    audio: bool = False


def _hex_colour(value: str) -> str:
    if not HEX_COLOUR.fullmatch(value):
        raise ValueError(f"{value!r} is not a colour written #rrggbb (six hex digits, e.g. \"#2b1d1a\")")
    return value


def _no_comment(value: object) -> object:
    if value is None:
        raise ValueError('is empty: quote a colour ("#2b1d1a"); unquoted, YAML reads # as the start of a comment')
    return value


class Brand(_Strict):
    """The finished ad's brand: the end card after the last scene, and optionally the logo on every scene."""

    logo: Optional[str] = Field(default=None, description=(
        "The brand's logo, a PNG with transparency, relative to the brief's folder: on the end card (and the logo"
        " bug)"))
    cta: str = _text(MAX_BRAND_TEXT_CHARS, required=False, description="The call to action, the end card's big line")
    url: str = _text(MAX_BRAND_TEXT_CHARS, required=False, description="The address under the call to action")
    legal: str = _text(MAX_LEGAL_CHARS, required=False, description="Small print at the foot of the end card")
    colors: list[Annotated[str, AfterValidator(_hex_colour)]] = Field(default_factory=list, max_length=8, description=(
        "Brand colours as \"#rrggbb\" (quoted); the first is the end card's background, the second its text"
        " colour when it reads well on the first"))
    font: Optional[str] = Field(default=None, description=(
        "A TrueType or OpenType font file for the supers and the end card; default: DejaVu Sans Bold, shipped"))
    end_card_s: float = Field(default=2.5, ge=MIN_END_CARD_S, le=MAX_END_CARD_S, description=(
        "How long the end card holds, in seconds (after a cross-fade from the last scene)"))
    logo_bug: bool = Field(default=False, description="The logo small in a corner of every scene")

    @field_validator("colors", mode="before")
    @classmethod
    def _colours(cls, value: object) -> object:
        if isinstance(value, list):
            for item in value:
                _no_comment(item)
        return value

    def has_end_card(self) -> bool:
        """An end card is made when the brand has something to show on it."""
        return bool(self.logo or self.cta.strip() or self.url.strip() or self.legal.strip())


class Checks(_Strict):
    """Consistency checks on every image. Non-blocking by default; ``blocking`` makes a failing image stop
    what depends on it."""

    blocking: bool = False
    max_face_distance: float = Field(default=0.6, gt=0.0, le=1.5)
    min_product_score: float = Field(default=0.5, gt=0.0, lt=1.0)


class Brief(_Strict):
    title: str = _text(MAX_TEXT_CHARS, required=False, description="The campaign's title")
    aspect_ratio: str = Field(default="1:1", description="Image shape: " + " ".join(ASPECT_RATIOS))
    reference_image: Optional[str] = Field(default=None, description="User image used as is for reference/scene_1")
    reference_mode: Literal["chain", "anchored", "sheets"] = Field(default="chain", description=(
        "chain: each image sees the previous one; anchored: also the first reference image; sheets: the previous"
        " image and a sheet (portrait or packshot) of every subject in the scene, made once per subject"))
    look: Look = Field(default_factory=Look, description="Consistency markers added to every prompt")
    video: Video = Field(default_factory=Video)
    checks: Checks = Field(default_factory=Checks)
    takes_per_image: int = Field(default=1, ge=1, le=MAX_TAKES_PER_IMAGE)
    placements: list[str] = Field(default_factory=list, description=(
        "Extra shapes beyond aspect_ratio (the master), e.g. [\"9:16\", \"1:1\"]: every scene's start and end frame"
        " is recomposed from the master's in each, with a clip, an ad and a storyboard per placement"))
    budget_usd: Optional[float] = Field(default=None, ge=0, allow_inf_nan=False, description=(
        "The most this campaign may spend, ever, in USD, as the ledger counts it (every paid call, take and run):"
        " a plan that would go over it is not launched, and no paid call is made once it is reached"))
    subjects: list[Subject] = Field(default_factory=list, description="The subject bible: every recurring person and product")
    scenes: list[Scene] = Field(min_length=1, description="The scenes, in order")
    brand: Optional[Brand] = Field(default=None, description="The end card and logo of the finished ad")
    music: Optional[str] = Field(default=None, description=(
        "An audio file laid under the ad (faded in and out, loudness-normalised), relative to the brief's folder"))

    @field_validator("aspect_ratio", mode="before")
    @classmethod
    def _aspect_ratio(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 16:9 as the base-60 number 969.
            raise ValueError('must be a quoted string such as "16:9" (unquoted, YAML reads it as a number)')
        if isinstance(value, str) and value not in ASPECT_RATIOS:
            raise ValueError(f"{value!r} is not supported; use one of {', '.join(ASPECT_RATIOS)}")
        return value

    @field_validator("placements", mode="before")
    @classmethod
    def _quoted_placements(cls, value: object) -> object:
        if isinstance(value, list) and any(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError('shapes must be quoted strings such as "9:16" (unquoted, YAML reads 9:16 as a number)')
        return value

    @model_validator(mode="after")
    def _subjects_defined(self) -> "Brief":
        problems = cross_reference_problems(self.model_dump())
        if problems:
            raise _FieldProblems([f"{field}: {reason}" for field, reason in problems])
        return self

    def subject(self, subject_id: str) -> Subject:
        return next(s for s in self.subjects if s.id == subject_id)

    def scene(self, number: int) -> Scene:
        """Scene by its 1-based number, as in ``scene_<k>``."""
        return self.scenes[number - 1]


def cross_reference_problems(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Duplicate subject ids, scenes naming undefined or repeated subjects and bad ``placements``, as (field path,
    reason).

    Works on the raw YAML mapping as well as on a valid brief: pydantic skips the model validator when any field
    fails, so :func:`parse_brief` also runs this on the raw data, and a file's every problem is reported in one pass.
    Parts of the wrong type are skipped here (pydantic reports them).
    """
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    subjects = data.get("subjects")
    for index, subject in enumerate(subjects if isinstance(subjects, list) else []):
        subject_id = subject.get("id") if isinstance(subject, Mapping) else None
        if not isinstance(subject_id, str):
            continue
        if subject_id in seen:
            problems.append((f"subjects[{index}].id", f"subject {subject_id!r} is defined twice"))
        seen.add(subject_id)
    scenes = data.get("scenes")
    for scene_index, scene in enumerate(scenes if isinstance(scenes, list) else []):
        names = scene.get("subjects") if isinstance(scene, Mapping) else None
        if not isinstance(names, list):
            continue
        for subject_index, subject_id in enumerate(names):
            if isinstance(subject_id, str) and subject_id not in seen:
                defined = ", ".join(sorted(seen)) or "none"
                problems.append((
                    f"scenes[{scene_index}].subjects[{subject_index}]",
                    f"subject {subject_id!r} is not defined under subjects (defined: {defined})",
                ))
        hashable = [n for n in names if isinstance(n, str)]
        if len(set(hashable)) != len(hashable):
            problems.append((f"scenes[{scene_index}].subjects", "a subject is named twice"))
    brand = data.get("brand")
    if isinstance(brand, Mapping) and brand.get("logo_bug") is True and not brand.get("logo"):
        problems.append(("brand.logo_bug", "is true but brand.logo names no logo to show"))
    return problems + placement_problems(data)


def placement_problems(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An unknown shape, a shape listed twice, or the master's own ``aspect_ratio`` in ``placements``."""
    shapes = data.get("placements")
    master = data.get("aspect_ratio", Brief.model_fields["aspect_ratio"].default)
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, shape in enumerate(shapes if isinstance(shapes, list) else []):
        if not isinstance(shape, str):
            continue  # pydantic reports the wrong type
        where = f"placements[{index}]"
        if shape not in ASPECT_RATIOS:
            problems.append((where, f"{shape!r} is not supported; use one of {', '.join(ASPECT_RATIOS)}"))
        elif shape == master:
            problems.append((where, f"{shape!r} is the master's aspect_ratio; list only the extra shapes"))
        elif shape in seen:
            problems.append((where, f"{shape!r} is listed twice"))
        seen.add(shape)
    return problems


def _file_problems(data: Mapping[str, Any], brief_dir: Optional[Path], max_scenes: int) -> list[tuple[str, str]]:
    """Scene count and the files a brief names, from the raw mapping (so they are checked even when a field fails)."""
    problems: list[tuple[str, str]] = []
    scenes = data.get("scenes")
    if isinstance(scenes, list) and len(scenes) > max_scenes:
        problems.append(("scenes", f"has {len(scenes)} scenes; at most {max_scenes} (ADCHAIN_MAX_SCENES) are allowed"))
    if brief_dir is None:  # a pinned snapshot, whose files were checked when it was pinned
        return problems
    if isinstance(data.get("reference_image"), str):
        problems += _path_problems("reference_image", data["reference_image"], brief_dir)
    subjects = data.get("subjects")
    for index, subject in enumerate(subjects if isinstance(subjects, list) else []):
        if isinstance(subject, Mapping) and isinstance(subject.get("photo"), str):
            problems += _path_problems(f"subjects[{index}].photo", subject["photo"], brief_dir)
    brand = data.get("brand")
    if isinstance(brand, Mapping):
        if isinstance(brand.get("logo"), str):
            problems += _path_problems("brand.logo", brand["logo"], brief_dir, logo_problem)
        if isinstance(brand.get("font"), str):
            problems += _path_problems("brand.font", brand["font"], brief_dir, font_problem)
    if isinstance(data.get("music"), str):
        problems += _path_problems("music", data["music"], brief_dir, audio_problem)
    return problems


class _FieldProblems(ValueError):
    """Cross-field problems that already know their field path (pydantic would put them at the root)."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class BriefProblem:
    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}" if self.field else f"{self.file}: {self.reason}"


class BriefError(Exception):
    """A brief that cannot be used, with every problem found (file, field path, reason)."""

    def __init__(self, problems: list[BriefProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedBrief:
    """A valid brief with the facts that come from its file rather than its text."""

    campaign: str
    path: Path
    brief: Brief
    sha256: str = ""  # of the brief file's bytes (or of the snapshot a run pinned)
    files: Optional[Mapping[str, Any]] = None  # a pinned snapshot's copies of the files the brief names

    def resolve(self, relative: str):
        """A path named in the brief: the snapshot's copy when pinned, else resolved against the brief's folder
        (already checked to stay inside)."""
        if self.files is not None and relative in self.files:
            return self.files[relative]
        return (self.path.parent / relative).resolve()


def format_location(location: tuple) -> str:
    """``('scenes', 2, 'subjects', 0)`` -> ``scenes[2].subjects[0]``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _reason(error: dict) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (a typo? keys are checked so that nothing is silently ignored)"
    if kind == "missing":
        return "is required"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    if "input" in error and kind.endswith("_type"):
        message += f" (got {type(error['input']).__name__} {error['input']!r})"
    return message[0].lower() + message[1:] if message else kind


def campaign_id_problem(campaign: str) -> Optional[str]:
    if not CAMPAIGN_ID_PATTERN.fullmatch(campaign):
        return f"campaign id {campaign!r} must match [a-z0-9][a-z0-9-]{{0,62}} (it is the brief file's name)"
    return None


def _path_problems(field: str, relative: Optional[str], brief_dir: Path,
                   check: Optional[Callable[[str, int, int], Optional[str]]] = None) -> list[tuple[str, str]]:
    """A path named in a brief must be relative and stay inside the brief's folder, symlinks resolved, and be a
    file ``check`` accepts (by default an image)."""
    if relative is None:
        return []
    if not relative.strip():
        return [(field, "must not be empty")]
    if Path(relative).is_absolute():
        return [(field, f"{relative!r} is absolute; give a path relative to the brief's folder")]
    root = brief_dir.resolve()
    target = (brief_dir / relative).resolve()
    if not target.is_relative_to(root):
        return [(field, f"{relative!r} leaves the brief's folder {root}")]
    if not target.is_file():
        return [(field, f"{relative!r} does not exist (looked for {target})")]
    stat = target.stat()
    problem = (check or image_problem)(str(target), stat.st_mtime_ns, stat.st_size)
    return [(field, f"{relative!r} {problem}")] if problem else []


@lru_cache(maxsize=64)
def image_problem(path: str, mtime_ns: int, size: int) -> Optional[str]:
    """Why the file at ``path`` cannot serve as an image, or None. Cached per file version: every step
    of a run loads the brief."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                return f"is {width}x{height} pixels; at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels are accepted"
            image.load()
    except UnidentifiedImageError:
        return "is not an image Pillow can read (PNG, JPEG, WebP, ...)"
    except Image.DecompressionBombError as error:
        return f"is rejected as a decompression bomb ({error})"
    except (OSError, SyntaxError, ValueError) as error:
        return f"is damaged or truncated ({error})"
    return None


@lru_cache(maxsize=64)
def logo_problem(path: str, mtime_ns: int, size: int) -> Optional[str]:
    """Why the file at ``path`` cannot serve as a logo (a PNG with transparency), or None."""
    problem = image_problem(path, mtime_ns, size)
    if problem:
        return problem
    with Image.open(path) as image:
        if image.format != "PNG":
            return f"is a {image.format} image; a logo must be a PNG with transparency"
        if not image.has_transparency_data:
            return "has no transparency (no alpha channel or transparent colour); a logo is drawn over pictures"
    return None


@lru_cache(maxsize=64)
def font_problem(path: str, mtime_ns: int, size: int) -> Optional[str]:
    """Why the file at ``path`` cannot serve as a font (one Pillow's FreeType can open), or None."""
    try:
        ImageFont.truetype(path, 24)
    except (OSError, ValueError) as error:
        return f"is not a font Pillow can read (a TrueType .ttf or OpenType .otf file): {error}"
    except ImportError:  # a Pillow built without FreeType cannot use any font file
        return "cannot be used: this Pillow has no FreeType support"
    return None


@lru_cache(maxsize=64)
def audio_problem(path: str, mtime_ns: int, size: int) -> Optional[str]:
    """Why the file at ``path`` cannot serve as music (ffmpeg decodes an audio stream from it), or None: its first
    two seconds are decoded by the ffmpeg of imageio-ffmpeg, the one that mixes the ad."""
    run = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", path,
         "-map", "0:a:0", "-t", "2", "-f", "null", "-"],
        capture_output=True, text=True, errors="replace", check=False,
    )
    if run.returncode == 0:
        return None
    if "matches no streams" in run.stderr:
        return "has no audio stream ffmpeg can find"
    detail = (run.stderr.strip().splitlines() or ["no detail"])[-1]
    return f"is not an audio file ffmpeg can read ({detail})"


# libyaml's safe loader when PyYAML was built with it (about ten times quicker), else the pure-Python one
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_brief(text: str, *, file: str, brief_dir: Optional[Path], max_scenes: int) -> Brief:
    """Parse and validate brief YAML; raise :class:`BriefError` listing every problem."""

    def fail(problems: list[tuple[str, str]]) -> BriefError:
        return BriefError([BriefProblem(file, f, r) for f, r in problems])

    try:
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise fail([(where, f"not valid YAML: {problem}")]) from None
    if not isinstance(data, dict):
        raise fail([("", f"a brief is a YAML mapping of keys, got {type(data).__name__}")])
    problems: list[tuple[str, str]] = []
    brief: Optional[Brief] = None
    try:
        brief = Brief.model_validate(data)
    except ValidationError as error:
        for item in error.errors():
            cause = item.get("ctx", {}).get("error")
            if isinstance(cause, _FieldProblems):
                problems += [tuple(p.split(": ", 1)) for p in cause.problems]  # type: ignore[misc]
            else:
                problems.append((format_location(item["loc"]), _reason(item)))
        # pydantic skipped the cross-reference checks: run them on the raw mapping, so nothing waits for a second pass
        problems += [p for p in cross_reference_problems(data) if p not in problems]
    problems += _file_problems(data, brief_dir, max_scenes)
    if problems or brief is None:
        raise fail(problems)
    return brief


def load_brief(path: Path, *, max_scenes: int) -> LoadedBrief:
    """Read ``<campaign>.yaml``; the campaign id is the file's stem."""
    path = Path(path)
    problems = []
    if path.suffix not in (".yaml", ".yml"):
        problems.append(BriefProblem(str(path), "", "a brief file must end in .yaml or .yml"))
    id_problem = campaign_id_problem(path.stem)
    if id_problem:
        problems.append(BriefProblem(str(path), "", id_problem))
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise BriefError([BriefProblem(str(path), "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise BriefError([BriefProblem(str(path), "", f"cannot be read: {error}")]) from None
    try:
        brief = parse_brief(text, file=str(path), brief_dir=path.parent, max_scenes=max_scenes)
    except BriefError as error:
        problems += error.problems
        raise BriefError(problems) from None
    if problems:
        raise BriefError(problems)
    return LoadedBrief(campaign=path.stem, path=path, brief=brief, sha256=hashlib.sha256(raw).hexdigest())
