"""Opening root's own files without trusting anyone else (like sshd's StrictModes).

Root keeps state, sockets and the audit log in directories it may be told about by
configuration or the environment. A directory another user owns or can write lets that
user swap files, plant symlinks or replace a database between a check and its use. So for
root (state.py, actions/audit.py and the countdown use this when the caller is root) every
directory on the way is walked from ``/`` one component at a time with ``openat``, each
opened with ``O_NOFOLLOW`` and checked on the open descriptor:

* every directory must be owned by root; the last one must not be writable by group or
  others; an ancestor may be (only) a sticky directory owned by root, like ``/tmp``, whose
  entries nobody but their owner can rename or remove;
* a symlink on the way is followed only if root owns it (``/var/run`` → ``/run``);
* files are opened relative to the checked directory's descriptor with ``O_NOFOLLOW`` and
  must be regular, owned by root, not writable by group or others, with one link.

Once a chain is checked nobody but root can change it, so a path built from it (for
SQLite, ``bind``) names the same objects: there is no window between check and use.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from dataclasses import dataclass

from ..errors import UnsafePath

MAX_SYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_WHY = "root uses only root-owned files in directories nobody else can write"


def _refuse(path: str, why: str, wanted: str | None = None) -> UnsafePath:
    """``wanted``: the path asked for, when ``path`` is the component on its way at fault."""
    where = f"{wanted}: {path}" if wanted and wanted != path else path
    return UnsafePath(f"refusing {where}: {why} ({_WHY})")


def _owner(uid: int) -> str:
    from .accounts import user_name

    return f"{user_name(uid)} (uid {uid})" if uid >= 0 else f"uid {uid}"


def _check_dir(st: os.stat_result, path: str, last: bool, wanted: str) -> None:
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(path, "not a directory", wanted)
    if st.st_uid != 0:
        raise _refuse(path, f"the directory is owned by {_owner(st.st_uid)}, not root", wanted)
    writable = st.st_mode & 0o022
    if writable and (last or not st.st_mode & stat.S_ISVTX):
        who = "group and others" if writable == 0o022 else (
            "its group" if writable & 0o020 else "others")
        raise _refuse(path, f"the directory is writable by {who} "
                            f"(mode {stat.S_IMODE(st.st_mode):04o})", wanted)


def check_file(st: os.stat_result, path: str) -> None:
    """Refuse a file that is not a regular root-owned file only root can write."""
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, "not a regular file")
    if st.st_uid != 0:
        raise _refuse(path, f"the file is owned by {_owner(st.st_uid)}, not root")
    if st.st_mode & 0o022:
        raise _refuse(path, f"the file is writable by others (mode "
                            f"{stat.S_IMODE(st.st_mode):04o})")
    if st.st_nlink != 1:
        raise _refuse(path, f"the file has {st.st_nlink} hard links")


@dataclass
class SafeDir:
    """An open, checked directory: ``fd`` for *at() calls, ``path`` the name it was
    reached by (symlinks resolved), usable as a path while the chain stays root's."""

    fd: int
    path: str

    def join(self, name: str) -> str:
        return self.path.rstrip("/") + "/" + name

    @property
    def proc_path(self) -> str:
        """The directory through our descriptor: ``/proc/self/fd/N`` (for bind/connect)."""
        return f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SafeDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_dir(path: str | os.PathLike[str], create_mode: int | None = None,
             wanted: str | os.PathLike[str] | None = None) -> SafeDir:
    """Walk to ``path`` from ``/`` checking every step; create missing directories with
    ``create_mode`` (exactly that mode, owned by root) when given. ``wanted``: the file
    in it that messages name (default: ``path`` itself).

    Raises UnsafePath for a step that is not safe, FileNotFoundError when a directory is
    missing and ``create_mode`` is None.
    """
    text = os.path.abspath(os.fspath(path))
    asked = os.fspath(wanted) if wanted is not None else text
    todo = deque(p for p in text.split("/") if p)
    fd = os.open("/", _DIR_FLAGS)
    done: list[str] = []
    hops = 0
    try:
        _check_dir(os.fstat(fd), "/", not todo, asked)
        while todo:
            name = todo.popleft()
            if name == ".":
                continue
            here = "/" + "/".join([*done, name])
            if name == "..":  # lexically up: reopen the parent chain from the root
                done = done[:-1]
                new = open_dir("/" + "/".join(done))
                os.close(fd)
                fd, new.fd = new.fd, -1
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if create_mode is None:
                    raise
                _make(fd, name, create_mode)
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise _refuse(asked, "too many symbolic links")
                if st.st_uid != 0:
                    raise _refuse(here, f"a symbolic link owned by {_owner(st.st_uid)}", asked)
                target = os.readlink(name, dir_fd=fd)
                todo.extendleft(reversed([p for p in target.split("/") if p]))
                if target.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", _DIR_FLAGS)
                    done = []
                continue
            try:
                new_fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise _refuse(here, exc.strerror or str(exc), asked) from None
            os.close(fd)
            fd = new_fd
            done.append(name)
            _check_dir(os.fstat(fd), here, not todo, asked)
        return SafeDir(fd, "/" + "/".join(done))
    except BaseException:
        os.close(fd)
        raise


def _make(parent: int, name: str, mode: int) -> None:
    try:
        os.mkdir(name, 0o700, dir_fd=parent)
    except FileExistsError:
        return  # made meanwhile (by root: the parent is checked); checked like any other
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def open_file(d: SafeDir, name: str, flags: int, mode: int = 0o600) -> int:
    """Open ``name`` in a checked directory (never through a symlink) and check it."""
    if "/" in name or name in ("", ".", ".."):
        raise _refuse(d.join(name), "not a plain file name")
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK, mode,
                     dir_fd=d.fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse(d.join(name), "a symbolic link") from None
        raise
    try:
        check_file(os.fstat(fd), d.join(name))
    except BaseException:
        os.close(fd)
        raise
    return fd
