"""Reading a release from object storage or the web without downloading it whole.

``medbench.open("s3://bucket/medbench/v1")`` (or any URL) reads ``MANIFEST.json`` first, which
lists every Parquet file, so nothing is ever listed on the remote side. DuckDB then fetches
only the byte ranges a query needs: each file's footer, and the column chunks of the row
groups its filters keep.

Two ways to reach the bytes, tried in this order:

1. **fsspec** (``pip install 'medbench[remote]'`` brings fsspec and s3fs): the filesystem of
   the URL's protocol is registered with DuckDB (``register_filesystem``). Credentials and
   endpoints come from the usual places of that filesystem, for S3 the AWS variables
   (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ...), or from ``storage_options``.
2. **DuckDB's httpfs extension**, where the user has installed it (``INSTALL httpfs``): it is
   loaded, never downloaded by medbench.

Either way the connection stays locked to the release's prefix (see :mod:`medbench.store`).
"""

from __future__ import annotations

import json
from typing import Any

from medbench.errors import TableError

__all__ = ["is_url", "protocol", "filesystem", "read_text", "DEFAULT_BLOCK_SIZE"]

#: Block size of fsspec file objects (s3fs's default is 50 MB).
DEFAULT_BLOCK_SIZE = 1 << 20


def is_url(path: str) -> bool:
    """Whether ``path`` names a remote location (``scheme://...``, ``file://`` excepted)."""
    return "://" in path and not path.startswith("file://")


def protocol(url: str) -> str:
    """The scheme of a URL, lower case."""
    return url.split("://", 1)[0].lower()


def filesystem(url: str, storage_options: dict[str, Any] | None = None):
    """An fsspec filesystem for ``url``, or None when fsspec has none (httpfs is then tried).

    Raises:
        TableError: if ``storage_options`` are given but fsspec cannot serve the protocol.
    """
    proto = protocol(url)
    try:
        import fsspec
        from fsspec.registry import get_filesystem_class
    except ImportError:
        fsspec = None
    if fsspec is not None:
        try:
            cls = get_filesystem_class(proto)
        except (ImportError, ValueError) as e:
            cls, why = None, str(e).splitlines()[0] if str(e) else type(e).__name__
        else:
            why = ""
        if cls is not None:
            # DuckDB asks for exactly the ranges it needs (footers, column chunks): no
            # read-ahead cache in between, or every read grows to a block.
            options = {"default_block_size": DEFAULT_BLOCK_SIZE, "default_cache_type": "none"}
            if proto in ("http", "https"):
                options = {"block_size": DEFAULT_BLOCK_SIZE}
                cls = _with_modified(cls)
            options.update(storage_options or {})
            try:
                return cls(**options)
            except TypeError:  # a filesystem without these options
                return cls(**(storage_options or {}))
    else:
        why = "fsspec is not installed"
    if storage_options:
        raise TableError(f"cannot read {proto}:// URLs with fsspec ({why}); "
                         "pip install 'medbench[remote]'")
    return None


def _with_modified(cls):
    """fsspec's HTTP filesystem with ``modified()``, which DuckDB asks of a registered
    filesystem: the server's Last-Modified header, else the epoch (a release's files never
    change under one name)."""
    from datetime import datetime, timezone
    from email.utils import parsedate_to_datetime

    class HTTPWithModified(cls):
        def modified(self, path):
            try:
                stamp = self.info(path).get("Last-Modified")
                if stamp:
                    return parsedate_to_datetime(stamp)
            except (OSError, ValueError, TypeError):
                pass
            return datetime(1970, 1, 1, tzinfo=timezone.utc)

    HTTPWithModified.__name__ = cls.__name__
    return HTTPWithModified


def read_text(url: str, fs) -> str:
    """The text at ``url``: through ``fs`` if given, else through DuckDB with httpfs."""
    if fs is not None:
        try:
            return fs.cat_file(url).decode("utf-8")
        except FileNotFoundError:
            raise TableError(f"no {url.rsplit('/', 1)[-1]} at {url}") from None
        except Exception as e:  # noqa: BLE001 - network and credential errors of any fsspec
            raise TableError(f"cannot read {url}: {_one_line(e)}") from None
    import duckdb

    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
    try:
        load_httpfs(con, url)
        return con.execute("SELECT content FROM read_text(?)", [url]).fetchall()[0][0]
    except duckdb.Error as e:
        raise TableError(f"cannot read {url}: {_one_line(e)}") from None
    finally:
        con.close()


def load_httpfs(con, url: str) -> None:
    """Load DuckDB's httpfs into ``con`` if the user has it installed; else a clear error."""
    import duckdb

    try:
        con.execute("LOAD httpfs")
    except duckdb.Error:
        raise TableError(f"cannot read {protocol(url)}:// URLs: pip install 'medbench[remote]' "
                         "(fsspec, s3fs), or install DuckDB's httpfs extension") from None


def load_json(url: str, fs) -> dict:
    text = read_text(url, fs)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise TableError(f"{url} is not valid JSON: {e}") from None


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
