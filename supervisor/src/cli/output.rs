//! How docmill writes to the terminal: whether colour is on (`--color`,
//! `NO_COLOR`, `CLICOLOR_FORCE`, and whether the stream is a terminal, as
//! `anstream` decides), the log level, error lines, and a closed pipe.

use std::fmt::Display;
use std::io::{self, Write};

use anstream::ColorChoice;
use anstyle::{AnsiColor, Style};

use super::args::ColorWhen;

/// Hits in search snippets.
pub const HIT: Style = AnsiColor::Red.on_default().bold();
/// The `docmill:` before an error.
const ERROR_PREFIX: Style = AnsiColor::Red.on_default().bold();

/// Makes `--color` the choice for every stream `anstream` writes. `auto`
/// leaves the decision to `anstream`, which reads `NO_COLOR`,
/// `CLICOLOR_FORCE` and `CLICOLOR` and asks whether the stream is a
/// terminal.
pub fn set_color(when: ColorWhen) {
    let choice = match when {
        ColorWhen::Auto => ColorChoice::Auto,
        ColorWhen::Always => ColorChoice::Always,
        ColorWhen::Never => ColorChoice::Never,
    };
    choice.write_global();
}

/// Whether text written to stdout should carry colour.
pub fn stdout_colored() -> bool {
    anstream::AutoStream::choice(&io::stdout()) != ColorChoice::Never
}

/// Whether text written to stderr should carry colour.
pub fn stderr_colored() -> bool {
    anstream::AutoStream::choice(&io::stderr()) != ColorChoice::Never
}

/// Logs go to stderr through `tracing`: warnings by default, more with each
/// `-v`, or whatever `RUST_LOG` says when no `-v` is given.
pub fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match verbose {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        1 => EnvFilter::new("warn,docmill=info"),
        2 => EnvFilter::new("info,docmill=debug"),
        _ => EnvFilter::new("debug,docmill=trace"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(stderr_colored())
        .init();
}

/// One error line on stderr: `docmill: …`, the prefix in colour where
/// colour is on.
pub fn error(msg: impl Display) {
    let mut err = anstream::stderr().lock();
    let _ = writeln!(
        err,
        "{}docmill:{} {msg}",
        ERROR_PREFIX.render(),
        ERROR_PREFIX.render_reset()
    );
}

/// Whether an error is stdout's reader having gone away (`docmill export |
/// head -1`): the reader has what it wanted, so that ends the command
/// quietly and successfully, as it would for `cat`. docmill keeps SIGPIPE
/// ignored (Rust's default) rather than restoring its default action, so
/// that a write to a closed pipe is an error each command can end on
/// cleanly, and so that `index`, which talks to its workers over sockets,
/// is never killed by a worker that died mid-message.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
