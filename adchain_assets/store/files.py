"""Campaign-first storage of images and their provenance, over any fsspec path.

``<base>/campaigns/<campaign>/<chain>/scene_<k>.png`` holds exactly the bytes the backend returned and
``scene_<k>.json`` beside it says where they came from, including the PNG's sha256.

Crash safety (a writer may be killed at any instruction, or the machine may lose power):

* Each file is written to a hidden temporary sibling ``.<name>.<uuid>.tmp`` and renamed over its target, so
  a reader sees the old file or the new one, never a truncated one. On local disks the temporary is fsynced
  before the rename and the folder after it, so a rename that survived a power cut names complete data.
* A local writer holds an ``flock`` on its temporary until it is renamed; the kernel drops that lock when
  the writer dies. Before writing into a folder, temporaries nobody holds a lock on (and a couple of seconds
  old, to cover the instant between creating the file and locking it) are removed: they belong to dead
  writers. On object stores there are no locks, so only temporaries older than :data:`STALE_REMOTE_S` go.
* The pair is committed JSON first, then PNG (both are staged before either rename). A crash between the two
  renames leaves a JSON that names the new image beside the old PNG (or beside no PNG on a first write), so
  a PNG never appears without its JSON, and a pair that does not belong together is told by the sha256:
  :func:`read_output_file` refuses it and :meth:`CampaignFiles.read_output` reports the output as not made (leaving
  the files alone). The JSON is the latest intent: :meth:`CampaignFiles.current_take` reads the take from it,
  so a rerun asks for the same take, finds it in the generation cache (stored before the files are written)
  and rewrites both files for free.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from upath import UPath
from upath.implementations.local import LocalPath

from adchain_assets.plan.placements import PLACEMENTS, is_placement
from adchain_assets.plan.references import Slot

logger = logging.getLogger(__name__)

# ``.<target name>.<32 hex>.tmp``: what write_atomically names its temporaries.
TEMPORARY_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<token>[0-9a-f]{32})\.tmp$")
# A local temporary nobody holds a lock on is a dead writer's once it is this old (seconds); the margin covers
# the instant between a live writer creating its temporary and locking it.
STALE_UNLOCKED_S = 2.0
# On object stores nothing tells a live writer from a dead one but time.
STALE_REMOTE_S = 15 * 60.0


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class StoredOutput:
    """An output's bytes (a PNG, an MP4, a CSV) and the provenance record that goes beside them."""

    data: bytes
    provenance: Mapping[str, Any]

    @property
    def sha256(self) -> str:
        return sha256(self.data)


class ProvenanceMismatch(Exception):
    """The data file on disk is not the one its provenance JSON describes (or it has no readable provenance)."""


def _local(path: UPath) -> Optional[Path]:
    """The plain local path of ``path``, or None for object stores and other remote file systems."""
    if isinstance(path, LocalPath):
        return Path(os.fspath(path))
    return None


def absolute(path: UPath) -> UPath:
    """``path`` made absolute when it is a local folder: listings (fsspec's ``find``) answer with absolute paths,
    so a relative data folder (the default ``./data``) must be compared in the same form."""
    return path.absolute() if _local(path) is not None else path


def uncached(path: UPath) -> UPath:
    """``path`` with its file system's listing cache dropped, for it, its parents and everything below it:
    object-store clients (s3fs) cache directory listings per process (``find`` fills them for every folder it
    walks), a read consults the cached listing of its folder, and a long-lived worker must see what other
    processes wrote since."""
    if _local(path) is None:
        fs = path.fs
        fs.invalidate_cache(path.path)
        below = path.path.rstrip("/") + "/"
        for key in [key for key in fs.dircache if key.startswith(below)]:
            fs.dircache.pop(key, None)
    return path


def files_below(folder: UPath) -> dict[str, int]:
    """``{path below folder: size}`` of every file under ``folder`` (empty when it does not exist), read fresh:
    one listing request on an object store, where a file-by-file ``stat`` would be a request each."""
    folder = absolute(folder)
    prefix = folder.path.rstrip("/") + "/"
    found = uncached(folder).fs.find(folder.path, detail=True)
    uncached(folder)  # what find cached would hide files written later from this process's reads
    return {path[len(prefix):]: int(info.get("size") or 0) for path, info in found.items() if path.startswith(prefix)}


def read_below(folder: UPath, names: Iterable[str]) -> dict[str, bytes]:
    """The files ``names`` (paths below ``folder``) in one batch: fsspec's ``cat`` of many paths, which s3fs and
    gcsfs send concurrently. A file that vanished in between is left out; any other error is raised (an output
    that cannot be read now must not look unmade, or it would be paid for again)."""
    folder = absolute(folder)
    prefix = folder.path.rstrip("/") + "/"
    paths = [prefix + name for name in names]
    if not paths:
        return {}
    found = {}
    for path, data in folder.fs.cat(paths, on_error="return").items():
        if isinstance(data, FileNotFoundError):
            continue
        if isinstance(data, BaseException):
            raise data
        found[path[len(prefix):]] = data
    return found


def made_record(text: Optional[bytes | str], data_size: Optional[int]) -> Optional[dict]:
    """The provenance ``text`` of an output whose data file has ``data_size`` bytes (None: absent), if that
    output is made: the JSON parses to an object, and the data file exists with the size the JSON records (the
    JSON is committed first, so a write cut short between the two leaves sizes that do not match)."""
    if text is None or data_size is None:
        return None
    try:
        record = json.loads(text)
        if not isinstance(record, dict):
            return None
        size = record.get("bytes")
        if size is not None and data_size != int(size):
            return None
    except (ValueError, TypeError):
        return None
    return record


def fsync_directory(directory: Path) -> None:
    """Make the renames and creations in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as error:  # some file systems cannot fsync a folder; the data itself was fsynced
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def make_durable_directories(directory: Path) -> None:
    """``mkdir -p`` whose new folders survive a power cut (each one's parent is fsynced)."""
    missing = []
    probe = directory
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    directory.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_directory(created.parent)


def _temporary_name(target_name: str) -> str:
    return f".{target_name}.{uuid.uuid4().hex}.tmp"


class _Staged:
    """A complete temporary file waiting to be renamed over its target."""

    def __init__(self, path: UPath, data: bytes):
        self.path = path
        self.temporary = path.with_name(_temporary_name(path.name))
        self._fd: Optional[int] = None
        self._done = False
        local = _local(self.temporary)
        if local is None:
            try:
                self.temporary.write_bytes(data)
            except BaseException:
                try:
                    self.temporary.unlink(missing_ok=True)
                except Exception:
                    pass  # the age sweep removes it later
                raise
            return
        fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # "a live writer owns this"; the kernel drops it if we die
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            local.unlink(missing_ok=True)
            raise
        self._fd = fd

    def commit(self) -> None:
        """Rename over the target (atomic locally; the object appears whole on object stores)."""
        try:
            local = _local(self.temporary)
            if local is None:
                self.temporary.rename(self.path)
            else:
                os.replace(local, _local(self.path))
                fsync_directory(local.parent)
        except BaseException:
            self.discard()
            raise
        self._release()

    def discard(self) -> None:
        """Remove the temporary unless it was committed; safe to call twice."""
        if self._done:
            return
        try:
            self.temporary.unlink(missing_ok=True)
        finally:
            self._release()

    def _release(self) -> None:
        self._done = True
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _prepare_directory(directory: UPath) -> None:
    local = _local(directory)
    if local is None:
        directory.mkdir(parents=True, exist_ok=True)
    else:
        make_durable_directories(local)
    sweep_temporaries(directory)


def write_atomically(path: UPath, data: bytes) -> None:
    """Write to a hidden temporary sibling, then rename over the target (see the module docstring)."""
    _prepare_directory(path.parent)
    _Staged(path, data).commit()


def write_output_file(path: UPath, output: StoredOutput, record_path: Optional[UPath] = None) -> None:
    """Write an output's bytes (a PNG, an MP4, a CSV) and its provenance JSON (``record_path``, by default the
    data file's name with ``.json``): JSON first, so the data never stands without its JSON. Every output of a
    campaign is written by this one function."""
    provenance = dict(output.provenance)
    if provenance.get("sha256") != output.sha256:
        raise ProvenanceMismatch(f"provenance for {path} names sha256 {provenance.get('sha256')}")
    _prepare_directory(path.parent)
    staged: list[_Staged] = []
    try:
        staged.append(_Staged(path, output.data))
        staged.append(_Staged(record_path or path.with_suffix(".json"),
                              json.dumps(provenance, indent=2).encode() + b"\n"))
        data, record = staged
        record.commit()
        data.commit()
    finally:
        for leftover in staged:
            leftover.discard()  # a no-op for what was committed


def read_output_file(path: UPath, record_path: Optional[UPath] = None) -> StoredOutput:
    """The output at ``path`` and its provenance (``record_path``, by default beside it with ``.json``);
    :class:`ProvenanceMismatch` when they do not belong together.

    A missing data file raises ``FileNotFoundError``.
    """
    data = path.read_bytes()
    record_path = record_path or path.with_suffix(".json")
    try:
        provenance = json.loads(record_path.read_text())
    except FileNotFoundError:
        raise ProvenanceMismatch(f"{path} has no provenance {record_path.name}; materialize this image again") from None
    except ValueError as error:
        raise ProvenanceMismatch(f"{record_path} is not readable JSON ({error}); materialize this image again") from None
    if not isinstance(provenance, dict) or provenance.get("sha256") != sha256(data):
        raise ProvenanceMismatch(
            f"{path} does not match its provenance {record_path.name}"
            " (interrupted write?); materialize this image again"
        )
    return StoredOutput(data=data, provenance=provenance)


def _modified_at(info: Mapping[str, Any]) -> Optional[float]:
    """Seconds since the epoch from an fsspec ``info()`` record (each file system names it differently)."""
    for field in ("mtime", "LastModified", "updated", "last_modified", "created", "time_created"):
        value = info.get(field)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def _remove_if_dead_local(path: Path, now: float, unlocked_after_s: float) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # renamed or removed meanwhile
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its writer is alive
        held = os.fstat(fd)
        if now - held.st_mtime < unlocked_after_s:
            return False  # possibly a writer between creating and locking it
        try:
            current = os.stat(path)
        except FileNotFoundError:
            return False
        if (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino):
            return False  # the name was taken over meanwhile
        path.unlink()
        return True
    finally:
        os.close(fd)


def sweep_temporaries(
    directory: UPath, *, unlocked_after_s: Optional[float] = None, remote_after_s: Optional[float] = None
) -> list[str]:
    """Remove the temporaries in ``directory`` whose writers are gone; returns their names.

    Locally a writer holds a lock on its temporary for as long as it lives, so an unlocked temporary older
    than ``unlocked_after_s`` (default :data:`STALE_UNLOCKED_S`) is provably a dead writer's. On object stores
    only age tells: ``remote_after_s`` (default :data:`STALE_REMOTE_S`). Never raises for a file it cannot
    look at: sweeping is housekeeping.
    """
    unlocked_after_s = STALE_UNLOCKED_S if unlocked_after_s is None else unlocked_after_s
    remote_after_s = STALE_REMOTE_S if remote_after_s is None else remote_after_s
    removed: list[str] = []
    now = time.time()
    local = _local(directory)
    try:
        names = [entry.name for entry in os.scandir(local)] if local is not None else [p.name for p in directory.iterdir()]
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in names:
        if not TEMPORARY_NAME.match(name):
            continue
        try:
            if local is not None:
                gone = _remove_if_dead_local(local / name, now, unlocked_after_s)
            else:
                candidate = directory / name
                modified = _modified_at(candidate.fs.info(candidate.path))
                gone = modified is not None and now - modified >= remote_after_s
                if gone:
                    candidate.unlink(missing_ok=True)
        except OSError as error:
            logger.warning("could not sweep temporary %s in %s: %s", name, directory, error)
            continue
        if gone:
            logger.info("removed %s in %s, left by a writer that did not finish", name, directory)
            removed.append(name)
    return removed


# Outputs that are not images named by their slot: their files in the campaign folder.
OUTPUT_FILES = {"storyboard": "storyboard.png", "ad": "ad.mp4", "report": "report.csv",
                "storyboard_pdf": "storyboard.pdf", "deliverables": "deliverables/manifest.json"}
# An output's provenance is its data file's name with .json, except where that would be another's (storyboard.json
# is the sheet's) or inside the folder handed over.
PROVENANCE_FILES = {"storyboard_pdf": "storyboard.pdf.json", "deliverables": "deliverables.json"}
SUBTITLES = "ad.srt"  # beside the ad, written by the ad's step before the ad (its sha256 is in the ad's provenance)
DELIVERABLES_DIR = "deliverables"


class CampaignFiles:
    """The campaign folder tree; ``base_path`` may be a local folder or an ``s3://`` / ``gs://`` URL."""

    def __init__(self, base_path: str):
        self.base_path = str(base_path)

    @property
    def base(self) -> UPath:
        return UPath(self.base_path)

    def campaign_dir(self, campaign: str) -> UPath:
        return self.base / "campaigns" / campaign

    def image_path(self, campaign: str, slot: Slot) -> UPath:
        return self.campaign_dir(campaign) / slot.chain / f"scene_{slot.scene}.png"

    def output_path(self, campaign: str, output: str) -> UPath:
        """Where an output (``reference/scene_1``, ``clip/scene_2``, ``storyboard``, ``ad``, ``report``) lives; a
        placement's (``placements/9x16/clip/scene_2``) in the master's layout below ``placements/9x16/``."""
        folder = self.campaign_dir(campaign)
        if is_placement(output):
            _, shape, output = output.split("/", 2)
            folder = folder / PLACEMENTS / shape
        if output in OUTPUT_FILES:
            return folder / OUTPUT_FILES[output]
        if output.startswith("clip/"):
            return folder / f"{output}.mp4"
        return folder / f"{output}.png"

    def provenance_path(self, campaign: str, output: str) -> UPath:
        if output in PROVENANCE_FILES:
            return self.campaign_dir(campaign) / PROVENANCE_FILES[output]
        return self.output_path(campaign, output).with_suffix(".json")

    def read_provenances(self, campaign: str, outputs: Iterable[str]) -> dict[str, Optional[dict]]:
        """``{output: provenance or None}`` for many outputs of ``campaign`` with two requests to an object
        store whatever their number (a listing for the data files' sizes, one batch of JSON reads): the plan
        asks this of every output of every campaign on each sensor tick."""
        folder = self.campaign_dir(campaign)
        prefix = len(folder.path.rstrip("/")) + 1
        data = {output: self.output_path(campaign, output).path[prefix:] for output in outputs}
        meta = {output: self.provenance_path(campaign, output).path[prefix:] for output in data}
        sizes = files_below(folder)
        texts = read_below(folder, [name for name in meta.values() if name in sizes])
        return {output: made_record(texts.get(meta[output]), sizes.get(data[output])) for output in data}

    def read_output(self, campaign: str, output: str) -> Optional[StoredOutput]:
        """A made output's bytes and provenance (verified by sha256), or None."""
        path = self.output_path(campaign, output)
        uncached(path.parent)  # another process may have written it since this one listed the folder
        try:
            return read_output_file(path, self.provenance_path(campaign, output))
        except FileNotFoundError:
            return None
        except ProvenanceMismatch as error:
            logger.warning("%s: %s; treated as not made", output, error)
            return None

    def write_output(self, campaign: str, output: str, data: bytes, provenance: Mapping[str, Any]) -> UPath:
        path = self.output_path(campaign, output)
        write_output_file(path, StoredOutput(data, {**provenance, "sha256": sha256(data), "bytes": len(data)}),
                          self.provenance_path(campaign, output))
        return path

    def read_record(self, campaign: str, output: str) -> Optional[dict]:
        """The provenance JSON of ``output`` as stored (None when there is none), even when its data file is
        missing or does not match: the latest intent, as :meth:`current_take` reads it."""
        path = self.output_path(campaign, output).with_suffix(".json")
        uncached(path.parent)
        try:
            record = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def current_take(self, campaign: str, output: "str | Slot") -> int:
        """The take of the stored image or sheet (0 when there is none): a new take is kept by later runs.

        Read from the provenance JSON even when the PNG beside it is missing or does not match: the JSON is
        written first, so it names the take a write that was cut short was storing; a rerun asks for that take
        again (a cache hit) and completes the pair.
        """
        name = output.key if isinstance(output, Slot) else output
        try:
            return int(json.loads(self.output_path(campaign, name).with_suffix(".json").read_text())["take"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return 0
