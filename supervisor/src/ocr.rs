//! The OCR engine this machine has (the `tesseract` command, its version
//! and its language data), and how `--ocr`, `--ocr-lang`, `--ocr-dpi` and
//! `--ocr-page-timeout` become the run's OCR settings: what text jobs are
//! told, and whether the run recognises the pages they flag.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docmill_protocol::{OcrMode, OcrSettings};
use serde::Serialize;

/// The default `--ocr-page-timeout`. Tesseract 5.3 on one thread
/// (`OMP_THREAD_LIMIT=1`), on the sample corpus's 22 scanned pages rendered
/// at 300 dpi by `mutool draw`, took 10.8 s at most
/// (`pdfjs-issue7229-scanned-form.pdf`, page 1; the next slowest 8.4 s) on
/// a two-core machine under a load of 6. A minute is
/// over five times the slowest, for a busier machine or a denser page; a
/// page that takes longer costs only itself.
pub const OCR_PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// `--ocr-dpi` bounds: under 70 dpi Tesseract reads little of ordinary
/// print; over 1200 a page's render outgrows any sensible pixel cap.
pub const MIN_DPI: u32 = 70;
pub const MAX_DPI: u32 = 1200;

/// Renders over this many pixels are scaled down (40 megapixels: an A4
/// page at 600 dpi is 35).
pub const MAX_PIXELS: u64 = 40_000_000;

/// `--ocr`: what the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OcrFlag {
    /// Recognise pages without a usable text layer, when tesseract is
    /// installed.
    Auto,
    /// Never recognise.
    Off,
    /// Recognise every page of every PDF.
    Force,
}

/// The `tesseract` found on PATH, or why none was.
#[derive(Clone, Debug, Serialize)]
pub struct OcrEngine {
    pub name: &'static str,
    pub available: bool,
    pub path: Option<PathBuf>,
    pub version: Option<String>,
    /// Installed language data, as `--list-langs` names them.
    pub languages: Vec<String>,
    pub missing: Option<String>,
}

impl OcrEngine {
    /// Not looked for (`--ocr off`).
    pub fn none() -> OcrEngine {
        OcrEngine {
            name: "tesseract",
            available: false,
            path: None,
            version: None,
            languages: Vec::new(),
            missing: Some("not looked for (--ocr off)".to_string()),
        }
    }
}

/// What the run does about pages without a text layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunOcr {
    /// Sent with every PDF job. Text jobs are told at least `Auto` even when
    /// the run does not recognise, so that pages without a text layer are
    /// flagged and reported rather than silently empty.
    pub settings: OcrSettings,
    /// Whether flagged pages are recognised (from the cache, or by OCR
    /// jobs).
    pub recognise: bool,
}

impl RunOcr {
    /// A run that recognises nothing (tests, and `--ocr off`).
    pub fn off() -> RunOcr {
        RunOcr {
            settings: OcrSettings {
                mode: OcrMode::Auto,
                ..OcrSettings::default()
            },
            recognise: false,
        }
    }

    /// The key OCR text is cached under besides the file and page: what
    /// changes the recognised text (languages and resolution), not the mode
    /// or the deadline.
    pub fn settings_key(&self) -> String {
        settings_key(&self.settings)
    }
}

/// See `RunOcr::settings_key`.
pub fn settings_key(s: &OcrSettings) -> String {
    format!(
        "tesseract;lang={};dpi={};max_pixels={}",
        s.lang, s.dpi, s.max_pixels
    )
}

/// The run's OCR settings from the flags and the engine found; an error is
/// one line for the user (exit 2). `notice` receives a line saying what is
/// skipped when `auto` finds no engine.
pub fn resolve(
    flag: OcrFlag,
    lang: &str,
    dpi: u32,
    page_timeout: Duration,
    engine: &OcrEngine,
) -> Result<(RunOcr, Option<String>), String> {
    let settings = |mode| OcrSettings {
        mode,
        lang: lang.to_string(),
        dpi,
        page_timeout_ms: page_timeout.as_millis().min(u128::from(u64::MAX)) as u64,
        max_pixels: MAX_PIXELS,
    };
    let mode = match flag {
        OcrFlag::Off => {
            return Ok((
                RunOcr {
                    settings: settings(OcrMode::Auto),
                    recognise: false,
                },
                None,
            ))
        }
        OcrFlag::Auto => OcrMode::Auto,
        OcrFlag::Force => OcrMode::Force,
    };
    if !engine.available {
        let why = engine.missing.as_deref().unwrap_or("tesseract not found");
        if flag == OcrFlag::Force {
            return Err(format!(
                "--ocr force needs tesseract ({why}): install tesseract-ocr, or leave --ocr at auto"
            ));
        }
        let notice = format!(
            "OCR is off ({why}): pages without a text layer are indexed empty and listed by `docmill status`; install tesseract-ocr to read them"
        );
        return Ok((
            RunOcr {
                settings: settings(OcrMode::Auto),
                recognise: false,
            },
            Some(notice),
        ));
    }
    check_languages(lang, &engine.languages)?;
    Ok((
        RunOcr {
            settings: settings(mode),
            recognise: true,
        },
        None,
    ))
}

/// Every language of a `+`-joined list must have its data installed.
pub fn check_languages(lang: &str, installed: &[String]) -> Result<(), String> {
    let missing: Vec<&str> = lang
        .split('+')
        .filter(|l| !installed.iter().any(|i| i == l))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let have = if installed.is_empty() {
        "none".to_string()
    } else {
        installed.join(", ")
    };
    Err(format!(
        "--ocr-lang {lang}: no tesseract language data for {} (installed: {have}); install it (e.g. the tesseract-ocr-{} package) or choose another",
        missing.join(", "),
        missing[0]
    ))
}

/// `--ocr-lang`: tesseract language names joined by `+`.
pub fn lang_list(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.split('+').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if !ok {
        return Err(
            "must be tesseract language names joined by '+', such as eng or eng+deu".to_string(),
        );
    }
    Ok(s.to_string())
}

/// `--ocr-dpi`: within `MIN_DPI..=MAX_DPI`.
pub fn dpi(s: &str) -> Result<u32, String> {
    let range = || format!("must be a resolution between {MIN_DPI} and {MAX_DPI} dpi");
    let d: u32 = s.trim().parse().map_err(|_| range())?;
    if !(MIN_DPI..=MAX_DPI).contains(&d) {
        return Err(range());
    }
    Ok(d)
}

/// Looks for `tesseract` on PATH and asks it its version and languages.
pub fn detect() -> OcrEngine {
    let mut found = OcrEngine {
        name: "tesseract",
        available: false,
        path: None,
        version: None,
        languages: Vec::new(),
        missing: None,
    };
    let Some(path) = crate::engines::which("tesseract") else {
        found.missing = Some("tesseract not found on PATH".to_string());
        return found;
    };
    // Both questions at once: the run waits for the answers (see
    // `engines::detect`).
    let (version, langs) = std::thread::scope(|s| {
        let version = s.spawn(|| probe(&path, "--version"));
        let langs = probe(&path, "--list-langs");
        (version.join().expect("tesseract probe panicked"), langs)
    });
    match version {
        Ok(text) => found.version = parse_version(&text),
        Err(e) => {
            found.missing = Some(format!("tesseract --version failed: {e}"));
            found.path = Some(path);
            return found;
        }
    }
    match langs {
        Ok(text) => {
            found.languages = parse_languages(&text);
            found.available = true;
        }
        Err(e) => found.missing = Some(format!("tesseract --list-langs failed: {e}")),
    }
    found.path = Some(path);
    found
}

/// `tesseract 5.3.0` on the banner's first line.
fn parse_version(banner: &str) -> Option<String> {
    banner.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("tesseract"))
            .then(|| w.next().map(str::to_string))
            .flatten()
    })
}

/// The names after the heading line of `--list-langs`.
fn parse_languages(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with("List of") && !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

/// Runs `program arg` and returns what it printed (stdout, then stderr),
/// killing it if it does not finish in time.
fn probe(program: &Path, arg: &str) -> io::Result<String> {
    let (status, stdout, stderr) = crate::engines::probe(program, arg)?;
    if !status.success() {
        return Err(io::Error::other(format!("exited with {status}")));
    }
    Ok(stdout + &stderr)
}

/// The OCR lines of `docmill engines`.
pub fn describe(engine: &OcrEngine) -> String {
    match (&engine.missing, &engine.path) {
        (Some(why), _) => format!(
            "{:<12} {:<10} {:<28} {why}\n{:<12} OCR is off unless installed (tesseract-ocr)",
            engine.name, "missing", "-", ""
        ),
        (None, path) => format!(
            "{:<12} {:<10} {:<28} {}\n{:<12} OCR of pages without a text layer; languages: {}",
            engine.name,
            "available",
            engine.version.as_deref().unwrap_or("-"),
            path.as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            "",
            engine.languages.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(langs: &[&str]) -> OcrEngine {
        OcrEngine {
            name: "tesseract",
            available: true,
            path: Some(PathBuf::from("/usr/bin/tesseract")),
            version: Some("5.3.0".into()),
            languages: langs.iter().map(|s| s.to_string()).collect(),
            missing: None,
        }
    }

    fn missing() -> OcrEngine {
        OcrEngine {
            available: false,
            path: None,
            version: None,
            languages: Vec::new(),
            missing: Some("tesseract not found on PATH".into()),
            ..engine(&[])
        }
    }

    const T: Duration = OCR_PAGE_TIMEOUT;

    /// What a run should do: recognises, the mode text jobs get, a notice.
    type Want = Option<(bool, OcrMode, bool)>;

    #[test]
    fn the_flag_and_the_engine_decide_what_the_run_does() {
        // (flag, engine installed, lang, recognises, mode sent, notice, error)
        let eng = engine(&["eng", "osd"]);
        let none = missing();
        let table: &[(OcrFlag, &OcrEngine, &str, Want)] = &[
            (
                OcrFlag::Auto,
                &eng,
                "eng",
                Some((true, OcrMode::Auto, false)),
            ),
            (
                OcrFlag::Force,
                &eng,
                "eng",
                Some((true, OcrMode::Force, false)),
            ),
            // Off still flags pages, so that they are reported.
            (
                OcrFlag::Off,
                &eng,
                "eng",
                Some((false, OcrMode::Auto, false)),
            ),
            (
                OcrFlag::Off,
                &none,
                "eng",
                Some((false, OcrMode::Auto, false)),
            ),
            // Auto without tesseract: off, with a notice.
            (
                OcrFlag::Auto,
                &none,
                "eng",
                Some((false, OcrMode::Auto, true)),
            ),
            (OcrFlag::Force, &none, "eng", None),
            (OcrFlag::Auto, &eng, "eng+deu", None),
            // Languages are not checked when nothing will be recognised.
            (
                OcrFlag::Off,
                &eng,
                "deu",
                Some((false, OcrMode::Auto, false)),
            ),
        ];
        for (flag, engine, lang, want) in table {
            let got = resolve(*flag, lang, 300, T, engine);
            match (got, want) {
                (Ok((run, notice)), Some((recognise, mode, noticed))) => {
                    assert_eq!(run.recognise, *recognise, "{flag:?} {lang}");
                    assert_eq!(run.settings.mode, *mode, "{flag:?} {lang}");
                    assert_eq!(notice.is_some(), *noticed, "{flag:?} {lang}");
                    assert_eq!(run.settings.page_timeout_ms, 60_000);
                }
                (Err(_), None) => {}
                (got, want) => panic!("{flag:?} {lang}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_missing_language_is_named() {
        let e = check_languages("eng+deu+fra", &["eng".into()]).unwrap_err();
        assert!(e.contains("deu, fra"), "{e}");
        assert!(e.contains("installed: eng"), "{e}");
        assert!(check_languages("eng", &["eng".into(), "osd".into()]).is_ok());
    }

    #[test]
    fn flag_values_are_checked() {
        assert_eq!(lang_list("eng+deu"), Ok("eng+deu".into()));
        for bad in ["", "eng+", "+eng", "eng deu", "../x"] {
            assert!(lang_list(bad).is_err(), "{bad}");
        }
        assert_eq!(dpi("300"), Ok(300));
        for bad in ["0", "69", "1201", "high"] {
            assert!(
                dpi(bad).unwrap_err().contains("between 70 and 1200"),
                "{bad}"
            );
        }
    }

    #[test]
    fn banners_are_read() {
        assert_eq!(
            parse_version("tesseract 5.3.0\n leptonica-1.82.0\n"),
            Some("5.3.0".into())
        );
        let langs = "List of available languages in \"/usr/share/tessdata/\" (2):\neng\nosd\n";
        assert_eq!(parse_languages(langs), vec!["eng", "osd"]);
    }

    #[test]
    fn the_cache_key_ignores_mode_and_deadline() {
        let a = OcrSettings::default();
        let b = OcrSettings {
            mode: OcrMode::Force,
            page_timeout_ms: 1,
            ..OcrSettings::default()
        };
        assert_eq!(settings_key(&a), settings_key(&b));
        let c = OcrSettings {
            dpi: 200,
            ..OcrSettings::default()
        };
        assert_ne!(settings_key(&a), settings_key(&c));
    }
}
