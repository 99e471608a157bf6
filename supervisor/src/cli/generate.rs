//! What is generated from the clap definitions rather than written by hand:
//! shell completions, the manual pages, and the long `--version` text.

use std::io::Write;
use std::sync::OnceLock;

use clap::CommandFactory;
use docmill_protocol::exit_codes;

use super::args::Cli;

/// `docmill completions SHELL`: the script on stdout.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> anyhow::Result<i32> {
    let mut cmd = Cli::command();
    // Written whole afterwards: the generator panics on a failed write,
    // and a closed pipe is an ordinary end here.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "docmill", &mut script);
    out.write_all(&script)?;
    out.flush()?;
    Ok(exit_codes::OK)
}

/// `docmill man [SUBCOMMAND]`: docmill(1), or docmill-SUBCOMMAND(1) with
/// that subcommand's flags, as roff on stdout.
pub fn man(subcommand: Option<&str>, out: &mut dyn Write) -> anyhow::Result<i32> {
    let mut cmd = Cli::command();
    cmd.build();
    let page = match subcommand {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => {
                // One page per process: the name may as well live forever.
                let name: &'static str = format!("docmill-{}", sub.get_name()).leak();
                sub.clone().name(name).display_name(name)
            }
            None => {
                let known: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
                eprintln!(
                    "docmill: no subcommand {name:?}: the pages are {}",
                    known.join(", ")
                );
                return Ok(exit_codes::USAGE);
            }
        },
    };
    clap_mangen::Man::new(page).render(out)?;
    out.flush()?;
    Ok(exit_codes::OK)
}

/// `docmill --version`: the version, then what this build can extract with.
/// The compiled-in engines are fixed at build time; the external ones
/// depend on the machine, so `docmill engines` is named for those.
pub fn long_version() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let inproc = match docmill_worker::engines::MUPDF_INPROC_VERSION {
            Some(v) => format!("mupdf-inproc ({v})"),
            None => "not mupdf-inproc (build with --features mupdf-inproc)".to_string(),
        };
        format!(
            "{}\n\
             features: {}\n\
             built-in engines: builtin (pdf-extract), lopdf, epub; {inproc}\n\
             external engines, used when installed: mupdf (mutool), poppler (pdftotext, pdfinfo); \
             `docmill engines` shows which are\n\
             stores: SQLite (bundled {}), PostgreSQL 12 or newer (postgres://)\n\
             catalog schema: {} (SQLite), {} (PostgreSQL)",
            env!("CARGO_PKG_VERSION"),
            features(),
            rusqlite::version(),
            crate::store::SQLITE_SCHEMA_VERSION,
            crate::store::PG_SCHEMA_VERSION,
        )
    })
}

fn features() -> &'static str {
    if cfg!(feature = "mupdf-inproc") {
        "mupdf-inproc"
    } else {
        "none"
    }
}
