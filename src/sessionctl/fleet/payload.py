"""The code shipped to remote hosts: a zip of sessionctl (+ jeepney) and a tiny loader.

Remote hosts need only python3 (3.11+). The loader, passed with ``python3 -c``, keeps the zip
in ``~/.cache/sessionctl/`` keyed by its SHA-256 (checked on every use); when it is missing
it prints ``SCTL NEED`` and reads exactly that many bytes from the SSH channel's stdin.
So the first run on a host sends the zip once, later runs send nothing. The request, one
JSON line, comes first on stdin (sent without waiting, so a cached host never waits on us).
"""

from __future__ import annotations

import hashlib
import io
import shlex
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HAVE = b"SCTL HAVE"
NEED = b"SCTL NEED"
OLD = b"SCTL OLD"
_STAMP = (1980, 1, 1, 0, 0, 0)

# Runs on the remote host. Short, stdlib only, no bytecode or user site written or read.
LOADER = r"""
import sys,os,hashlib,tempfile
w=sys.stdout.buffer
if sys.version_info<(3,11):
    w.write(b"SCTL OLD %d.%d\n"%sys.version_info[:2]);sys.exit(3)
h,n=sys.argv[1],int(sys.argv[2])
q=sys.stdin.buffer.readline(1<<20).decode()
d=os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),"sessionctl")
p=os.path.join(d,"sessionctl-%s.pyz"%h[:40])
def good(path):
    try:
        with open(path,"rb") as f:return hashlib.sha256(f.read()).hexdigest()==h
    except OSError:return False
if good(p):w.write(b"SCTL HAVE\n");w.flush()
else:
    w.write(b"SCTL NEED\n");w.flush()
    b=bytearray();r=sys.stdin.buffer
    while len(b)<n:
        c=r.read(n-len(b))
        if not c:break
        b+=c
    if hashlib.sha256(b).hexdigest()!=h:
        sys.stderr.write("sessionctl: payload damaged in transit\n");sys.exit(4)
    try:
        os.makedirs(d,0o700,exist_ok=True);fd,t=tempfile.mkstemp(dir=d)
    except OSError:
        fd,t=tempfile.mkstemp(suffix=".pyz");p=t
        import atexit;atexit.register(os.unlink,t)
    with os.fdopen(fd,"wb") as f:f.write(b)
    if p!=t:os.replace(t,p)
sys.path.insert(0,p)
from sessionctl.fleet.agent import main
sys.exit(main([q]))
""".strip()


@dataclass(frozen=True)
class Payload:
    """The zip's bytes and their SHA-256."""

    data: bytes
    digest: str


def _package_files(module_name: str) -> list[tuple[str, Path]]:
    import importlib

    module = importlib.import_module(module_name)
    if module.__file__ is None:
        raise ImportError(f"{module_name} has no files to ship")
    root = Path(module.__file__).resolve().parent
    out = []
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        out.append((f"{module_name}/{path.relative_to(root).as_posix()}", path))
    return out


def _pyc(source: bytes, arcname: str) -> bytes:
    """Bytecode for one module, unchecked-hash style: zipimport uses it when the remote
    python has the same version as ours (no compiling on every run) and falls back to the
    source otherwise."""
    import marshal
    from importlib.util import MAGIC_NUMBER, source_hash

    code = compile(source, arcname, "exec", dont_inherit=True)
    flags = (0b01).to_bytes(4, "little")  # PEP 552: hash-based, not checked against source
    return MAGIC_NUMBER + flags + source_hash(source) + marshal.dumps(code)


def _cache_file(files: list[tuple[str, Path]]) -> Path | None:
    """Where a zip of exactly these files (by path, size, mtime) is kept between runs."""
    import os
    import sys

    key = hashlib.sha256(sys.version.encode())
    for arcname, path in files:
        st = path.stat()
        key.update(f"{arcname}\0{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "sessionctl" / f"payload-{key.hexdigest()[:32]}.pyz"


@cache
def build() -> Payload:
    """The zip, built once per code version (cached in ~/.cache/sessionctl; same code →
    same bytes and digest)."""
    files = [f for name in ("sessionctl", "jeepney") for f in _package_files(name)]
    cached = _cache_file(files)
    try:
        data = cached.read_bytes() if cached else b""
    except OSError:
        data = b""
    if data:
        return Payload(data, hashlib.sha256(data).hexdigest())
    payload = _build(files)
    if cached is not None:
        import contextlib
        import os
        import tempfile

        with contextlib.suppress(OSError):
            cached.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=cached.parent)
            with os.fdopen(fd, "wb") as out:
                out.write(payload.data)
            os.replace(tmp, cached)
    return payload


def _build(files: list[tuple[str, Path]]) -> Payload:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for arcname, path in files:
            info = zipfile.ZipInfo(arcname, _STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            source = path.read_bytes()
            zf.writestr(info, source)
            compiled = zipfile.ZipInfo(arcname + "c", _STAMP)
            compiled.compress_type = zipfile.ZIP_DEFLATED
            compiled.external_attr = 0o644 << 16
            zf.writestr(compiled, _pyc(source, arcname))
    data = buffer.getvalue()
    return Payload(data, hashlib.sha256(data).hexdigest())


def remote_command(payload: Payload, python: str = "python3") -> str:
    """The shell command line run on the remote host. The request (one JSON line) comes on
    stdin, then the zip if asked for: nothing of the request shows in the process list."""
    args = [payload.digest, str(len(payload.data))]
    words = ["exec", shlex.quote(python), "-I", "-S", "-c", shlex.quote(LOADER)]
    return " ".join([*words, *map(shlex.quote, args)])
