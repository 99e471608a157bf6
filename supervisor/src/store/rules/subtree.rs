//! Which catalog rows a path stands for when a command names a folder
//! (`forget`) or the walk leaves one out: the row at the path and every row
//! under it, as a range of raw path bytes that both stores' indexes on
//! `path` answer without a scan.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The paths under `path` are the byte strings in `[low, high)`: `path/`
/// sorts before every one of them and `path0` (`0` follows `/`) after, in
/// the bytewise order both stores compare paths in. The row at `path`
/// itself is matched apart.
pub fn subtree(path: &Path) -> (Vec<u8>, Vec<u8>) {
    let bytes = path.as_os_str().as_bytes();
    let mut low = bytes.to_vec();
    if !low.ends_with(b"/") {
        low.push(b'/');
    }
    let mut high = low.clone();
    *high.last_mut().expect("low ends with a slash") = b'/' + 1;
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inside(path: &str, row: &str) -> bool {
        let (low, high) = subtree(Path::new(path));
        let row = row.as_bytes();
        row == path.as_bytes() || (low.as_slice() <= row && row < high.as_slice())
    }

    #[test]
    fn a_folder_stands_for_what_is_under_it() {
        assert!(inside("/lib/a", "/lib/a"));
        assert!(inside("/lib/a", "/lib/a/x.pdf"));
        assert!(inside("/lib/a", "/lib/a/b/c.pdf"));
        assert!(!inside("/lib/a", "/lib/ab.pdf"));
        assert!(!inside("/lib/a", "/lib/a.pdf"));
        assert!(!inside("/lib/a", "/lib/a-b/x.pdf"));
        assert!(!inside("/lib/a", "/lib"));
        assert!(inside("/", "/x.pdf"));
    }
}
