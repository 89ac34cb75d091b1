//! The `ward` command's library: what its policy commands share with
//! their tests. The command itself is `src/main.rs`.

pub mod cases;
