"""Progress with ETA on stderr (tqdm), shown only for runs longer than a couple of seconds; silent when disabled."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm


class Progress:
    def __init__(self, total: int, initial: int = 0, enabled: bool = True, unit: str = "it", desc: str = ""):
        self.bar = (
            tqdm(total=total, initial=initial, unit=unit, desc=desc, file=sys.stderr, delay=2.0, dynamic_ncols=True,
                 leave=True)
            if enabled
            else None
        )

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
