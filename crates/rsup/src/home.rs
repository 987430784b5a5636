//! Where rsup keeps its state: `RSUP_HOME`.
