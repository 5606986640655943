"""Parse qwinsta/quser output by the fixed Windows column offsets (as scripts do)."""

from __future__ import annotations

QWINSTA = {"marker": (0, 1), "name": (1, 19), "user": (19, 39), "id": (39, 46),
           "state": (48, 56), "type": (56, 68), "device": (68, None)}
QUSER = {"marker": (0, 1), "user": (1, 23), "name": (23, 42), "id": (42, 44),
         "state": (46, 54), "idle": (54, 63), "logon": (65, None)}


def _cut(line: str, cols: dict[str, tuple[int, int | None]]) -> dict[str, str]:
    return {k: line[a:b].strip() for k, (a, b) in cols.items()}


def parse_qwinsta(text: str) -> list[dict[str, str]]:
    """Rows of `qwinsta` output; asserts the header is exactly Windows'."""
    lines = text.rstrip("\n").split("\n")
    assert lines[0].startswith(
        " SESSIONNAME       USERNAME                 ID  STATE   TYPE        DEVICE"), lines[0]
    rows = []
    for line in lines[1:]:
        assert line[0] in " >", line
        # the id ends exactly at column 45 and the state starts at 48
        assert line[45] != " " and (len(line) == 46 or line[46:48] == "  "), line
        row = _cut(line, QWINSTA)
        # ids longer than the field grow leftwards into USERNAME: read them whole
        id_start = line.rfind(" ", 0, 46) + 1
        row["id"] = line[id_start:46]
        row["user"] = line[19 : min(39, id_start)].strip()
        rows.append(row)
    return rows


def parse_quser(text: str) -> list[dict[str, str]]:
    """Rows of `quser` output; asserts the header is exactly Windows'."""
    lines = text.rstrip("\n").split("\n")
    assert lines[0] == (
        " USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME"), lines[0]
    rows = []
    for line in lines[1:]:
        assert line[0] in " >", line
        assert line[43] != " " and line[44:46] == "  ", line
        assert line[62] != " " and line[63:65] == "  ", line
        row = _cut(line, QUSER)
        id_start = line.rfind(" ", 0, 44) + 1
        row["id"] = line[id_start:44]
        row["name"] = line[23 : min(42, id_start)].strip()
        rows.append(row)
    return rows
