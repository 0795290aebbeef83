"""`dgnn.cli.main(argv)` run in this process with stdout and stderr captured and the signal handlers it installs
restored afterwards; an exception escaping main is returned as its traceback text, so tests can assert on it."""
import contextlib
import io
import signal
import traceback
from dataclasses import dataclass

from dgnn.cli import main


@dataclass
class Result:
    rc: int | None  # None: an exception escaped main
    out: str
    err: str  # stderr, or the traceback of an escaped exception

    @property
    def lines(self) -> list[str]:
        return self.err.strip().splitlines()

    def one_line_error(self) -> str:
        """The error line of an exit 2 (asserting there is exactly one and no traceback)."""
        assert self.rc == 2, (self.rc, self.err)
        assert "Traceback" not in self.err and len(self.lines) == 1, self.err
        return self.lines[0]


def run_cli(*argv) -> Result:
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])
    except BaseException:  # noqa: BLE001 - the point is to see anything that escapes
        return Result(None, out.getvalue(), traceback.format_exc())
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    return Result(rc, out.getvalue(), err.getvalue())
