//! What every example does on start and on exit.

/// Shows the library's progress and notices (`tracing` events) on stderr.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}

/// The exit status for `result`; an error is printed with its message (`Display`), not its
/// debug form.
pub fn exit(result: Result<(), Box<dyn std::error::Error>>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A progress bar on stderr: position, rate, time left and a message.
#[allow(dead_code)] // not every example has a long loop
pub fn bar(len: usize, prefix: &'static str) -> indicatif::ProgressBar {
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:32}] {pos}/{len} {per_sec} eta {eta} {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    indicatif::ProgressBar::new(len as u64)
        .with_style(style)
        .with_prefix(prefix)
}
