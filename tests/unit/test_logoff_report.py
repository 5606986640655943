"""How a sign-out that left processes behind is reported (pure; the real cases are in
tests/real/test_adversarial_real.py)."""

from __future__ import annotations

from sessionctl.actions.logoff import LogoffResult
from sessionctl.actions.reports import Leftover
from sessionctl.cli.fleet_logoff import item_line
from sessionctl.model import Session, State


def test_incomplete_result_names_each_process_left() -> None:
    session = Session(id="7", name="pts/1", user="alice", uid=1000, state=State.ACTIVE,
                      type="ssh")
    left = [Leftover(4242, "sleep", 0, "root", "not permitted to signal it: it runs as root "
                     "(uid 0)")]
    result = LogoffResult(session, "incomplete", remaining=[4242], not_permitted=[4242],
                          left=left)
    data = result.to_dict()
    assert not result.ok and data["outcome"] == "incomplete"
    assert data["left"] == [{"pid": 4242, "comm": "sleep", "uid": 0, "user": "root",
                             "reason": left[0].reason}]
    line = item_line("web01", data, 5)
    assert "incomplete" in line and "4242 (sleep, root): not permitted to signal it" in line
