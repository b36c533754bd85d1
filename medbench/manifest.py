"""``tables/MANIFEST.json``: every released file with its table, sha256, bytes, rows and schema
version.

The release step writes it with :func:`write_manifest`; the store lists files from it; and
``medbench validate`` re-checks every entry with :func:`verify_files`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from medbench.errors import TableError
from medbench.schema import SCHEMA_VERSION, TABLE_NAMES

__all__ = ["MANIFEST_NAME", "load_manifest", "build_manifest", "write_manifest", "sha256_file",
           "list_table_files", "atomic_write_bytes", "check_listing"]

MANIFEST_NAME = "MANIFEST.json"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_manifest(root: str | Path) -> dict | None:
    """The manifest of a local tables folder, or None if it has none.

    Raises:
        TableError: if the manifest exists but is not valid JSON of the expected shape.
    """
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TableError(f"{path} is not a readable JSON manifest: {e}") from None
    return check_manifest_shape(manifest, str(path))


def check_manifest_shape(manifest: object, where: str) -> dict:
    """Raise TableError unless ``manifest`` has a ``files`` list of entries with the needed keys."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise TableError(f"{where} has no 'files' list")
    for entry in manifest["files"]:
        if not isinstance(entry, dict) or not {"path", "table", "sha256", "bytes",
                                               "rows"} <= set(entry):
            raise TableError(f"{where} has a malformed file entry: {entry!r}"[:300])
        if entry["table"] not in TABLE_NAMES:
            raise TableError(f"{where} lists {entry['path']} under unknown table "
                             f"{entry['table']!r}")
        p = str(entry["path"])
        if p.startswith("/") or ".." in Path(p).parts:
            raise TableError(f"{where} lists a path outside the tables folder: {p!r}")
    return manifest


def list_table_files(root: str | Path) -> dict[str, list[str]]:
    """Parquet files under ``root/<table>/`` per table, as paths relative to ``root``, sorted."""
    root = Path(root)
    out: dict[str, list[str]] = {}
    for name in TABLE_NAMES:
        folder = root / name
        if folder.is_dir():
            files = sorted(p.relative_to(root).as_posix() for p in folder.rglob("*.parquet")
                           if p.is_file())
            if files:
                out[name] = files
    return out


def check_listing(root: str | Path, manifest: dict) -> None:
    """Cheap guards (no file is read) that a local folder is the release its manifest lists:
    every path once, every file there at its listed size, no Parquet file unlisted. Queries
    would otherwise answer from a different set of rows, and a release would adopt a stray
    file; ``medbench validate`` checks the bytes themselves.

    Raises:
        TableError: naming the first mismatch.
    """
    root = Path(root)
    sizes: dict[str, int] = {}
    for entry in manifest["files"]:
        rel = entry["path"]
        if rel in sizes:
            raise TableError(f"{MANIFEST_NAME} lists {rel} twice (run 'medbench validate')")
        sizes[rel] = entry["bytes"]
        try:
            size = (root / rel).stat().st_size
        except OSError:
            raise TableError(f"{rel} is listed in {MANIFEST_NAME} but missing under {root} "
                             "(run 'medbench validate')") from None
        if size != entry["bytes"]:
            raise TableError(f"{rel} is {size} bytes, {MANIFEST_NAME} says {entry['bytes']} "
                             "(run 'medbench validate')")
    unlisted = [f for fs in list_table_files(root).values() for f in fs if f not in sizes]
    if unlisted:
        raise TableError(f"{len(unlisted)} Parquet file(s) under {root} are not in "
                         f"{MANIFEST_NAME} (e.g. {unlisted[0]}; run 'medbench validate')")


def build_manifest(root: str | Path, extra: dict | None = None) -> dict:
    """Describe every Parquet file under ``root`` (reads each file's footer with pyarrow)."""
    import pyarrow.parquet as pq

    root = Path(root)
    files = []
    for table, paths in list_table_files(root).items():
        for rel in paths:
            full = root / rel
            meta = pq.ParquetFile(full).metadata
            files.append({
                "path": rel,
                "table": table,
                "sha256": sha256_file(full),
                "bytes": full.stat().st_size,
                "rows": meta.num_rows,
                "schema_version": (meta.metadata or {}).get(
                    b"medbench.schema_version", b"").decode() or None,
            })
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": files,
    }
    if extra:
        manifest.update(extra)
    return manifest


def write_manifest(root: str | Path, extra: dict | None = None) -> dict:
    """Build the manifest of ``root`` and write it atomically; returns it."""
    manifest = build_manifest(root, extra)
    atomic_write_bytes(Path(root) / MANIFEST_NAME,
                       (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return manifest


def atomic_write_bytes(path: str | Path, data: bytes, replace: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.

    With ``replace=False`` an existing ``path`` is never touched: ``FileExistsError`` is raised
    (the commit is a hard link, which fails atomically when the name is taken).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
