//! `docmill runs` on the shared store: the runs of every machine, in the
//! order the server numbered them.

use super::PgStore;
use crate::store::{RunRow, StoreError};

impl PgStore {
    pub(super) fn runs(&mut self) -> Result<Vec<RunRow>, StoreError> {
        let rows = self.client.query(
            "SELECT id, started_ms, ended_ms, owner, options, totals, exit_code
             FROM runs ORDER BY id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                RunRow::from_stored(
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                )
            })
            .collect())
    }
}
