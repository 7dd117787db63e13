//! The fanout binary: everything is in the library (`src/lib.rs`).

fn main() {
    fanout::main(std::env::args_os().collect())
}
