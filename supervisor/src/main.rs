//! The `docmill` binary: everything lives in the library.

fn main() {
    std::process::exit(docmill::cli::main());
}
