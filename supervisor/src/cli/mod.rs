//! The command line: parse, check every value, set up colour and logging,
//! dispatch to a command, and map what comes back to an exit code.

mod args;
mod generate;
mod location;
mod options;
mod output;
mod values;

use std::ffi::OsString;
use std::io::{self, Write};

use clap::{CommandFactory, FromArgMatches};
use docmill_protocol::{exit_codes, WORKER_SUBCOMMAND};

use crate::commands;
use crate::engines;
use crate::run;
use args::{Cli, Command, DbArg};
use location::DbChoice;

pub use location::default_db;
pub use output::HIT as HIT_STYLE;
pub use values::{MIN_WORKER_FDS, MIN_WORKER_MEM};

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == WORKER_SUBCOMMAND) {
        let Some(server) = args.get(2).and_then(|s| s.to_str()) else {
            eprintln!("docmill: the worker needs a server name");
            return exit_codes::USAGE;
        };
        return docmill_worker::run(server);
    }
    let (cli, db_from_env) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => return clap_error(&e),
    };
    output::set_color(cli.color);
    output::init_logging(cli.verbose);
    // Only the commands that print what they read end quietly on a closed
    // stdout; for `index` a broken pipe would be a real failure.
    let prints = !matches!(cli.command, Command::Index(_));
    let before = cli.db;
    if before.is_some() && !uses_index(&cli.command) {
        output::error("--db names an index, and this command reads none");
        return exit_codes::USAGE;
    }
    let db = |arg: DbArg| location::choose(arg.db, db_from_env, before.clone());
    let result = match cli.command {
        Command::Index(a) => {
            let choice = db(a.db.clone());
            match options::index_options(*a, choice.path().to_path_buf()) {
                Ok(opts) => match location::prepare_for_writing(&choice) {
                    Ok(()) => run::index(&opts),
                    Err(e) => Err(anyhow::Error::new(e).context(format!(
                        "cannot create the index's folder for {}",
                        choice.path().display()
                    ))),
                },
                Err(msg) => {
                    output::error(msg);
                    Ok(exit_codes::USAGE)
                }
            }
        }
        Command::Search(a) => {
            let request = a.request();
            reading(db(a.db), |p| {
                commands::search(p, &request, a.json, output::stdout_colored())
            })
        }
        Command::Status { db: d, json } => reading(db(d), |p| commands::status(p, json)),
        Command::Export { db: d, output, .. } => {
            reading(db(d), |p| commands::export(p, output.as_deref()))
        }
        Command::Report { db: d, run, output } => {
            reading(db(d), |p| commands::report(p, run, &output))
        }
        Command::Forget { db: d, paths } => reading(db(d), |p| commands::forget(p, &paths)),
        Command::Runs { db: d, json } => reading(db(d), |p| commands::runs(p, json)),
        Command::Serve(a) => reading(db(a.db), |p| {
            crate::serve::command(&crate::serve::ServeOptions {
                db: p.to_path_buf(),
                listen: a.listen,
                allow_remote: a.allow_remote,
            })
        }),
        Command::Engines { json } => engines::list(json),
        Command::Completions { shell } => generate::completions(shell, &mut io::stdout().lock()),
        Command::Man { subcommand } => generate::man(subcommand.as_deref(), &mut io::stdout()),
    };
    match result {
        Ok(code) => code,
        Err(e) if prints && output::is_broken_pipe(&e) => exit_codes::OK,
        Err(e) => {
            output::error(chain(e.as_ref()));
            exit_codes::USAGE
        }
    }
}

/// Parses the arguments, and tells whether a subcommand's `--db` came from
/// `DOCMILL_DB` rather than the command line (a `--db` before the
/// subcommand is explicit, so it wins over the environment).
fn parse(args: &[OsString]) -> Result<(Cli, bool), clap::Error> {
    let matches = Cli::command().try_get_matches_from(args)?;
    let from_env = match matches.subcommand() {
        Some((_, sub)) if sub.try_contains_id("db").unwrap_or(false) => {
            sub.value_source("db") == Some(clap::parser::ValueSource::EnvVariable)
        }
        _ => false,
    };
    Ok((Cli::from_arg_matches(&matches)?, from_env))
}

fn uses_index(c: &Command) -> bool {
    !matches!(
        c,
        Command::Engines { .. } | Command::Completions { .. } | Command::Man { .. }
    )
}

/// A command that reads an existing index: when the default one is missing
/// but the current folder holds one, say so instead of "no index".
fn reading(
    db: DbChoice,
    command: impl FnOnce(&std::path::Path) -> anyhow::Result<i32>,
) -> anyhow::Result<i32> {
    if let Some(hint) = location::hint_for_missing(&db) {
        output::error(hint);
        return Ok(exit_codes::USAGE);
    }
    command(db.path())
}

/// clap's own errors. A value outside its range is one line naming the flag
/// and the range, like docmill's other refusals; anything else (a missing
/// argument, an unknown flag) keeps clap's form with the usage line. Help
/// and version go to stdout and succeed.
fn clap_error(e: &clap::Error) -> i32 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !e.use_stderr() {
        // A closed stdout while printing help is the reader's choice.
        let _ = e.print();
        let _ = io::stdout().flush();
        return exit_codes::OK;
    }
    match e.kind() {
        ErrorKind::ValueValidation | ErrorKind::InvalidValue | ErrorKind::ArgumentConflict => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(valid)) => {
                    output::error(format_args!("{first}: one of {}", valid.join(", ")))
                }
                _ => output::error(first),
            }
        }
        _ => {
            let _ = e.print();
        }
    }
    exit_codes::USAGE
}

/// An error and its causes on one line: `a: b: c`.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
