//! `swarmcc`: the compiler wrapper. All logic lives in `swarmcc::client`.

fn main() {
    let code = swarmcc::client::main(std::env::args_os().collect());
    std::process::exit(code);
}
