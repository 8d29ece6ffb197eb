"""The persistent generation cache: an identical request is never paid for twice.

The key is a request's fingerprint (:mod:`adchain_assets.plan.requests`): everything that decides the answer:
backend, model, the full prompt, the aspect ratio, the *pixels* of each reference image (not their file bytes, so
a re-encoded PNG still hits) and the take. Entries live under ``<storage>/cache/`` and survive restarts. An entry is built in a temporary folder
``.<key>.<random>`` (its files and the folder fsynced) and renamed into place, then the parent folder is
fsynced, so a reader never sees half of one, even after a power cut; a lock file per key makes a second
process wait for the first one's answer instead of paying for the same image again.

Nothing is left behind by a process killed at any point: staging folders are only made while the key's lock
is held, so the next holder of that lock removes any it finds (their writers are dead); a lock file is removed
by its holder before it lets go, and one left by a killed holder is removed by the next process that asks for
that key (``flock`` locks die with their process). :meth:`GenerationCache.sweep` does the same for the whole
cache. A clip's long-running operation is remembered beside its entry (:class:`OperationSlot`), so a retried step
resumes it instead of paying for a second one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from upath import UPath

from adchain_assets.plan.requests import Maker, candidate_material, fingerprint, pixel_digest
from adchain_assets.providers.images.base import GeneratedImage, ImageGenerator, ImageRequest
from adchain_assets.providers.video.base import GeneratedVideo, VideoGenerator, VideoRequest
from adchain_assets.store.files import fsync_directory, make_durable_directories, write_atomically


def request_key(backend: str, model: str, request: ImageRequest) -> str:
    """The key of one image call: the fingerprint of its candidate request (:func:`outputs.candidate_material`)."""
    pixels = [pixel_digest(reference.png) for reference in request.references]
    material = candidate_material(Maker(backend, model), request.prompt.text, request.aspect_ratio, pixels,
                                  request.take, request.candidate)
    return fingerprint(material)


@dataclass(frozen=True)
class Generation:
    """A model's answer and whether it came from the cache."""

    image: GeneratedImage
    cache_hit: bool
    key: str


class GenerationCache:
    """Answers repeated requests from ``root`` (``<storage>/cache``) instead of the model."""

    def __init__(self, root: str):
        self.root = str(root)

    @property
    def remote(self) -> bool:
        """An object store (``s3://...``): no locks, no folders to fsync (see :meth:`_write_entry_remote`)."""
        return "://" in self.root and not self.root.startswith("file://")

    def _entry(self, key: str):
        if self.remote:
            return UPath(self.root) / key[:2] / key
        return Path(self.root) / key[:2] / key

    def _lock_path(self, key: str) -> Path:
        return Path(self.root) / key[:2] / f"{key}.lock"

    def _read_entry(self, key: str, data_name: str) -> Optional[tuple[bytes, dict]]:
        entry = self._entry(key)
        try:
            meta = json.loads((entry / "meta.json").read_text())
            data = (entry / data_name).read_bytes()
            if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
                return None  # damaged on disk: treat as a miss, the next store replaces it
            return data, meta
        except (FileNotFoundError, NotADirectoryError, ValueError, KeyError, TypeError, AttributeError):
            return None  # absent, or unreadable (a miss as well)

    def lookup(self, key: str) -> Optional[GeneratedImage]:
        found = self._read_entry(key, "image.png")
        if found is None:
            return None
        png, meta = found
        try:
            return GeneratedImage(png=png, backend=meta["backend"], model=meta["model"], latency_s=0.0, cost_usd=0.0)
        except KeyError:
            return None

    def _remove_staging(self, key: str) -> None:
        """Remove what writers of ``key`` that died left behind; only call it holding the key's lock."""
        folder = Path(self.root) / key[:2]
        try:
            names = [entry.name for entry in os.scandir(folder)]
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith(f".{key}."):
                shutil.rmtree(folder / name, ignore_errors=True)

    def meta(self, key: str) -> Optional[dict]:
        """The ``meta.json`` of the entry under ``key`` (``sha256`` of its data, an image's ``pixels_sha256``),
        without reading its data: what the plan's estimate asks of the cache. None when there is none."""
        try:
            meta = json.loads((self._entry(key) / "meta.json").read_text())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        return meta if isinstance(meta, dict) and meta.get("sha256") else None

    def _store_locked(self, key: str, image: GeneratedImage) -> None:
        # pixels_sha256 lets a plan tell what the images made from this one will be asked (adchain_assets.plan.estimate)
        meta = {"backend": image.backend, "model": image.model, "cost_usd": image.cost_usd, "latency_s": image.latency_s,
                "pixels_sha256": pixel_digest(image.png)}
        self._write_entry_locked(key, "image.png", image.png, meta)

    def _write_entry_remote(self, key: str, data_name: str, payload: bytes, meta: dict) -> None:
        """On an object store each object appears whole; the data goes first and ``meta.json`` (with the data's
        sha256) last, so an entry is found only once both are there. There is no lock: two workers asking for the
        same request at the same instant may both pay for it (one run per campaign and the model pool make that
        rare); neither ever reads a half-written entry."""
        entry = self._entry(key)
        (entry / data_name).write_bytes(payload)
        (entry / "meta.json").write_bytes(json.dumps({**meta, "sha256": hashlib.sha256(payload).hexdigest()}).encode())

    def _write_entry_locked(self, key: str, data_name: str, payload: bytes, meta: dict) -> None:
        if self.remote:
            self._write_entry_remote(key, data_name, payload, meta)
            return
        entry = self._entry(key)
        make_durable_directories(entry.parent)
        self._remove_staging(key)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=entry.parent))
        try:
            meta = {**meta, "sha256": hashlib.sha256(payload).hexdigest()}
            for name, data in ((data_name, payload), ("meta.json", json.dumps(meta).encode())):
                with open(staging / name, "wb") as written:
                    written.write(data)
                    written.flush()
                    os.fsync(written.fileno())
            fsync_directory(staging)
            if entry.exists():
                # A damaged entry (lookup refused it); a sound one is never replaced. Moved aside under a
                # staging name, so that a crash before it is removed leaves something the next holder sweeps.
                os.rename(entry, entry.parent / f".{key}.damaged")
            os.rename(staging, entry)
            fsync_directory(entry.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            self._remove_staging(key)

    @contextmanager
    def _locked(self, key: str, blocking: bool = True) -> Iterator[bool]:
        """Hold the lock of ``key``; yields False instead when ``blocking`` is off and another process holds it.

        The holder deletes the lock file before letting go, so no lock files pile up. That is safe because a
        process that gets the lock checks that the file it locked is still the one at the lock's path; if the
        previous holder removed it meanwhile, it starts over with a fresh file.
        """
        if self.remote:
            yield True  # object stores have no locks: see _write_entry_remote
            return
        lock_path = self._lock_path(key)
        make_durable_directories(lock_path.parent)
        while True:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                yield False
                return
            except BaseException:
                os.close(fd)
                raise
            try:
                held, current = os.fstat(fd), os.stat(lock_path)
                if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)  # the holder before us removed this file when it let go: lock the new one
        try:
            yield True
        finally:
            try:
                os.unlink(lock_path)  # still holding it: see above
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)

    def _discard_stale_lock(self, key: str) -> None:
        """Remove the lock file of ``key`` if a killed process left it (nobody holds it)."""
        if not self.remote and self._lock_path(key).exists():
            with self._locked(key, blocking=False) as held:
                if held:
                    self._remove_staging(key)

    def sweep(self) -> list[str]:
        """Remove every lock file and staging folder left by killed processes; returns the keys cleaned.

        Safe while other processes use the cache: a key whose lock is held is left alone. Nothing to do on
        object stores (no locks, no staging folders).
        """
        if self.remote:
            return []
        root = Path(self.root)
        cleaned = []
        try:
            folders = [entry.path for entry in os.scandir(root) if entry.is_dir() and len(entry.name) == 2]
        except FileNotFoundError:
            return cleaned
        for folder in folders:
            keys = set()
            for name in os.listdir(folder):
                if name.endswith(".lock"):
                    keys.add(name[: -len(".lock")])
                elif name.startswith(".") and len(name) > 65 and name[65] == ".":
                    keys.add(name[1:65])
            for key in sorted(keys):
                with self._locked(key, blocking=False) as held:
                    if held:
                        self._remove_staging(key)
                        cleaned.append(key)
        return cleaned

    def generate(self, generator: ImageGenerator, request: ImageRequest, key: Optional[str] = None,
                 meter=None) -> Generation:
        """The cached answer to ``request`` (under ``key``: the request's fingerprint), or the model's, stored
        for next time. ``meter`` records the model's calls in the ledger."""
        key = key or request_key(generator.backend, generator.model, request)
        cached = self.lookup(key)
        if cached is not None:
            self._discard_stale_lock(key)
            return Generation(cached, cache_hit=True, key=key)
        with self._locked(key):
            cached = self.lookup(key)  # another process may have made it while we waited
            if cached is not None:
                return Generation(cached, cache_hit=True, key=key)
            image = generator.generate(request, meter=meter) if meter is not None else generator.generate(request)
            self._store_locked(key, image)
            return Generation(image, cache_hit=False, key=key)


    def generate_video(self, generator: VideoGenerator, request: VideoRequest, key: str,
                       meter=None) -> "VideoGeneration":
        """The cached clip for ``request`` (under ``key``: the clip's request fingerprint), or the model's."""

        def cached() -> Optional[GeneratedVideo]:
            found = self._read_entry(key, "clip.mp4")
            if found is None:
                return None
            mp4, meta = found
            fields = {name: meta[name] for name in ("backend", "model", "duration_s", "width", "height", "frame_count", "fps")}
            return GeneratedVideo(mp4=mp4, latency_s=0.0, cost_usd=0.0, **fields)

        hit = cached()
        if hit is not None:
            self._discard_stale_lock(key)
            return VideoGeneration(hit, cache_hit=True)
        with self._locked(key):
            hit = cached()
            if hit is not None:
                return VideoGeneration(hit, cache_hit=True)
            video = generator.generate(request, meter=meter, resume=OperationSlot(self.root, key))
            meta = {name: getattr(video, name) for name in ("backend", "model", "duration_s", "width", "height", "frame_count", "fps", "cost_usd", "latency_s")}
            self._write_entry_locked(key, "clip.mp4", video.mp4, meta)
            return VideoGeneration(video, cache_hit=False)


    def remember(self, key: str, name: str, make) -> tuple[bytes, bool]:
        """The bytes stored under ``key`` (a derived output's request fingerprint), or ``make()``'s, stored:
        the storyboard and the ad of a request seen before come back byte for byte, at no cost."""
        found = self._read_entry(key, name)
        if found is not None:
            return found[0], True
        with self._locked(key):
            found = self._read_entry(key, name)
            if found is not None:
                return found[0], True
            data = make()
            self._write_entry_locked(key, name, data, {})
            return data, False


class OperationSlot:
    """Where the long-running operation of one clip request is remembered: ``<root>/<key[:2]>/<key>.operation.json``.

    ``root`` is the generation cache's folder (a local path or an fsspec URL) and ``key`` the clip's request
    fingerprint (the cache key), so the record sits beside the clip's cache entry. A generator saves the operation's
    name the moment the start call returns (written atomically: temporary file, fsync, rename) and, on any later
    attempt for the same request (a retried step, a rerun, another worker after this one was killed), resumes
    polling that operation instead of paying for a new one. The record is cleared once the operation is known to
    have produced nothing billable (an operation error, a safety filter).
    """

    def __init__(self, root: str, key: str):
        self.key = key
        self.path = UPath(str(root)) / key[:2] / f"{key}.operation.json"

    def __repr__(self) -> str:
        return f"OperationSlot({str(self.path)!r})"

    def load(self) -> dict[str, Any] | None:
        """The stored record (``{"operation", "backend", "model", "route", "started_at", ...}``), or None."""
        try:
            record = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:  # a record is written atomically; an unreadable one is not ours to trust
            return None
        return record if isinstance(record, dict) and record.get("operation") else None

    def save(self, record: dict[str, Any]) -> None:
        write_atomically(self.path, json.dumps(record, sort_keys=True).encode() + b"\n")

    def clear(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


@dataclass(frozen=True)
class VideoGeneration:
    video: GeneratedVideo
    cache_hit: bool
