//! Turns panics into one-line notes. A panic inside an engine is caught per
//! page or per job; the hook keeps its message so the failure reason can say
//! what happened, and prints one line to stderr for the supervisor's log.

use std::cell::RefCell;
use std::panic;

thread_local! {
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the hook once, at worker start.
pub fn install() {
    panic::set_hook(Box::new(|info| {
        let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-text payload".to_string()
        };
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = one_line(&format!("{msg}{at}"));
        eprintln!("docmill worker: caught panic: {line}");
        LAST.with(|l| *l.borrow_mut() = Some(line));
    }));
}

/// The message of the last panic on this thread, taken.
pub fn take() -> String {
    LAST.with(|l| l.borrow_mut().take())
        .unwrap_or_else(|| "panicked".to_string())
}

/// Collapses whitespace so a reason always fits on one line.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(300));
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.len() > 300 {
            let mut cut = 300;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push('…');
            break;
        }
    }
    out
}
