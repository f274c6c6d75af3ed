"""A server process a test starts, its output in a log file: stopped by signal, killed, read."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path


class LoggedProcess:
    """What a process wrapper shares: ``proc`` (None until started) and ``log_path`` set by it."""

    proc: subprocess.Popen[bytes] | None
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait; kill it if it is still running after ``timeout``. Its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def kill(self) -> int:
        return self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
