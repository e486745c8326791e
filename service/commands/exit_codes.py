"""The exit codes of ``energy-processing``.

0 success, 1 runtime failure, 2 usage or configuration error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
