"""Resume warned logoffs whose countdown died with its supervisor: the hook every root
command runs first. One state read when nothing is pending; the countdown code is only
imported when something is."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .schedule import PendingLogoff


def resume_dead_countdowns(noticed_by: str) -> list[PendingLogoff]:
    """Root: :func:`~sessionctl.actions.schedule.resume_countdowns`; others: nothing.
    Returns the PendingLogoffs resumed."""
    if os.geteuid() != 0:
        return []
    from .. import state

    if not state.all_pending():
        return []
    from .schedule import resume_countdowns

    return resume_countdowns(noticed_by)
