use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(git_coord::cli::main())
}
