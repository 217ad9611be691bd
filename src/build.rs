//! Links the `git-coord` binary position-dependent (`-no-pie`) where the C toolchain is GNU's.
//!
//! Every command is a short-lived process, and a position-independent binary of this size
//! starts by applying some 13,000 relocations, copying every page they touch: measured, 55 page
//! faults and 200,000 instructions of each run (of 235 and 2.3 million for `task claim ID`). The
//! cost is address-space layout randomisation of the binary's own code (libraries, heap and stack
//! stay randomised). Set `GIT_COORD_PIE=1` when building to keep the default.
fn main() {
    println!("cargo:rerun-if-env-changed=GIT_COORD_PIE");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let gnu_linux = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if gnu_linux && var("GIT_COORD_PIE").is_empty() {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
