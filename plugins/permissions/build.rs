//! The builtin policy needs little stack: no recursion, and everything of
//! size on the heap. A 64 KiB stack (the toolchain's default is 1 MiB)
//! makes its linear memory 128 KiB instead of 1,088 KiB, so each fresh
//! instance has less memory to map and reset. A Rust wasm stack sits
//! below the data, so an overflow traps instead of corrupting memory.
//! `permissions_policy_decides_for_an_agent_at_the_registry_limits`
//! decides at the registry's limits with it (and did so with as little as
//! 4 KiB when tried, so 64 KiB leaves a wide margin).
fn main() {
    println!("cargo:rustc-link-arg=-zstack-size=65536");
}
