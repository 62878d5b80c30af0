//! The `nexvitad` command line: a thin shell over the safe Rust API.
mod cli;

fn main() {
    std::process::exit(cli::run());
}
