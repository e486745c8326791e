"""The ``energy-processing`` command line: its parser, exit codes and one handler per command.

``service.cli.main`` parses, loads the settings and dispatches to a handler here.
"""

from __future__ import annotations
