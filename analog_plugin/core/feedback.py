"""Progress/cancel protocol between the core and its callers.

It mirrors the four methods of QgsProcessingFeedback that the core needs, so the QGIS glue passes
its feedback object unchanged and the core never imports qgis. The CLI uses ``ConsoleFeedback``.
"""

from __future__ import annotations

import sys
from typing import Protocol, TextIO, runtime_checkable

from .errors import AnalogCancelled


@runtime_checkable
class Feedback(Protocol):
    """What the core calls on its feedback object (QgsProcessingFeedback satisfies it)."""

    def setProgress(self, progress: float) -> None: ...  # noqa: N802 (Qt naming on purpose)

    def isCanceled(self) -> bool: ...  # noqa: N802

    def pushInfo(self, info: str) -> None: ...  # noqa: N802

    def pushWarning(self, warning: str) -> None: ...  # noqa: N802


class NullFeedback:
    """Feedback that records nothing and never cancels (the default when none is given)."""

    def setProgress(self, progress: float) -> None:  # noqa: N802
        pass

    def isCanceled(self) -> bool:  # noqa: N802
        return False

    def pushInfo(self, info: str) -> None:  # noqa: N802
        pass

    def pushWarning(self, warning: str) -> None:  # noqa: N802
        pass


class RecordingFeedback(NullFeedback):
    """Keeps every message and progress value; ``cancel_after`` cancels after that many checks.

    Used by tests and handy for scripting: ``cancel_after=0`` cancels at the first check.
    """

    def __init__(self, cancel_after: int | None = None) -> None:
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.progress: list[float] = []
        self.cancel_checks = 0
        self.cancel_after = cancel_after
        self.canceled = False

    def setProgress(self, progress: float) -> None:  # noqa: N802
        self.progress.append(float(progress))

    def isCanceled(self) -> bool:  # noqa: N802
        self.cancel_checks += 1
        if self.cancel_after is not None and self.cancel_checks > self.cancel_after:
            self.canceled = True
        return self.canceled

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.infos.append(info)

    def pushWarning(self, warning: str) -> None:  # noqa: N802
        self.warnings.append(warning)


class ConsoleFeedback(NullFeedback):
    """Prints messages and whole-percent progress to a stream (stderr); cancel via ``cancel()``."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.canceled = False
        self._last = -1

    def cancel(self) -> None:
        self.canceled = True

    def setProgress(self, progress: float) -> None:  # noqa: N802
        pct = int(progress)
        if not self.quiet and pct != self._last and pct % 10 == 0:
            print(f"  {pct:3d} %", file=self.stream, flush=True)
        self._last = pct

    def isCanceled(self) -> bool:  # noqa: N802
        return self.canceled

    def pushInfo(self, info: str) -> None:  # noqa: N802
        if not self.quiet:
            print(info, file=self.stream, flush=True)

    def pushWarning(self, warning: str) -> None:  # noqa: N802
        print(f"WARNING: {warning}", file=self.stream, flush=True)


def ensure_feedback(feedback: Feedback | None) -> Feedback:
    """The given feedback or a NullFeedback, so the core never tests for None again."""
    return feedback if feedback is not None else NullFeedback()


def check_cancelled(feedback: Feedback, what: str = "") -> None:
    """Raise AnalogCancelled when the user asked to stop (called between batches and reads)."""
    if feedback.isCanceled():
        where = f" during {what}" if what else ""
        raise AnalogCancelled(f"cancelled by the user{where}; no output was written or changed")
