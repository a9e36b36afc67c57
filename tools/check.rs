//! ed-check FILE...: run parity fixtures against our implementation. Prints one line per
//! compared tensor and `N passed, M failed`; exits 1 on any failure, unknown kind or
//! unreadable file, 2 on bad usage.
use std::process::ExitCode;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() || files.iter().any(|f| f == "-h" || f == "--help") {
        eprintln!("usage: ed-check FIXTURE.safetensors...");
        return ExitCode::from(2);
    }
    let stdout = std::io::stdout();
    match edgedistill::check::check_files(&files, &mut stdout.lock()) {
        Ok(s) if s.failed == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ed-check: cannot write output: {e}");
            ExitCode::from(1)
        }
    }
}
