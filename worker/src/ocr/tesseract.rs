//! Recognising one rendered page with the `tesseract` CLI, run as the
//! worker's own child (see `engines::child::run_bounded`): the image goes in
//! on stdin, Tesseract's TSV comes back on stdout, and the page's text and
//! mean word confidence are rebuilt from it. One call per page gives both:
//! `tesseract stdin stdout txt tsv` prints only one of them to stdout, so
//! the text is rebuilt from the TSV's words, line by line.
//!
//! Page segmentation mode 1 (automatic, with orientation and script
//! detection) reads pages turned by 90, 180 or 270 degrees in the same call;
//! mode 3, Tesseract's default, read 714 words of the upright and the
//! quarter-turned page of `ocrmypdf-cardinal.pdf` but about 185 mostly
//! wrong ones of the upside-down and three-quarter-turned ones, while mode
//! 1 read 712-714 on all four. Detecting the orientation first (`--psm 0`,
//! 2.9-6.6 s a page on a busy machine) and rotating the render would cost a
//! second Tesseract run per page for the same words; mode 1 cost about what
//! mode 3 did on upright pages (1.5 s against 1.4 s, 3.6 against 3.4, 3.9
//! against 4.7, one run each).

use std::process::Command;
use std::time::Duration;

use crate::engines::child::{self, Bounded};
use crate::panic_note;

pub const PROGRAM: &str = "tesseract";
/// Most TSV read back for one page (a dense page is some hundreds of KiB).
const TSV_CAP: usize = 16 << 20;

/// A recognised page.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognised {
    pub text: String,
    /// The mean of the words' confidences (0-100), `None` without words.
    pub confidence: Option<f32>,
}

/// The command that recognises one image given on stdin.
pub fn command(lang: &str, dpi: u32) -> Command {
    let mut cmd = Command::new(PROGRAM);
    cmd.args(["stdin", "stdout", "-l", lang, "--dpi"])
        .arg(dpi.to_string())
        .args(["--psm", "1", "tsv"])
        // One thread per worker: OpenMP's threads in every worker would
        // fight over the same cores.
        .env("OMP_THREAD_LIMIT", "1");
    cmd
}

/// Runs `cmd` (Tesseract, or a test's stand-in) on `image` for at most
/// `limit`. The error is the one-line note the failed page carries.
pub fn run(cmd: &mut Command, image: Vec<u8>, limit: Duration) -> Result<Recognised, String> {
    let ended = child::run_bounded(PROGRAM, cmd, image, TSV_CAP, limit)
        .map_err(|f| format!("OCR could not start: {}", f.reason))?;
    match ended {
        Bounded::TimedOut => Err(format!("OCR timed out after {}", seconds(limit))),
        Bounded::Ended { stdout, finished } => {
            if finished.out_of_memory() {
                return Err("OCR ran out of memory".to_string());
            }
            if !finished.status.success() {
                let why = finished.stderr.lines().last().unwrap_or("").to_string();
                let what =
                    if std::os::unix::process::ExitStatusExt::signal(&finished.status).is_some() {
                        "OCR crashed"
                    } else {
                        "OCR failed"
                    };
                let note = if why.is_empty() {
                    format!("{what} ({})", finished.describe_status())
                } else {
                    format!("{what} ({}): {why}", finished.describe_status())
                };
                return Err(panic_note::one_line(&note));
            }
            Ok(parse_tsv(&String::from_utf8_lossy(&stdout)))
        }
    }
}

/// "60s", "1.5s": a limit as people read it.
fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The text and mean word confidence in Tesseract's TSV: words joined by
/// spaces on their line, lines by newlines, a blank line between
/// paragraphs and blocks.
pub fn parse_tsv(tsv: &str) -> Recognised {
    let mut text = String::new();
    let mut last: Option<(&str, &str, &str, &str)> = None;
    let mut sum = 0.0f64;
    let mut words = 0u32;
    for row in tsv.lines().skip(1) {
        let cols: Vec<&str> = row.split('\t').collect();
        if cols.len() < 12 || cols[0] != "5" {
            continue;
        }
        let word = cols[11].trim();
        if word.is_empty() {
            continue;
        }
        let at = (cols[1], cols[2], cols[3], cols[4]);
        match last {
            None => {}
            Some(prev) if prev == at => text.push(' '),
            Some(prev) if (prev.0, prev.1, prev.2) == (at.0, at.1, at.2) => text.push('\n'),
            Some(_) => text.push_str("\n\n"),
        }
        last = Some(at);
        text.push_str(word);
        if let Ok(conf) = cols[10].parse::<f64>() {
            if conf >= 0.0 {
                sum += conf;
                words += 1;
            }
        }
    }
    Recognised {
        text,
        confidence: (words > 0).then(|| (sum / f64::from(words)) as f32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_confidence_come_from_the_words() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
            1\t1\t0\t0\t0\t0\t0\t0\t10\t10\t-1\t\n\
            4\t1\t1\t1\t1\t0\t0\t0\t10\t10\t-1\t\n\
            5\t1\t1\t1\t1\t1\t0\t0\t10\t10\t90\tstooping\n\
            5\t1\t1\t1\t1\t2\t0\t0\t10\t10\t80.5\tdown\n\
            5\t1\t1\t1\t2\t1\t0\t0\t10\t10\t70\tnext\n\
            5\t1\t1\t1\t2\t2\t0\t0\t10\t10\t-1\t \n\
            5\t1\t2\t1\t1\t1\t0\t0\t10\t10\t99.5\tblock\n";
        let r = parse_tsv(tsv);
        assert_eq!(r.text, "stooping down\nnext\n\nblock");
        assert_eq!(r.confidence, Some(85.0));
        assert_eq!(parse_tsv("level\n").confidence, None);
    }

    #[test]
    fn limits_read_as_people_write_them() {
        assert_eq!(seconds(Duration::from_secs(60)), "60s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
    }
}
