"""One pass over a Fingers folder: every PNG found, named, read and hashed, every problem kept.

Nothing is skipped without a word: symbolic links to folders are followed, but a folder
reached a second time (a link loop, or two links to one folder) is read once and the
repeat is reported; broken links, unreadable and empty files and badly named PNGs are
returned with their reason instead of stopping at the first one, so one run lists them all.
Each readable file gets a BLAKE2b digest of its bytes, which keys the image cache on
content (a file rewritten with its old size and modification time is seen).
"""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from handgestures.data.imagefile import ImageRefused, check_regular, not_regular
from handgestures.data.problems import NoImagesError

NAME_PATTERN = re.compile(r"^(?P<id>.+)_(?P<fingers>[0-5])(?P<hand>[LR])\.png$", re.IGNORECASE)
EXPECTED_NAME = "<id>_<N><L|R>.png with N in 0..5 (for example 0a1b_3L.png)"
READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileRecord:
    """A readable, well-named PNG: its path under the root, size, content digest and label."""

    rel: str
    size: int
    digest: str
    fingers: int
    hand: int


@dataclass
class FolderScan:
    """What :func:`scan_folder` found: good files, bad ones with their reasons, and notes."""

    root: Path
    files: list[FileRecord] = field(default_factory=list)  # sorted by path
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    notes: list[str] = field(default_factory=list)  # things not read, said once each


def parse_name(path: str | os.PathLike) -> tuple[int, int]:
    """``(fingers, hand)`` from a Fingers file name; hand is 0 for L and 1 for R.

    >>> parse_name("train/00048bba_3R.png")
    (3, 1)
    """
    name = Path(path).name
    match = NAME_PATTERN.match(name)
    if match is None:
        raise ValueError(f"badly named image file {str(path)!r}: expected {EXPECTED_NAME}")
    return int(match["fingers"]), int(match["hand"].upper() == "R")


def walk_pngs(root: Path) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """``(PNG paths, bad entries, notes)`` under ``root``, following links to folders once each."""
    pngs: list[str] = []
    bad: list[tuple[str, str]] = []
    notes: list[str] = []
    others: list[str] = []
    hidden: list[str] = []
    st = root.stat()
    seen = {(st.st_dev, st.st_ino): "."}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            bad.append((os.path.relpath(folder, root), f"folder cannot be read ({err.strerror or err})"))
            continue
        for entry in entries:
            rel = os.path.relpath(entry.path, root)
            if entry.name.startswith("."):
                hidden.append(rel)
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
                is_file = entry.is_file(follow_symlinks=True)
            except OSError as err:
                bad.append((rel, f"cannot be read ({err.strerror or err})"))
                continue
            if not (is_dir or is_file):  # a broken link, or a FIFO, device or socket: never opened
                try:
                    bad.append(
                        (rel, f"not a regular file: {not_regular(entry.stat(follow_symlinks=True))}; not opened")
                    )
                except OSError:
                    bad.append((rel, f"broken symbolic link to {os.readlink(entry.path)!r}"))
            elif is_dir:
                target = entry.stat(follow_symlinks=True)
                key = (target.st_dev, target.st_ino)
                if key in seen:
                    notes.append(
                        f"folder {rel!r} not read again: it is {seen[key]!r}, already read (a link loop or a second link)"
                    )
                else:
                    seen[key] = rel
                    stack.append(Path(entry.path))
            elif entry.name.lower().endswith(".png"):
                pngs.append(rel)
            else:
                others.append(rel)
    if others:
        notes.append(f"{len(others)} files are not PNG images and were not read, e.g. {others[:3]}")
    if hidden:
        notes.append(f"{len(hidden)} hidden entries (names starting with '.') were not read, e.g. {hidden[:3]}")
    return sorted(pngs), bad, notes


def digest_file(path: str | os.PathLike) -> tuple[int, str]:
    """``(size, BLAKE2b-128 hex digest)`` of a file's bytes."""
    h = hashlib.blake2b(digest_size=16)
    size = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(READ_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _record(root: Path, rel: str) -> FileRecord | tuple[str, str]:
    try:
        fingers, hand = parse_name(rel)
    except ValueError:
        return rel, f"badly named: expected {EXPECTED_NAME}"
    try:
        check_regular(root / rel)  # replaced by a FIFO since the walk: still never opened
        size, digest = digest_file(root / rel)
    except ImageRefused as err:
        return rel, str(err)
    except OSError as err:
        return rel, f"cannot be read ({err.strerror or err})"
    if size == 0:
        return rel, "empty file (0 bytes)"
    return FileRecord(rel, size, digest, fingers, hand)


def scan_folder(root: str | os.PathLike, threads: int | None = None) -> FolderScan:
    """Every PNG under ``root``, read and hashed in one pass; problems returned, not raised.

    Raises :class:`NoImagesError` (a FileNotFoundError) only when ``root`` is not a folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise NoImagesError(f"data.root {str(root)!r} is not a folder of Fingers PNG images")
    rels, bad, notes = walk_pngs(root)
    scan = FolderScan(root, bad=bad, notes=notes)
    with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as pool:
        for item in pool.map(lambda rel: _record(root, rel), rels):
            (scan.files if isinstance(item, FileRecord) else scan.bad).append(item)
    scan.bad.sort()
    return scan
