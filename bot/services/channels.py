"""What the rules need to know about a channel: only whether it shows buttons.

On Telegram a choice is a button press, so a typed "5" in the details step is a detail (a house
number). Zalo has no buttons: choices are numbered lines and a typed number is the choice.
"""

from __future__ import annotations

BUTTONLESS = frozenset({"zalo_oa", "zalo_bot"})


def has_buttons(channel: str) -> bool:
    """Whether the channel shows choices as buttons (else as numbered lines)."""
    return channel not in BUTTONLESS
