"""Embedded servers for ``make run`` and tests: started as child processes on local ports."""
