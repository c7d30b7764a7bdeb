//! The `strata` command: a thin shell over the library.

mod cli;

fn main() {
    // SIGINT or SIGTERM outside a sandbox: remove the temp files of blobs
    // being written, then exit 130.
    strata::cleanup::install();
    if let Err(e) = cli::run() {
        // Output piped into a reader that stopped (`strata ls IMG | head`):
        // end quietly, as tools killed by SIGPIPE do (status 128 + 13).
        // Only an unwrapped write error is stdout's own; broken pipes to
        // child processes carry strata's context and are reported.
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            std::process::exit(141);
        }
        eprintln!("error: {}", message(&e));
        // Stopped by a signal, after cleaning up: 128 + SIGINT, as shells report.
        if matches!(
            e.downcast_ref::<strata::Error>(),
            Some(strata::Error::Interrupted { .. })
        ) {
            std::process::exit(130);
        }
        std::process::exit(1);
    }
}

/// The error and its causes, each cause once: a cause whose text the
/// message already holds (typed errors quote their source) is not repeated.
fn message(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        let t = cause.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
    }
    s
}
