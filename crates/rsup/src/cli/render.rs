//! Human-readable output: the process table and `describe`.
