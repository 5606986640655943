"""msg on real sshd logins: delivery, mesg n, acknowledgements, bad input."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
from lab import procs, tool_path

pytestmark = pytest.mark.real

FRAME = re.compile(rb"Message from (\S+)@\S+.*?\r?\n(?:\r?\n)+(.*?)(?:\r?\n){2}", re.S)


def msg(*argv: str, timeout: float = 60, stdin: str | None = None):
    return subprocess.run([str(tool_path("msg")), *argv], capture_output=True, text=True,
                          timeout=timeout, input=stdin)


def quiet_for(login, seconds: float = 1.0) -> str:
    """What the login showed within `seconds` (consumed)."""
    return login.read_available(seconds)


def test_message_reaches_only_the_target_session(make_user, open_login) -> None:
    alice, bob = make_user(), make_user()
    a1, a2, b = open_login(alice), open_login(alice), open_login(bob)
    for login in (a1, a2, b):
        login.read_available(0.2)
    res = msg(str(a1.audit_session_id), "/v", "deploy at 5 pm, please save")
    assert res.returncode == 0, res.stderr
    assert f"Message sent to session {a1.audit_session_id} ({alice.name}) on /dev/{a1.tty_line}" \
        in res.stdout
    m = a1.wait_output(r"Message from root@\S+(?: \(.*?\))? at .*?:\r*\n\r*\n(.*?)\r*\n", 5)
    assert m.group(1) == "deploy at 5 pm, please save"
    assert "deploy at 5 pm" not in quiet_for(a2, 0.5)
    assert "deploy at 5 pm" not in quiet_for(b, 0.5)
    # By user name: every session of that user, nobody else's.
    res = msg(alice.name, "second note")
    assert res.returncode == 0, res.stderr
    a1.wait_output("second note", 5)
    a2.wait_output("second note", 5)
    assert "second note" not in quiet_for(b, 0.5)


def test_a_users_unreadable_sessions_are_skipped_not_failures(make_user, open_login) -> None:
    """msg USER reaches every terminal of the user and exits 0; a Disc session (a nohup
    job of an ended login: no terminal) is named as skipped. It used to exit 1 with only
    "Message NOT sent to session N ... (no terminal)"."""
    user = make_user()
    gone = open_login(user)
    disc_id = gone.audit_session_id
    gone.run("nohup sleep 600 >/dev/null 2>&1 &")
    gone.logout()
    state = lambda: json.loads(msg_json("qwinsta", str(disc_id)))[0]["state"]  # noqa: E731
    procs.wait_until(lambda: state() == "Disc", 10)
    live = open_login(user)
    live.read_available(0.2)
    res = msg(user.name, "the printer is back")
    assert res.returncode == 0, res.stderr
    assert (f"Message sent to session {live.audit_session_id} ({user.name}) on "
            f"/dev/{live.tty_line}.") in res.stdout
    assert f"Session {disc_id} ({user.name}, Disc) skipped: no terminal" in res.stdout
    assert res.stderr == ""
    live.wait_output("the printer is back", 5)
    report = json.loads(msg(user.name, "--json", "again").stdout)
    assert report["skipped"] == [str(disc_id)] and report["sessions"] == [
        str(live.audit_session_id)]
    # Named by its id, the Disc session is a target: not reached, exit 1, and why.
    res = msg(str(disc_id), "hello?")
    assert res.returncode == 1 and "no terminal" in res.stderr
    # A user with nothing readable: a clear error, not a silent success.
    live.logout()
    res = msg(user.name, "anyone?")
    assert res.returncode == 1
    assert f"No session of {user.name} has a terminal or desktop" in res.stderr


def msg_json(tool: str, *argv: str) -> str:
    return subprocess.run([str(tool_path(tool)), "--json", *argv], capture_output=True,
                          text=True, timeout=60, check=True).stdout


def test_message_from_stdin_and_target_file(make_user, open_login, tmp_path) -> None:
    alice, bob = make_user(), make_user()
    a, b = open_login(alice), open_login(bob)
    targets = tmp_path / "targets"
    targets.write_text(f"# who gets it\n{alice.name}\n\n{b.audit_session_id}\n")
    res = msg(f"@{targets}", stdin="line one\nline two\n")
    assert res.returncode == 0, res.stderr
    for login in (a, b):
        login.wait_output(r"line one\r*\nline two", 5)


def test_escape_sequences_arrive_inert_on_a_real_terminal(make_user, open_login) -> None:
    user = make_user()
    login = open_login(user)
    login.read_available(0.3)
    start = len(login.raw)
    nasty = ("A\x1b]0;owned\x07B\x1b[2J\x1b[31mC\x9b2JD\x1b]52;c;ZXZpbA==\x07E\rF\x08G"
             "\u202eH\x00I\x1bPdcs\x1b\\J\u0085K")
    res = msg(str(login.audit_session_id), stdin=nasty)  # stdin: argv cannot hold NUL
    assert res.returncode == 0, res.stderr
    login.wait_output("ABCDE", 5)
    time.sleep(0.3)
    login.read_available(0.2)
    shown = bytes(login.raw[start:])
    frame = shown[shown.index(b"Message from"):]
    frame = frame[: frame.index(b"K") + 1]
    assert b"\x1b" not in frame and b"\x07" not in frame and b"\x08" not in frame
    text = frame.decode("utf-8")  # valid UTF-8
    assert not any(0x80 <= ord(c) <= 0x9F for c in text)
    assert "\u202e" not in text and "\x00" not in text
    assert re.search(r"ABCDE\r*\nFGHIJK", text), text  # bare CR: a line break, NEL dropped


def test_mesg_n_respected_for_other_users_not_for_root(make_user, open_login) -> None:
    sender, recipient = make_user(), make_user()
    subprocess.run(["usermod", "-aG", "tty", sender.name], check=True)  # as write(1) needs
    s, r = open_login(sender), open_login(recipient)
    r.run("mesg n")
    r.read_available(0.2)
    tool = tool_path("msg")
    status, out = s.run_status(f"{tool} {recipient.name} 'hello from a peer'")
    assert status == 1
    assert "messages disabled (mesg n)" in out
    assert "hello from a peer" not in quiet_for(r, 0.8)
    r.run("mesg y")
    status, out = s.run_status(f"{tool} {recipient.name} 'now it may pass'")
    assert status == 0, out
    r.wait_output("now it may pass", 5)
    r.run("mesg n")
    res = msg(recipient.name, "root passes mesg n")
    assert res.returncode == 0, res.stderr
    r.wait_output("root passes mesg n", 5)


def test_wait_reports_acknowledgement_made_in_the_target_session(make_user, open_login) -> None:
    user, other = make_user(), make_user()
    target, bystander = open_login(user), open_login(other)
    proc = subprocess.Popen(
        [str(tool_path("msg")), str(target.audit_session_id), "/w", "/time:30",
         "please confirm you saved"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        token = target.wait_output(r"sessionctl ack ([0-9a-f]+)", 10).group(1)
        # Someone outside the target session cannot answer for it.
        status, out = bystander.run_status(f"{tool_path('sessionctl')} ack {token}")
        assert status == 1 and "refused" in out
        assert proc.poll() is None
        status, out = target.run_status(f"{tool_path('sessionctl')} ack {token}")
        assert status == 0 and "Acknowledged" in out, out
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert f"acknowledged by {user.name}" in stdout


def test_wait_without_answer_times_out(make_user, open_login) -> None:
    login = open_login(make_user())
    t0 = time.monotonic()
    res = msg(str(login.audit_session_id), "/w", "/time:2", "--json", "nobody answers")
    took = time.monotonic() - t0
    assert res.returncode == 1
    report = json.loads(res.stdout)
    assert report["acknowledged"] is False and report["deliveries"][0]["status"] == "delivered"
    assert 1.9 <= took < 10


@pytest.mark.parametrize(
    ("argv", "stdin", "error"),
    [
        (["nosuchuser-zz", "hi"], None, "No session exists for nosuchuser-zz"),
        (["@/nonexistent/targets", "hi"], None, "cannot read target file"),
        (["{target}", ""], None, "the message is empty"),
        (["{target}"], "\x1b[2J\x1b]0;t\x07\n", "the message is empty"),
        (["{target}", "x" * 5000], None, "too long"),
        (["{target}", "/time:-5", "/w", "hi"], None, "Invalid parameter"),
        (["{target}", "/time:abc", "/w", "hi"], None, "Invalid parameter"),
        (["{target}", "/bogus", "hi"], None, "Invalid parameter"),
    ],
)
def test_bad_input_sends_nothing(make_user, open_login, argv, stdin, error) -> None:
    login = open_login(make_user())
    login.read_available(0.2)
    target = str(login.audit_session_id)
    res = msg(*[a.replace("{target}", target) for a in argv], stdin=stdin)
    assert res.returncode == 1
    assert error in res.stderr
    assert "Message from" not in quiet_for(login, 0.5)
