"""Run one of this plugin's Processing algorithms for the panel: in the background as a QgsTask
(the map stays usable, the run can be cancelled) or synchronously (tests, scripts).

Why a class of its own: the panel chains several runs (library -> scores -> landforms / sites)
and each needs the same care. QGIS keeps raw pointers to a task's context and feedback, so Python
must not free them before the task has really ended: a cancelled task can run on for a moment.
This object owns them until then, and it is the one place that knows whether the user cancelled
(a cancelled run's callback must load nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsTask,
)

Done = Callable[[bool, dict[str, Any]], None]
"""Called once per run: (ok, the algorithm's results; empty when it failed)."""


def _ended(task: Any) -> bool:
    try:
        return task.status() in (QgsTask.TaskStatus.Complete, QgsTask.TaskStatus.Terminated)
    except RuntimeError:  # the C++ task object is already gone
        return True


class AlgorithmRunner:
    """Runs algorithms one after another; ``last_error`` is the last failure's message."""

    def __init__(self, on_progress: Callable[[float], None]) -> None:
        self.on_progress = on_progress
        self.last_error = ""
        self.cancelled = False
        self._current: list[Any] = []  # (task, context, feedback) of the run in progress
        self._alive: list[Any] = []  # every triple QGIS may still be running

    @property
    def running(self) -> bool:
        """Whether a background run was started and has not been cancelled or finished."""
        return bool(self._current)

    def start(self) -> None:
        """A new chain of runs begins (clears an earlier cancel)."""
        self.cancelled = False

    def execute(self, alg: str, params: dict[str, Any], done: Done, blocking: bool) -> None:
        """Run ``alg`` with ``params``; ``done`` is called unless the user cancels first."""
        if blocking:
            import processing
            from qgis.core import QgsProcessingException

            try:
                result = processing.run(alg, params)
            except QgsProcessingException as err:
                self.last_error = str(err)
                done(False, {})
                return
            done(True, result)
            return
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(alg)
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        feedback = QgsProcessingFeedback()
        feedback.progressChanged.connect(self.on_progress)
        task = QgsProcessingAlgRunnerTask(algorithm, params, context, feedback)

        def executed(ok: bool, res: dict[str, Any]) -> None:
            if self.cancelled:  # the user cancelled: nothing more is run or loaded
                return
            if not ok:
                log = feedback.textLog() if hasattr(feedback, "textLog") else ""
                self.last_error = log.strip().splitlines()[-1] if log.strip() else ""
            done(ok, res)

        task.executed.connect(executed)
        self._current = [(task, context, feedback)]
        self._alive = [t for t in self._alive if not _ended(t[0])] + self._current
        QgsApplication.taskManager().addTask(task)

    def cancel(self) -> None:
        """Cancel the run in progress; its callback will not fire."""
        self.cancelled = True
        for task, _ctx, feedback in self._current:
            feedback.cancel()
            task.cancel()
        self.finish()

    def finish(self) -> None:
        """The chain is over (the triples stay in ``_alive`` until QGIS has ended them)."""
        self._current = []
