"""Tables read from object storage: an S3-compatible server (moto) on loopback.

A synthetic release (made for this test only, never benchmark content) is uploaded to a
bucket; queries through ``s3://`` must equal the local ones while fetching only a small part
of the release's bytes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

import medbench  # noqa: E402
from medbench.errors import ReadOnlyError, TableError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _stress_builder():
    spec = importlib.util.spec_from_file_location("query_startup",
                                                  ROOT / "benchmarks" / "query_startup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """(endpoint, local release, bucket URL) with the release uploaded."""
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    mp = pytest.MonkeyPatch()
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        mp.setenv(k, v)
    local = tmp_path_factory.mktemp("release")
    _stress_builder()(local, 120_000, 8)
    fs = s3fs.S3FileSystem(endpoint_url=endpoint)
    fs.mkdir("bench")
    fs.put(str(local) + "/", "bench/release-1/", recursive=True)
    yield endpoint, local, "s3://bench/release-1"
    mp.undo()
    server.stop()


def counting_fs(endpoint: str):
    """An s3fs filesystem that counts the bytes of every GET it makes."""
    import s3fs

    class Counting(s3fs.S3FileSystem):
        cachable = False  # a fresh instance (and count) per call
        fetched = 0
        gets = 0
        opened: list[str] = []

        def _open(self, path, *args, **kwargs):
            type(self).opened.append(str(path))
            return super()._open(path, *args, **kwargs)

        async def _call_s3(self, method, *args, **kwargs):
            out = await super()._call_s3(method, *args, **kwargs)
            if method == "get_object":
                type(self).fetched += int(out.get("ContentLength") or 0)
                type(self).gets += 1
            return out

    return Counting(endpoint_url=endpoint, default_block_size=1 << 20, default_cache_type="none")


def release_bytes(local: Path) -> int:
    return sum(p.stat().st_size for p in local.rglob("*.parquet"))


def test_s3_query_equals_local_and_fetches_a_small_part(s3):
    endpoint, local, url = s3
    fs = counting_fs(endpoint)
    with medbench.open(url, filesystem=fs) as remote:
        assert len(fs.ls("bench/release-1")) > 0
        type(fs).fetched, type(fs).opened = 0, []
        got = remote.query(task="hippocampus", max_latency="4ms", sort="val_dice",
                           limit=20).rows()
        fetched = type(fs).fetched
    with medbench.open(local) as store:
        want = store.query(task="hippocampus", max_latency="4ms", sort="val_dice",
                           limit=20).rows()
    assert got == want and len(got) == 20
    total = release_bytes(local)
    # No file of another task of the eight is opened, and of the files read only the
    # footers and the column chunks the query needs are fetched.
    opened = {p for p in type(fs).opened if p.endswith(".parquet")}
    assert opened and all("task=msd%2Fhippocampus" in p for p in opened), opened
    assert 0 < fetched < 0.2 * total, (fetched, total)
    print(f"filtered query fetched {fetched:,} of {total:,} bytes ({fetched / total:.1%}) "
          f"in {type(fs).gets} GETs from {len(opened)} files")


def test_s3_through_storage_options_and_sql(s3):
    endpoint, local, url = s3
    with medbench.open(url, storage_options={"endpoint_url": endpoint}) as remote:
        n = remote.sql("SELECT count(*) FROM evaluations").fetchall()[0][0]
        assert n == 120_000
        # Locked to the release's prefix: other keys of the bucket, or local files, are out.
        with pytest.raises(ReadOnlyError):
            remote.sql("SELECT * FROM read_text('s3://bench/release-10/MANIFEST.json')")
        with pytest.raises(ReadOnlyError):
            remote.sql(f"SELECT * FROM read_text('{local}/MANIFEST.json')")


def test_s3_missing_release_is_one_line(s3):
    endpoint, _, _ = s3
    with pytest.raises(TableError, match="no MANIFEST.json at s3://bench/nothing-here"):
        medbench.open("s3://bench/nothing-here", storage_options={"endpoint_url": endpoint})


def test_cli_reads_s3(s3):
    import subprocess

    _, _, url = s3
    out = subprocess.run([sys.executable, "-m", "medbench", "--tables", url, "query", "--task",
                          "hippocampus", "--limit", "3", "--format", "csv"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.strip().splitlines()) == 4  # header and three rows
    bad = subprocess.run([sys.executable, "-m", "medbench", "--tables", url + "-nope",
                          "query", "--task", "hippocampus"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


class _RangeHandler:
    """A static file server on loopback that answers byte-range requests, as nginx or any
    static host does (Python's own http.server does not)."""

    @staticmethod
    def serve(directory: Path):
        import functools
        import http.server
        import os
        import re
        import threading

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send_head(self):
                rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                path = self.translate_path(self.path)
                if not rng or not os.path.isfile(path):
                    return super().send_head()
                size = os.path.getsize(path)
                start = int(rng.group(1))
                end = min(int(rng.group(2) or size - 1), size - 1)
                f = open(path, "rb")
                f.seek(start)
                self.send_response(206)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                self._left = end - start + 1
                return f

            def copyfile(self, source, outputfile):
                left = getattr(self, "_left", None)
                if left is None:
                    return super().copyfile(source, outputfile)
                outputfile.write(source.read(left))

        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def test_a_release_on_a_plain_static_web_server_answers_like_the_local_one(s3):
    """A static server decodes the request path: partition folders such as
    task=msd%2Fhippocampus must be asked for percent-encoded again."""
    pytest.importorskip("aiohttp")
    _, local, _ = s3
    server = _RangeHandler.serve(local)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with medbench.open(local) as store:
            want = store.query(task="hippocampus", limit=0).rows()
            counts = store.sql("SELECT count(*) FROM evaluations").fetchall()
        assert want and "%2F" in next(p.name for p in local.rglob("task=*"))
        with medbench.open(url) as store:
            assert store.query(task="hippocampus", limit=0).rows() == want
            assert store.sql("SELECT count(*) FROM evaluations").fetchall() == counts
    finally:
        server.shutdown()
