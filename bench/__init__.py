"""The benchmark (``python -m bench``, ``make bench``): our worker and its peers on the same
generated workload, on the embedded broker and PostgreSQL, in the same run."""
