//! The sample service's binary; see the library for its settings.

fn main() -> std::process::ExitCode {
    sample_service::main_with_args(std::env::args().skip(1))
}
