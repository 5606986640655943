"""The countdown worker's request schema and root's path checks (pure logic, no sessions)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionctl.actions.countdown import MAX_REQUEST, BadRequest, Request, parse_request
from sessionctl.errors import UnsafePath
from sessionctl.linux import safepath

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["op", "seconds", "note", "x"]) | st.text(max_size=5), inner,
        max_size=4),
    max_leaves=20,
)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=MAX_REQUEST + 10))
def test_any_bytes_give_a_request_or_a_bad_request(raw: bytes) -> None:
    try:
        parse_request(raw)
    except BadRequest as exc:
        assert str(exc) and len(str(exc)) < 80


@settings(max_examples=600, deadline=None)
@given(JSON)
def test_any_json_gives_a_checked_request_or_a_bad_request(value: object) -> None:
    try:
        req = parse_request(json.dumps(value).encode())
    except BadRequest:
        return
    assert isinstance(value, dict) and req.op == value["op"]
    assert set(value) <= {"op", "seconds", "note"}
    if req.op == "postpone":
        assert isinstance(req.seconds, float) and 0 < req.seconds < float("inf")
    if req.op == "cancel":
        assert isinstance(req.note, str) and len(req.note) <= 200


@pytest.mark.parametrize(("raw", "reason"), [
    (b"[]", "not a JSON object"),
    (b"", "not JSON"),
    (b"\xff", "not JSON"),
    (b"[" * 3000, "not JSON"),
    (b'{"op": ["status"]}', "unknown request"),
    (b'{"op": "status", "op2": 1}', "unexpected field"),
    (b'{"op": "postpone", "seconds": true}', "above 0"),
    (b'{"op": "postpone", "seconds": "5"}', "above 0"),
    (b'{"op": "postpone", "seconds": 1e999}', "above 0"),
    (b'{"op": "postpone", "seconds": NaN}', "above 0"),
    (b'{"op": "postpone", "seconds": ' + b"9" * 400 + b"}", "above 0"),
    (b'{"op": "postpone", "seconds": 0}', "above 0"),
    (b'{"op": "cancel", "note": 5}', "note must be text"),
    (b'{"op": "cancel", "note": "' + b"x" * 201 + b'"}', "note must be text"),
    (b" " * (MAX_REQUEST + 1), "larger than 4096"),
])
def test_malformed_requests_are_refused_with_a_short_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        parse_request(raw)


def test_well_formed_requests() -> None:
    assert parse_request(b'{"op": "status"}') == Request("status")
    assert parse_request(b'{"op": "postpone", "seconds": 90}') == Request("postpone", 90.0)
    assert parse_request(b'{"op": "cancel", "note": null}') == Request("cancel")
    assert parse_request(b'{"op": "cancel", "note": "ok"}\n') == Request("cancel", note="ok")


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="root's path checks apply to root")


@pytest.fixture
def base() -> Iterator[Path]:
    """A root-owned 0755 directory outside /tmp's per-user dirs."""
    path = Path("/run") / f"sctest-safepath-{os.getpid()}"
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@needs_root
def test_safe_chain_is_opened_and_missing_dirs_created_with_their_mode(base: Path) -> None:
    with safepath.open_dir(base / "a" / "b", 0o750) as d:
        assert d.path == str(base / "a" / "b")
        fd = safepath.open_file(d, "f", os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
    assert stat.S_IMODE((base / "a").stat().st_mode) == 0o750
    assert stat.S_IMODE((base / "a" / "b" / "f").stat().st_mode) == 0o600


@needs_root
def test_root_owned_symlink_on_the_way_is_followed(base: Path) -> None:
    (base / "real").mkdir(mode=0o755)
    (base / "alias").symlink_to(base / "real")
    with safepath.open_dir(base / "alias") as d:
        assert d.path == str(base / "real")


@needs_root
@pytest.mark.parametrize(("setup", "why"), [
    ("owned", "owned by nobody"),
    ("group-writable", "writable by its group"),
    ("world-writable", "writable by others"),
    ("sticky-last", "writable by group and others"),
    ("user-symlink", "a symbolic link owned by nobody"),
    ("file", "(?i)not a directory"),
])
def test_unsafe_directories_are_refused(base: Path, setup: str, why: str) -> None:
    target = base / "d"
    nobody = 65534
    if setup == "file":
        target.write_text("")
    elif setup == "user-symlink":
        (base / "real").mkdir()
        target.symlink_to(base / "real")
        os.lchown(target, nobody, nobody)
    else:
        target.mkdir()
        os.chmod(target, {"owned": 0o755, "group-writable": 0o775, "world-writable": 0o757,
                          "sticky-last": 0o1777}[setup])
        if setup == "owned":
            os.chown(target, nobody, nobody)
    with pytest.raises(UnsafePath, match=why):  # a sticky dir is fine only on the way
        safepath.open_dir(target if setup == "sticky-last" else target / "sub", 0o755)


@needs_root
@pytest.mark.parametrize(("setup", "why"), [
    ("symlink", "a symbolic link"),
    ("owned", "owned by nobody"),
    ("writable", "writable by others"),
    ("hardlink", "2 hard links"),
    ("fifo", "not a regular file"),
])
def test_unsafe_files_are_refused(base: Path, setup: str, why: str) -> None:
    f = base / "f"
    if setup == "symlink":
        (base / "other").write_text("")
        f.symlink_to(base / "other")
    elif setup == "fifo":
        os.mkfifo(f, 0o600)
    else:
        f.write_text("")
        os.chmod(f, 0o666 if setup == "writable" else 0o600)
        if setup == "owned":
            os.chown(f, 65534, 65534)
        if setup == "hardlink":
            os.link(f, base / "g")
    with safepath.open_dir(base) as d, pytest.raises(UnsafePath, match=why):
        safepath.open_file(d, "f", os.O_RDWR | os.O_CREAT)


@needs_root
def test_sticky_root_ancestor_is_allowed(base: Path) -> None:
    sticky = base / "tmp"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    with safepath.open_dir(sticky / "private", 0o700) as d:
        assert d.path.endswith("/tmp/private")
