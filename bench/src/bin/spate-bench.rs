//! `spate-bench`: the Kafka-protocol load generator (also `spate bench`).
fn main() -> std::process::ExitCode {
    bench::cli::main(std::env::args_os())
}
