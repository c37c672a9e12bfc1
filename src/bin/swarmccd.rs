//! `swarmccd`: the distccd-compatible compile server. All logic is in
//! `swarmcc::server`; this only hands over the arguments and the exit code.

fn main() {
    std::process::exit(swarmcc::server::main(std::env::args_os()));
}
