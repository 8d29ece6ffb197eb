"""A character's ``photo`` is its identity anchor (and in ``sheets`` mode the sheet every image is shown), so it
must show a face the checks can find: checked before any call, like every other problem of a brief.

One face search per photo file version (~0.2-0.4 s, plus ~0.7 s to load the face models once per process); the
answer is kept per (path, modification time, size) for the life of the process.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from adchain_assets.brief.model import BriefProblem, LoadedBrief
from adchain_assets.vision import consistency


@lru_cache(maxsize=128)
def _face_count(path: str, mtime_ns: int, size: int) -> int:
    return len(consistency.faces(path))


def photo_problems(loaded: LoadedBrief) -> list[BriefProblem]:
    """A character whose photo shows no face, as a problem of ``subjects[i].photo``."""
    problems = []
    for index, subject in enumerate(loaded.brief.subjects):
        if subject.kind != "character" or not subject.photo:
            continue
        path = Path(loaded.resolve(subject.photo))
        try:
            stat = path.stat()
        except OSError:
            continue  # a missing file is the brief's own problem, reported by its validation
        if _face_count(str(path), stat.st_mtime_ns, stat.st_size) == 0:
            problems.append(BriefProblem(
                str(loaded.path), f"subjects[{index}].photo",
                f"{subject.photo!r} shows no face the identity checks can find: a character's photo is its anchor;"
                " use a clear, front-facing photo of the person",
            ))
    return problems
