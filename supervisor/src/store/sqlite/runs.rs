//! `docmill runs` on the embedded store.

use super::{SqliteError, SqliteStore};
use crate::store::RunRow;

impl SqliteStore {
    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRow>, SqliteError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, started_ms, ended_ms, owner, options, totals, exit_code
             FROM runs ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RunRow::from_stored(
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                &r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?.as_deref(),
                r.get(6)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
