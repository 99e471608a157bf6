//! A run's options as a person reads them: `grace 10s` and `worker memory
//! 4 GiB`, not the stored JSON's `{"secs":10,"nanos":0}` and `4294967296`.

use std::time::Duration;

use serde_json::Value;

/// Options whose numbers are bytes.
const BYTES: &[&str] = &[
    "worker_mem",
    "min_free",
    "budget",
    "worker_limit",
    "massive_bytes",
    "epub_entry_cap",
    "epub_book_cap",
];

/// Options whose numbers are milliseconds.
const MILLIS: &[&str] = &["cooldown_ms"];

/// Names for people where the field's own name says too little; others
/// are their field's name with spaces. Nested fields (`scale.min`) are
/// named by their own key.
const LABELS: &[(&str, &str)] = &[
    ("db", "index"),
    ("min", "min workers"),
    ("max", "max workers"),
    ("worker_mem", "worker memory"),
    ("worker_fds", "worker descriptors"),
    ("worker_limit", "worker memory limit"),
    ("budget", "memory budget"),
    ("target_cpu", "target CPU %"),
    ("critical_cpu", "critical CPU %"),
    ("cooldown_ms", "scaling cooldown"),
    ("allow_mock", "mock documents"),
    ("enabled", "chunking"),
    ("stats_file", "stats file"),
];

/// Fields the header or nothing at all stands for.
const SKIP: &[&str] = &["roots"];

/// (name, value) rows for the options JSON a run stored, in its order.
pub fn human(options: &Value) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    match options {
        Value::Object(map) => {
            for (key, value) in map {
                flatten(key, value, &mut rows);
            }
        }
        // An older or damaged record: shown as it is.
        other => rows.push(("options".to_string(), other.to_string())),
    }
    rows
}

fn flatten(key: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    if SKIP.contains(&key) {
        return;
    }
    if let Value::Object(map) = value {
        if duration(value).is_none() {
            for (k, v) in map {
                flatten(k, v, rows);
            }
            return;
        }
    }
    rows.push((label(key), shown(key, value)));
}

fn label(key: &str) -> String {
    LABELS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or_else(|| key.replace('_', " "), |(_, l)| l.to_string())
}

fn shown(key: &str, value: &Value) -> String {
    if let Some(d) = duration(value) {
        return crate::units::format_duration(d);
    }
    match value {
        Value::Null => "-".to_string(),
        Value::Bool(true) => "yes".to_string(),
        Value::Bool(false) => "no".to_string(),
        Value::Number(n) => match n.as_u64() {
            Some(0) if key == "worker_mem" => "no limit".to_string(),
            Some(b) if BYTES.contains(&key) => crate::units::format_size(b),
            Some(ms) if MILLIS.contains(&key) => {
                crate::units::format_duration(Duration::from_millis(ms))
            }
            _ => n.to_string(),
        },
        Value::String(s) => s.to_lowercase(),
        Value::Array(items) if items.is_empty() => "-".to_string(),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(_) => value.to_string(),
    }
}

/// A `Duration` as serde writes it.
fn duration(value: &Value) -> Option<Duration> {
    let map = value.as_object()?;
    if map.len() != 2 {
        return None;
    }
    let secs = map.get("secs")?.as_u64()?;
    let nanos = map.get("nanos")?.as_u64()?;
    Some(Duration::new(secs, nanos as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_as_a_person_writes_them() {
        let stored = serde_json::json!({
            "roots": ["/home/a/Books"],
            "db": "/home/a/.local/share/docmill/docmill.db",
            "scale": {"profile": "Background", "min": 2, "max": 12, "min_free": 1610612736u64,
                      "budget": null, "worker_limit": 4294967296u64, "cooldown_ms": 15000},
            "scale_interval": {"secs": 5, "nanos": 0},
            "worker_mem": 4294967296u64,
            "grace": {"secs": 10, "nanos": 0},
            "lease": {"secs": 0, "nanos": 500000000},
            "follow_symlinks": false,
            "exclude": ["*.epub", "drafts/"],
            "chunking": {"enabled": true, "massive_bytes": 524288000, "chunk_pages": null},
        });
        let rows = human(&stored);
        let get = |name: &str| {
            rows.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("no {name} in {rows:?}"))
        };
        // (row, as shown)
        let table = [
            ("index", "/home/a/.local/share/docmill/docmill.db"),
            ("profile", "background"),
            ("min workers", "2"),
            ("max workers", "12"),
            ("min free", "1.5 GiB"),
            ("memory budget", "-"),
            ("worker memory limit", "4.0 GiB"),
            ("scaling cooldown", "15s"),
            ("scale interval", "5s"),
            ("worker memory", "4.0 GiB"),
            ("grace", "10s"),
            ("lease", "500ms"),
            ("follow symlinks", "no"),
            ("exclude", "*.epub, drafts/"),
            ("chunking", "yes"),
            ("massive bytes", "500.0 MiB"),
            ("chunk pages", "-"),
        ];
        for (name, shown) in table {
            assert_eq!(get(name), shown, "{name}");
        }
        assert!(rows.iter().all(|(n, _)| n != "roots"));
        assert!(rows.iter().all(|(_, v)| !v.contains("secs")));
        assert_eq!(
            human(&serde_json::json!({"worker_mem": 0}))[0].1,
            "no limit"
        );
        assert_eq!(human(&Value::String("x".into()))[0].0, "options");
    }
}
