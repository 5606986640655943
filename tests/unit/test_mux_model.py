"""Multiplexers in the session model on a recorded-style /proc: panes are no logins, ids
are unique, each process is counted once, and p<pid> members are found among candidates."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_procfs_recorded import ROOT_UID, P, fake_proc, pwd_name, utmp_file

from sessionctl.backends.multiplexers import Draft, assemble
from sessionctl.backends.procfs import ProcfsBackend
from sessionctl.linux import mux, proc
from sessionctl.model import Session, State
from sessionctl.policy import config, engine
from sessionctl.tui.rows import build
from sessionctl.usage_model import ProcessUsage, SessionUsage, UsageSnapshot, group_by_user


def backend(tmp_path: Path, procs: list[P], rows: list[tuple[int, str, str, str]]):
    root = fake_proc(tmp_path / "proc", procs)
    return ProcfsBackend(proc_root=root, utmp_path=utmp_file(tmp_path / "utmp", rows),
                         wtmp_path=str(tmp_path / "wtmp"))


def test_utmp_hosts() -> None:
    assert mux.utmp_kind("tmux(13698).%0") == ("tmux", 13698)
    assert mux.utmp_kind(":pts/4:S.0") == ("screen", None)
    assert mux.utmp_kind("host.example:S.12") == ("screen", None)
    for real in ("10.1.1.1", "tmux.example.org", "", ":0", "tmux(12).%x"):
        assert mux.utmp_kind(real) is None


def test_tmux_of_an_ended_login_is_disc_and_its_panes_no_logins(tmp_path: Path) -> None:
    me = pwd_name()
    procs = [P(1, 0, comm="init"), P(100, 1, comm="sshd"),
             # audit 5: the login ended; its tmux server (ppid 1) and a pane's shell remain
             P(300, 1, 5, ROOT_UID, "tmux: server"), P(301, 300, 5, ROOT_UID, "bash"),
             P(302, 301, 5, ROOT_UID, "vim"),
             # audit 6: a live ssh login of the same user
             P(400, 100, 6, ROOT_UID, "sshd"), P(401, 400, 6, ROOT_UID, "bash")]
    be = backend(tmp_path, procs, [(300, "pts/21", me, "tmux(300).%0"),
                                   (300, "pts/22", me, "tmux(300).%1"),
                                   (400, "pts/3", me, "10.0.0.1")])
    by_id = {s.id: s for s in be.sessions()}
    assert set(by_id) == {"5", "6"}
    disc = by_id["5"]
    assert disc.state is State.DISC and disc.name == "" and disc.pids == [300, 301, 302]
    (m,) = disc.multiplexers
    assert (m.kind, m.pid, m.attached) == ("tmux", 300, False)
    assert by_id["6"].state is State.ACTIVE and by_id["6"].name == "pts/3"


def test_root_tmux_without_audit_id_is_one_session(tmp_path: Path) -> None:
    """Every pane named p<server> once made four rows with one id; now one session."""
    me = pwd_name()
    procs = [P(1, 0, comm="init"), P(100, 1, comm="sshd"),
             P(531, 1, comm="tmux: server"),
             P(532, 531, comm="bash"), P(533, 531, comm="bash"), P(534, 531, comm="ssh"),
             P(535, 533, comm="top"),
             # an ssh login made from a pane: its own audit id, its own session
             P(600, 100, 9, ROOT_UID, "sshd"), P(601, 600, 9, ROOT_UID, "bash")]
    rows = [(531, f"pts/{n}", me, f"tmux(531).%{n}") for n in range(4)]
    be = backend(tmp_path, procs, [*rows, (600, "pts/9", me, "127.0.0.1")])
    found = be.sessions()
    ids = [s.id for s in found]
    assert sorted(ids) == ["9", "p531"]
    tm = next(s for s in found if s.id == "p531")
    assert tm.pids == [531, 532, 533, 534, 535] and tm.state is State.DISC
    assert tm.type == "tmux" and tm.multiplexers[0].pid == 531
    pids = [p for s in found for p in s.pids]
    assert len(pids) == len(set(pids))
    # the table listing leaves the process lists of p-sessions out, nothing else
    over = {s.id: s for s in be.overview()}
    assert over["p531"].pids == [] and over["9"].pids == [600, 601]
    assert over["p531"].state is State.DISC


def test_stale_pane_records_and_recycled_pids_are_ignored(tmp_path: Path) -> None:
    me = pwd_name()
    now = time.time()
    procs = [P(1, 0, comm="init"),
             P(700, 1, comm="sleep"),  # a PID a dead tmux server once had
             P(800, 1, 5, ROOT_UID, "sleep")]
    root = fake_proc(tmp_path / "proc", procs)
    Path(root, "stat").write_text(f"cpu 1 2 3\nbtime {int(now) - 100}\n")  # started ~now
    be = ProcfsBackend(proc_root=root, utmp_path=utmp_file(tmp_path / "utmp", [
        (700, "pts/1", me, "tmux(700).%0"),  # not a tmux server any more
        (999, "pts/2", me, "tmux(999).%0"),  # gone
        (800, "pts/3", me, "10.0.0.1"),  # its process started after the record (recycled)
    ]))
    found = be.sessions()
    assert [s.id for s in found] == ["5"]
    assert found[0].name == "" and found[0].state is State.DISC


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    reads: dict[int, int] = {}
    real = proc.stat

    def counting(pid: int, proc_root: str = proc.PROC):
        reads[pid] = reads.get(pid, 0) + 1
        return real(pid, proc_root)

    monkeypatch.setattr(proc, "stat", counting)
    return reads


def test_no_audit_members_read_only_candidates(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A p<pid> login's members come from processes sharing its (missing) audit id: those
    with an id are never read for it, and the table listing reads none of them."""
    me = pwd_name()
    farm = [P(2000 + i, 1, comm="sleeper") for i in range(50)]  # unrelated, no audit id
    audited = [P(3000 + i, 1, 7, ROOT_UID, "job") for i in range(50)]
    procs = [P(1, 0, comm="init"), P(100, 1, comm="sshd"), P(600, 100, comm="login"),
             P(601, 600, comm="bash"), *farm, *audited]
    be = backend(tmp_path, procs, [(600, "pts/9", me, "")])
    reads = _count_reads(monkeypatch)
    over = {s.id: s for s in be.overview()}
    assert over["p600"].pids == [] and over["p600"].state is State.ACTIVE
    assert not any(p.pid in reads for p in farm)
    reads.clear()
    full = {s.id: s for s in be.sessions()}
    assert full["p600"].pids == [600, 601]
    assert all(reads.get(p.pid, 0) <= 1 for p in farm)  # read once, for the tree
    assert all(reads.get(p.pid, 0) <= 1 for p in audited)  # read once, for session 7 only


def _session(sid: str, state: State, ttys: tuple[str, ...] = ()) -> Session:
    return Session(sid, ttys[0] if ttys else "", "ann", 1000, state, "ssh", ttys=ttys,
                   idle_seconds=500.0 if ttys else None)


def test_attached_from_another_session_makes_it_active(tmp_path: Path) -> None:
    a = _session("5", State.DISC)
    b = _session("6", State.ACTIVE, ("pts/9",))
    view = mux.ServerView("tmux", 300, 1000, 1, "/tmp/tmux-1000/default", ("pts/21",),
                          ("pts/9",), 0, True, True)
    out = {s.id: s for s in assemble([Draft(a, False, [view]), Draft(b, True)])}
    assert out["5"].state is State.ACTIVE and out["5"].attached_from == ("6",)
    (client,) = out["5"].multiplexers[0].clients
    assert client.session_id == "6" and client.tty == "pts/9"
    detached = mux.ServerView("tmux", 300, 1000, 1, "", ("pts/21",), (), 0, False, True)
    out = {s.id: s for s in assemble([Draft(a, False, [detached]), Draft(b, True)])}
    assert out["5"].state is State.DISC and out["5"].attached_from == ()


def test_policy_on_limit_disconnect() -> None:
    text = '[[rule]]\nname = "cut"\nidle_limit = "1h"\non_limit = "disconnect"\n'
    pol = config.parse(text)
    assert pol.rules[0].on_limit == "disconnect"
    for bad, why in (('on_limit = "nap"', "on_limit must be one of"),):
        with pytest.raises(config.ConfigError, match=why):
            config.parse(text.replace('on_limit = "disconnect"', bad))
    with pytest.raises(config.ConfigError, match="does not go with disc_limit"):
        config.parse('[[rule]]\nname = "x"\ndisc_limit = "1h"\non_limit = "disconnect"\n')
    from sessionctl.model import Multiplexer

    idle = Session("5", "pts/1", "ann", 1000, State.ACTIVE, "ssh", idle_seconds=4000.0,
                   multiplexers=(Multiplexer("tmux", 300),))
    plain = Session("6", "pts/2", "ann", 1000, State.ACTIVE, "ssh", idle_seconds=4000.0)
    soon = Session("7", "pts/3", "ann", 1000, State.ACTIVE, "ssh", idle_seconds=10.0,
                   multiplexers=(Multiplexer("tmux", 301),))
    got = {d.session.id: d.action for d in engine.decide(
        pol, [idle, plain, soon], time.time(), {}, {}, lambda p: True, lambda u: set())}
    assert got == {"5": "disconnect", "6": "warn", "7": "wait"}


def test_top_rows_never_repeat_a_key() -> None:
    s = Session("p531", "", "root", 0, State.DISC, "tmux")
    p = ProcessUsage(531, 1, "tmux: server", "S", 0.0, 1, None, None, None)
    twice = [SessionUsage(s, (p,)), SessionUsage(s, (p,))]  # a snapshot that repeats
    snap = UsageSnapshot(0.0, 1.0, group_by_user(twice))
    rows = build(snap, {"u:root", "s:p531"})
    keys = [r.key for r in rows]
    assert len(keys) == len(set(keys)) == 5


class _Fixed(ProcfsBackend):
    """A backend that lists given sessions (and never looks at the machine)."""

    def __init__(self, sessions: list[Session]) -> None:
        super().__init__()
        self.fixed = sessions

    def sessions(self) -> list[Session]:
        return list(self.fixed)


def test_disconnect_refuses_before_touching_anything(tmp_path: Path) -> None:
    from sessionctl.actions.disconnect import disconnect
    from sessionctl.errors import AccessDenied, InvalidArgument, NoSuchSession, NotPossible
    from sessionctl.model import Multiplexer

    tm = (Multiplexer("tmux", 300),)
    a = Session("5", "pts/1", "ann", 1000, State.ACTIVE, "ssh", ttys=("pts/1",))
    b = Session("6", "pts/1", "bob", 1001, State.ACTIVE, "ssh", ttys=("pts/1",),
                multiplexers=tm)
    disc = Session("7", "", "ann", 1000, State.DISC, "unspecified", multiplexers=tm)
    con = Session("8", "tty3", "ann", 1000, State.ACTIVE, "tty", console=True,
                  multiplexers=tm)
    be = _Fixed([a, b, disc, con])
    log = tmp_path / "audit.jsonl"
    cases = [("pts/1", InvalidArgument, "ambiguous"), ("99", NoSuchSession, "No session"),
             ("5", NotPossible, "nothing that would keep running"),
             ("7", NotPossible, "already disconnected"), ("8", NotPossible, "console"),
             ("6", AccessDenied, "only root may disconnect")]
    for target, error, text in cases:
        with pytest.raises(error, match=text):
            disconnect(target, backend=be, audit_log=log, caller_uid=1000 if target == "6"
                       else 0)
    refused = [line for line in log.read_text().splitlines() if '"refused"' in line]
    assert len(refused) == 4  # the ones a session was found for


def test_attached_guess_for_servers_we_cannot_read() -> None:
    """Not root: another user's tmux counts as attached when a client is connected to
    that user's only tmux socket (/proc/net/unix), and is unknown when that is unclear."""
    one = mux.ServerView("tmux", 300, 1001, 1)  # unreadable (readable=False)
    sockets = [(1, 1, "/tmp/tmux-1001/default"), (2, 3, "/tmp/tmux-1001/default"),
               (3, 1, "/tmp/tmux-1002/default"), (4, 1, "/tmp/tmux-1002/other")]
    assert mux.guess_attached([one], sockets) == {300: True}
    assert mux.guess_attached([one], sockets[:1]) == {300: False}
    two = mux.ServerView("tmux", 400, 1002, 1)
    assert mux.guess_attached([two], sockets) == {}  # two sockets: cannot tell which
    read = mux.ServerView("tmux", 500, 1001, 1, readable=True)
    assert mux.guess_attached([read], sockets) == {}


def test_fleet_disconnect_answers_fit_their_schema() -> None:
    from sessionctl.actions.reports import DisconnectResult
    from sessionctl.fleet.records import BadRecord, check_result, session_from_dict
    from sessionctl.model import Multiplexer, MuxClient

    s = Session("5", "pts/1", "ann", 1000, State.ACTIVE, "ssh", multiplexers=(
        Multiplexer("tmux", 300, "/tmp/tmux-1000/default", True,
                    (MuxClient(None, "pts/9", "ann", "6", 1.0),), ("pts/2",)),))
    done = DisconnectResult(s, "disconnected", connections=[10], kept=[300], state="Disc",
                            steps=["SIGTERM to sshd 10"]).to_dict()
    answer = [done, {"session": "7", "user": "ann", "name": "", "outcome": "refused",
                     "error": "nothing that would keep running"},
              {"session": s.to_dict(), "outcome": "would-disconnect"}]
    assert check_result("disconnect", answer) is answer
    back = session_from_dict(s.to_dict())
    assert back.multiplexers == s.multiplexers
    with pytest.raises(BadRecord):
        check_result("disconnect", [{**done, "kept": [-1]}])
