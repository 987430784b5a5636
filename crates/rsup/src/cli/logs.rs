//! `rsup logs`: printing and following instances' log files.
