"""Two small dialogs: the onnxruntime installer (pip into the profile, live log) and diagnostics."""

from __future__ import annotations

import sys
import tempfile
from typing import Any

from qgis.PyQt.QtCore import QProcess, Qt
from qgis.PyQt.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from analog_plugin import deps, installer


class InstallDialog(QDialog):
    """Runs ``installer.install_command`` in a QProcess; the log streams into the dialog."""

    def __init__(self, profile_dir: str, parent: QWidget | None = None,
                 python: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Mars Analogue Finder: install onnxruntime")
        self.profile_dir = profile_dir
        self.python = python or installer.find_python()
        self.target = installer.deps_dir(profile_dir)
        self.constraints = installer.write_constraints(tempfile.mkdtemp(prefix="analog_pip_"))
        self.gpu = QCheckBox("GPU build (onnxruntime-gpu, needs an NVIDIA driver and CUDA)")
        self.gpu.toggled.connect(self._show_command)
        self.command = QLabel()
        self.command.setWordWrap(True)
        self.command.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.install = QPushButton("Install")
        self.install.clicked.connect(self.start)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Installs into the QGIS profile ({self.target}), never into the "
                             "system Python; numpy stays the version QGIS runs."))
        lay.addWidget(self.gpu)
        lay.addWidget(QLabel("Command (to run by hand instead, e.g. without a network "
                             "proxy problem):"))
        lay.addWidget(self.command)
        lay.addWidget(self.log, 1)
        row = QHBoxLayout()
        row.addWidget(self.install)
        row.addWidget(close)
        lay.addLayout(row)
        self.process: QProcess | None = None
        self.succeeded = False
        self._show_command()

    def cmd(self) -> list[str]:
        return installer.install_command(self.python, self.target, self.gpu.isChecked(),
                                         self.constraints)

    def _show_command(self) -> None:
        self.command.setText(installer.shell_line(self.cmd()))

    def start(self) -> None:
        self.target.mkdir(parents=True, exist_ok=True)
        cmd = self.cmd()
        self.log.appendPlainText("$ " + installer.shell_line(cmd))
        self.install.setEnabled(False)
        proc = QProcess(self)
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        proc.readyReadStandardOutput.connect(
            lambda: self.log.appendPlainText(bytes(proc.readAllStandardOutput()).decode(
                errors="replace").rstrip()))
        proc.finished.connect(self._finished)
        self.process = proc
        proc.start(cmd[0], cmd[1:])

    def _finished(self, code: int, _status: Any = None) -> None:
        deps.add_extra_paths()
        self.succeeded = code == 0 and deps.onnxruntime_available()
        self.log.appendPlainText(
            "Installed: the analogue algorithms are ready." if self.succeeded else
            f"pip exited with {code}; see the log above, or run the command by hand.")
        self.install.setEnabled(True)


class DiagnosticsDialog(QDialog):
    """The diagnostics report (core/diagnostics.py) with a Copy button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from qgis.core import Qgis

        from analog_plugin.core.diagnostics import format_report, report

        self.setWindowTitle("Mars Analogue Finder diagnostics")
        deps.add_extra_paths()
        self.text = format_report(report({"qgis": Qgis.version(),
                                          "qgis_python": sys.version.split()[0]}))
        view = QPlainTextEdit(self.text)
        view.setReadOnly(True)
        copy = QPushButton("Copy to clipboard")
        copy.clicked.connect(lambda: QApplication.clipboard().setText(self.text))
        lay = QVBoxLayout(self)
        lay.addWidget(view)
        lay.addWidget(copy)
        self.resize(700, 400)
