"""Data sets that every layer may read (imports nothing of the project): ``data.mnist``."""
