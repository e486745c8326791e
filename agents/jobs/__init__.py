"""Jobs run by workers: the context a runner gets, the runners per kind, the job loop."""
