//! How far the arrangements may compact: the read hold.
//!
//! A read picks its LSN when it starts and may take up to the read hold to finish (multi-hop
//! queries read level by level at that one LSN). Every worker therefore keeps the history of
//! the last `hold` of wall-clock time and lets its traces forget what is older, so memory
//! follows the update rate over that window, not the length of the log.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::state::model::Lsn;

pub(crate) struct ReadHold {
    hold: Duration,
    /// (when, applied LSN then), oldest first.
    samples: VecDeque<(Instant, Lsn)>,
    since: Lsn,
}

impl ReadHold {
    pub(crate) fn new(hold: Duration) -> Self {
        ReadHold { hold, samples: VecDeque::new(), since: 0 }
    }

    /// Records the applied LSN now; returns the new compaction frontier if it moved.
    pub(crate) fn observe(&mut self, now: Instant, applied: Lsn) -> Option<Lsn> {
        if self.samples.back().map(|(_, lsn)| *lsn) != Some(applied) {
            self.samples.push_back((now, applied));
        }
        let mut since = self.since;
        while let Some(&(at, lsn)) = self.samples.front() {
            if now.duration_since(at) < self.hold {
                break;
            }
            since = since.max(lsn);
            self.samples.pop_front();
        }
        if since > self.since {
            self.since = since;
            Some(since)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_lags_by_the_hold() {
        let start = Instant::now();
        let mut hold = ReadHold::new(Duration::from_millis(100));
        assert_eq!(hold.observe(start, 5), None);
        assert_eq!(hold.observe(start + Duration::from_millis(50), 9), None);
        assert_eq!(hold.observe(start + Duration::from_millis(120), 12), Some(5));
        assert_eq!(hold.observe(start + Duration::from_millis(300), 12), Some(12));
    }
}
