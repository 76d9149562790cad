"""What the browser tests share besides fixtures."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field


@dataclass
class DemoProcess:
    """A running `tinbao demo`: its page URL, how long it took to be ready, its output."""

    process: subprocess.Popen[str]
    url: str = ""
    ready_seconds: float = 0.0
    output: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        """The emulator's root URL (control API and page share it)."""
        return self.url.removesuffix("/web/")
