//! The command line: parses arguments and talks to the daemon.

pub mod logs;
pub mod render;

pub fn main() -> i32 {
    0
}
