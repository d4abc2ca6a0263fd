"""The cache on object storage: a real S3 API (moto's server on 127.0.0.1, spoken to by s3fs).

Commits (payload first, the manifest by exclusive create, first manifest wins), verified reads,
racing writers, a writer killed before its manifest, leases and gc, `framepack render` and
`framepack cache` on an s3:// URL, and store errors as one line."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from framepack_render.store import LocalStore, Store, StoreError, open_store
from framepack_render.store.fsspec_store import FsspecStore
from framepack_render.store.tensors import FILE, TensorCache

from .conftest import REPO, run, shot_text, write
from .s3_server import S3, bucket, s3  # noqa: F401  (fixtures)

KEY = "ab" * 32
ONE_WINDOW = "\n  - {prompt: a red ball rolls, duration: 1.2s}\n"
FOLDER = f"window/ab/{KEY}"


def url(bucket: str) -> str:
    return f"s3://{bucket}/cache"


def remote(s3: S3, bucket: str, **kwargs) -> FsspecStore:
    store = open_store(url(bucket), s3.options) if not kwargs else \
        FsspecStore(url(bucket), s3.options, **kwargs)
    assert isinstance(store, FsspecStore)
    return store


def objects(s3: S3, bucket: str, under: str = "") -> list[str]:
    prefix = f"{bucket}/cache/{under}".rstrip("/")
    return sorted(p[len(prefix) + 1:] for p in s3.fs().find(prefix))


def cache_args(s3: S3, bucket: str) -> list[str]:
    return ["--cache", url(bucket), "--storage-option", f"endpoint_url={s3.endpoint}"]


def pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def tensors(value: float) -> dict[str, torch.Tensor]:
    return {"latents": torch.full((2, 3), value)}


# ---------------------------------------------------------------- commits and reads


def test_an_entry_round_trips_with_a_content_addressed_payload(s3, bucket):
    store = remote(s3, bucket)
    assert isinstance(store, Store) and isinstance(LocalStore("unused"), Store)
    assert not store.has("window", KEY) and store.read("window", KEY, FILE) is None

    assert store.put("window", KEY, {FILE: b"payload"}).won
    assert store.has("window", KEY) and store.verify("window", KEY)
    assert store.read("window", KEY, FILE) == b"payload"
    digest = hashlib.sha256(b"payload").hexdigest()
    assert objects(s3, bucket) == [f"{FOLDER}/manifest.json",
                                   f"{FOLDER}/tensors.{digest}.safetensors", f"{FOLDER}/used"]
    manifest = json.loads(s3.fs().cat_file(f"{bucket}/cache/{FOLDER}/manifest.json"))
    assert manifest == {"kind": "window", "key": KEY, "files": {FILE: {
        "size": 7, "sha256": digest, "object": f"tensors.{digest}.safetensors"}}}
    [entry] = store.entries()
    assert (entry.kind, entry.key, entry.path) == ("window", KEY, f"{url(bucket)}/{FOLDER}")
    assert entry.size == len(json.dumps(manifest, indent=1)) + 7

    store.discard("window", KEY)
    assert not store.has("window", KEY) and objects(s3, bucket) == []


def test_a_corrupt_payload_reads_as_none_fails_verify_and_is_made_again(s3, bucket):
    store = remote(s3, bucket)
    cache = TensorCache(store)
    cache.save("window", KEY, tensors(1.0))
    [payload] = [p for p in objects(s3, bucket) if ".safetensors" in p]
    s3.fs().pipe_file(f"{bucket}/cache/{payload}", b"\0" * 8)  # same name, other bytes

    assert store.has("window", KEY)  # committed, but it no longer checks out
    assert store.read("window", KEY, FILE) is None and not store.verify("window", KEY)
    assert cache.load("window", KEY) is None and cache.corrupt == [("window", KEY)]
    assert not store.has("window", KEY)  # discarded, so the next render makes it again
    made, cached = cache.obtain("window", KEY, lambda: tensors(2.0))
    assert not cached and torch.equal(made["latents"], tensors(2.0)["latents"])


def test_racing_writers_of_one_key_end_up_with_the_first_manifest(s3, bucket):
    for round in range(4):
        key = f"{round:02d}" * 32
        stores = [remote(s3, bucket), remote(s3, bucket)]
        start = threading.Barrier(2)
        commits: dict[int, bool] = {}

        def write(i: int) -> None:
            start.wait()
            commits[i] = stores[i].put("window", key, {FILE: f"writer {i}".encode()}).won

        threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(commits.values()) == [False, True]
        winner = next(i for i, won in commits.items() if won)
        for store in stores:
            assert store.read("window", key, FILE) == f"writer {winner}".encode()
        # the loser's payload (other bytes, other name) is gone; the winner's is untouched
        assert len([p for p in objects(s3, bucket, f"window/{key[:2]}/{key}")
                    if ".safetensors" in p]) == 1


class NoLock:
    """A lock that does not lock: two workers both make an entry, as when an advisory lock
    on an object store was taken over as stale while its holder still lived."""

    def acquire(self, timeout: float = -1) -> NoLock:
        return self

    def release(self) -> None:
        pass

    def __enter__(self) -> NoLock:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.mark.parametrize("where", ["s3", "local"])
def test_workers_that_both_made_an_entry_carry_on_from_the_committed_one(where, s3, bucket,
                                                                        tmp_path):
    def unlocked() -> Store:
        store = remote(s3, bucket) if where == "s3" else LocalStore(tmp_path / "c")
        store.lock = lambda kind, key: NoLock()  # type: ignore[method-assign]
        return store

    both_making = threading.Barrier(2)
    results: dict[int, dict[str, torch.Tensor]] = {}

    def work(i: int) -> None:
        def make() -> dict[str, torch.Tensor]:
            both_making.wait(30)  # neither has committed: a real race on the manifest
            return tensors(float(i))

        results[i], cached = TensorCache(unlocked()).obtain("window", KEY, make)
        assert not cached

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2
    committed = TensorCache(unlocked()).load("window", KEY)
    assert committed is not None
    for made in results.values():
        assert torch.equal(made["latents"], committed["latents"])


def test_a_lock_is_exclusive_reentrant_and_waits_with_a_timeout(s3, bucket):
    first, second = remote(s3, bucket), remote(s3, bucket)
    with first.lock("window", KEY):
        with first.lock("window", KEY):  # the same thread may take it again
            pass
        with pytest.raises(TimeoutError):
            second.lock("window", KEY).acquire(timeout=0.3)
    with second.lock("window", KEY):
        assert objects(s3, bucket) == [f".locks/window/ab/{KEY}.lock"]
    assert objects(s3, bucket) == []


# ---------------------------------------------------------------- leases and gc

KILLED_WRITER = """
import os, signal, sys
from framepack_render.store.fsspec_store import FsspecStore

url, endpoint, doomed, existing = sys.argv[1:]
store = FsspecStore(url, {"endpoint_url": endpoint}, ttl=1.0)
store.lease({("window", doomed), ("window", existing)}).__enter__()
create = store._create

def die_before_the_manifest(path, data):
    if path.endswith("/manifest.json"):
        os.kill(os.getpid(), signal.SIGKILL)
    return create(path, data)

store._create = die_before_the_manifest
store.put("window", doomed, {"tensors.safetensors": b"never committed"})
"""


def test_a_writer_killed_before_its_manifest_leaves_no_entry_and_gc_cleans_up(
        s3, bucket, capsys):
    store = remote(s3, bucket)
    existing, doomed = "cd" * 32, "ef" * 32
    store.put("window", existing, {FILE: b"kept only while leased"})
    writer = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_WRITER), url(bucket), s3.endpoint,
         doomed, existing], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert writer.returncode == -9, writer.stderr
    assert not store.has("window", doomed) and store.read("window", doomed, FILE) is None
    assert [e.key for e in store.entries()] == [existing]
    assert any(p.startswith(f"window/ef/{doomed}/tensors.") for p in objects(s3, bucket))

    deadline = time.monotonic() + 10  # the lease expires a second after its last heartbeat
    while store.live_leases() and time.monotonic() < deadline:
        time.sleep(0.2)
    code, out, _ = run(capsys, "cache", "ls", *cache_args(s3, bucket), "--json")
    listing = json.loads(out)
    assert code == 0 and listing["running_renders"] == 0
    assert len(listing["leftovers"]) == 2  # its expired lease and its orphaned payload

    code, out, _ = run(capsys, "cache", "gc", "--older-than", "0s", *cache_args(s3, bucket),
                       "--json")
    report = json.loads(out)
    assert code == 0 and report["in_use"] == {"entries": 0, "renders": 0}
    assert [e["key"] for e in report["removed"]] == [existing]  # an expired lease keeps none
    assert objects(s3, bucket) == []


def test_a_live_lease_keeps_its_entries_from_gc_and_clear(s3, bucket, capsys):
    store = remote(s3, bucket, ttl=1.0)
    foreseen, added, other = ("window", "a1" * 32), ("prompt", "b2" * 32), ("window", "c3" * 32)
    for kind, key in (foreseen, added, other):
        store.put(kind, key, {FILE: key.encode()})
    with store.lease({foreseen}) as lease:
        lease.add(*added)
        time.sleep(1.5)  # past the lease's time to live: only its heartbeat keeps it
        code, out, _ = run(capsys, "cache", "gc", "--older-than", "0s",
                           *cache_args(s3, bucket), "--json")
        report = json.loads(out)
        assert code == 0 and [e["key"] for e in report["removed"]] == [other[1]]
        assert report["in_use"] == {"entries": 2, "renders": 1}
        code, _, err = run(capsys, "cache", "clear", "--yes", *cache_args(s3, bucket))
        assert code == 2 and "1 running render" in err
        assert {(e.kind, e.key) for e in store.entries()} == {foreseen, added}
    assert store.live_leases() == 0
    assert run(capsys, "cache", "clear", "--yes", *cache_args(s3, bucket))[0] == 0
    assert objects(s3, bucket) == []


# ---------------------------------------------------------------- the command line


def test_render_with_an_s3_cache_matches_a_local_one_and_cache_commands_work(
        s3, bucket, folder, capsys, tmp_path):
    path = write(folder, "shot.yaml", shot_text(sections=ONE_WINDOW))
    code, _, err = run(capsys, "render", path, "--cache", tmp_path / "local", "--no-preview")
    assert code == 0, err
    local = pngs(folder / "out")
    assert local
    shutil.rmtree(folder / "out")

    code, out, err = run(capsys, "render", path, *cache_args(s3, bucket), "--json",
                         "--no-preview")
    summary = json.loads(out)
    assert code == 0 and summary["windows_cached"] == 0 and summary["cache"] == url(bucket)
    assert pngs(folder / "out") == local
    assert {e.kind for e in open_store(url(bucket), s3.options).entries()} >= {
        "window", "prompt", "image", "frames"}
    code, out, _ = run(capsys, "plan", path, *cache_args(s3, bucket), "--json")
    plan = json.loads(out)
    assert code == 0 and plan["cache"] == url(bucket)
    assert [w["cached"] for w in plan["plans"][0]["windows"]] == [True]

    # Again from the cache alone, this time with credentials given as options.
    shutil.rmtree(folder / "out")
    secret = "testing-secret"
    code, out, err = run(capsys, "render", path, *cache_args(s3, bucket), "--json",
                         "--no-preview", "--storage-option", "key=testing-key-id",
                         "--storage-option", f"secret={secret}")
    summary = json.loads(out)
    assert code == 0 and summary["windows_rendered"] == 0 and summary["windows_cached"] > 0
    assert pngs(folder / "out") == local
    written = (folder / "out" / "render.json").read_text()
    assert secret not in out + err + written

    code, out, _ = run(capsys, "cache", "ls", *cache_args(s3, bucket), "--json")
    listing = json.loads(out)
    assert code == 0 and listing["cache"] == url(bucket) and listing["entries"] > 0
    assert listing["leftovers"] == [] and listing["running_renders"] == 0
    code, out, _ = run(capsys, "cache", "verify", *cache_args(s3, bucket))
    assert code == 0 and f"in {url(bucket)}: all intact" in out
    code, out, _ = run(capsys, "cache", "gc", "--older-than", "0s", *cache_args(s3, bucket))
    assert code == 0 and out.startswith(f"removed {listing['entries']} entries")
    assert objects(s3, bucket) == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("case", ["missing bucket", "unreachable", "unknown protocol",
                                  "options for a folder"])
@pytest.mark.parametrize("command", ["cache ls", "render", "plan"])
def test_an_unusable_cache_is_one_line_naming_it_and_exit_2(case, command, s3, folder, capsys):
    cache, options = {
        "missing bucket": ("s3://no-such-bucket/cache", [f"endpoint_url={s3.endpoint}"]),
        "unreachable": ("s3://any-bucket/cache", [
            f"endpoint_url=http://127.0.0.1:{closed_port()}",
            'config_kwargs={"retries": {"max_attempts": 1}}']),
        "unknown protocol": ("nosuch://bucket/cache", []),
        "options for a folder": (str(folder / "cache"), ["anon=true"]),
    }[case]
    shot = [write(folder, "shot.yaml", shot_text())] if command != "cache ls" else []
    flags = [f for option in options for f in ("--storage-option", option)]
    code, out, err = run(capsys, *command.split(), *shot, "--cache", cache, *flags)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and cache in lines[0], err
    assert "Traceback" not in err and not (folder / "out").exists()


def test_a_failing_write_is_a_store_error_naming_the_url(s3, bucket):
    store = remote(s3, bucket)
    s3.fs().rmdir(bucket)  # gone after the store was opened
    with pytest.raises(StoreError, match=rf"^cache {url(bucket)}: cannot write window/"):
        store.put("window", KEY, {FILE: b"x"})
    assert not store.has("window", KEY)


def test_open_store_keeps_folders_and_plain_file_urls_local(tmp_path, monkeypatch):
    assert isinstance(open_store(tmp_path / "c"), LocalStore)
    local = open_store(f"file://{tmp_path}/c")
    assert isinstance(local, LocalStore) and local.root == tmp_path / "c"
    monkeypatch.setenv("FRAMEPACK_CACHE", str(tmp_path / "env"))
    assert open_store(None).url == str(tmp_path / "env")
    # Other fsspec filesystems: in memory, and a folder reached through fsspec (with options).
    for other in (open_store(f"memory://{tmp_path.name}/cache"),
                  open_store(f"file://{tmp_path}/fsspec", {"auto_mkdir": True})):
        assert isinstance(other, FsspecStore)
        assert other.put("window", KEY, {FILE: b"m"}).won
        assert not other.put("window", KEY, {FILE: b"n"}).won
        assert other.read("window", KEY, FILE) == b"m" and other.verify("window", KEY)
        assert [e.key for e in other.entries()] == [KEY] and other.leftovers(0) == []
        with other.lease({("window", KEY)}):
            assert other.in_use().keys == {("window", KEY)}
        other.clear()
        assert list(other.entries()) == [] and other.leftovers(0) == []


def test_a_local_cache_that_cannot_be_written_is_a_store_error(tmp_path, folder, capsys):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache should be")
    with pytest.raises(StoreError, match=rf"^cache {blocked}: cannot write window/ab/{KEY}: "):
        LocalStore(blocked).put("window", KEY, {FILE: b"x"})
    path = write(folder, "shot.yaml", shot_text(sections=ONE_WINDOW))
    code, _, err = run(capsys, "render", path, "--cache", blocked, "--no-preview")
    lines = err.strip().splitlines()
    assert code == 2 and lines == [f"error: cache {blocked}: not a folder; give a folder (it "
                                   "is made if missing) or a URL"], err
    assert not (folder / "out").exists()


def test_an_empty_cache_argument_is_refused_not_the_working_folder(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    before = sorted(p.name for p in folder.iterdir())
    path = write(folder, "shot.yaml", shot_text(sections=ONE_WINDOW))
    code, _, err = run(capsys, "render", path, "--cache", "", "--no-preview")
    assert code == 2 and err.strip().splitlines() == [
        "error: cache '': give a folder or a URL (s3://bucket/prefix, gs://...)"], err
    assert sorted(p.name for p in folder.iterdir()) == sorted(before + ["shot.yaml"])
