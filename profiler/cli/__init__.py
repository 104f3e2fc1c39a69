"""The `sessionprof` command line."""
