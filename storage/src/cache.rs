//! The per-shard batch cache: recently appended batches, kept as the `Bytes` they arrived in, so that tailing
//! consumers are served with no disk I/O and no copy. One cache is shared by every log on a shard (hence `Rc`
//! and `RefCell`: a shard is one thread), bounded by a byte budget and evicted oldest-insert first.

use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

/// Identifies one log inside a shard's cache.
pub type LogId = u64;

struct CachedBatch {
    bytes: Bytes,
    next_offset: i64,
}

#[derive(Default)]
struct Inner {
    budget_bytes: usize,
    used_bytes: usize,
    logs: HashMap<LogId, BTreeMap<i64, CachedBatch>>,
    /// Insertion order for eviction; may hold entries already removed by retention or truncation.
    fifo: VecDeque<(LogId, i64)>,
    live_entries: usize,
    next_log_id: LogId,
    hits: u64,
    misses: u64,
}

/// Cache counters, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub used_bytes: usize,
    pub budget_bytes: usize,
    pub hits: u64,
    pub misses: u64,
}

pub struct BatchCache {
    inner: RefCell<Inner>,
}

impl BatchCache {
    pub fn new(budget_bytes: usize) -> Rc<BatchCache> {
        Rc::new(BatchCache { inner: RefCell::new(Inner { budget_bytes, ..Inner::default() }) })
    }

    pub fn register_log(&self) -> LogId {
        let mut inner = self.inner.borrow_mut();
        inner.next_log_id += 1;
        inner.next_log_id
    }

    /// Caches one batch covering offsets `base_offset..next_offset`. Batches larger than the whole budget are
    /// not cached.
    pub fn insert(&self, log: LogId, base_offset: i64, next_offset: i64, bytes: Bytes) {
        let mut inner = self.inner.borrow_mut();
        if bytes.len() > inner.budget_bytes {
            return;
        }
        inner.used_bytes += bytes.len();
        let previous = inner.logs.entry(log).or_default().insert(base_offset, CachedBatch { bytes, next_offset });
        match previous {
            Some(old) => inner.used_bytes -= old.bytes.len(),
            None => {
                inner.live_entries += 1;
                inner.fifo.push_back((log, base_offset));
            }
        }
        while inner.used_bytes > inner.budget_bytes {
            let Some((victim_log, victim_offset)) = inner.fifo.pop_front() else { break };
            inner.remove(victim_log, victim_offset);
        }
        // Retention and truncation leave stale queue entries behind; compact before they outnumber live ones.
        if inner.fifo.len() > 2 * inner.live_entries + 1024 {
            let Inner { fifo, logs, .. } = &mut *inner;
            fifo.retain(|(log, offset)| logs.get(log).is_some_and(|batches| batches.contains_key(offset)));
        }
    }

    /// The cached batches starting with the one that holds `offset`, contiguous, ending before `max_offset`,
    /// within `max_bytes` except that the first batch is always returned whole. `None` if the batch holding
    /// `offset` is not cached.
    pub fn read(&self, log: LogId, offset: i64, max_bytes: usize, max_offset: i64) -> Option<Vec<Bytes>> {
        let mut inner = self.inner.borrow_mut();
        let found = inner.logs.get(&log).and_then(|batches| {
            let (_, first) = batches.range(..=offset).next_back()?;
            if first.next_offset <= offset || first.next_offset > max_offset {
                return None;
            }
            let mut out = Vec::new();
            let mut total_bytes = 0usize;
            let mut expected_base: Option<i64> = None;
            for (&base, batch) in batches.range(..=offset).next_back().into_iter().chain(batches.range(offset + 1..)) {
                if expected_base.is_some_and(|expected| expected != base)
                    || batch.next_offset > max_offset
                    || (!out.is_empty() && total_bytes + batch.bytes.len() > max_bytes)
                {
                    break;
                }
                total_bytes += batch.bytes.len();
                out.push(batch.bytes.clone());
                expected_base = Some(batch.next_offset);
            }
            Some(out)
        });
        match found {
            Some(_) => inner.hits += 1,
            None => inner.misses += 1,
        }
        found
    }

    /// Drops batches that end at or below `offset` (retention, DeleteRecords).
    pub fn evict_below(&self, log: LogId, offset: i64) {
        let mut inner = self.inner.borrow_mut();
        let doomed: Vec<i64> = match inner.logs.get(&log) {
            Some(batches) => {
                batches.iter().take_while(|(_, b)| b.next_offset <= offset).map(|(&base, _)| base).collect()
            }
            None => return,
        };
        for base in doomed {
            inner.remove(log, base);
        }
    }

    /// Drops batches whose base offset lies in `from..to` (the cleaner replaced those segments).
    pub fn evict_range(&self, log: LogId, from: i64, to: i64) {
        let mut inner = self.inner.borrow_mut();
        let doomed: Vec<i64> = match inner.logs.get(&log) {
            Some(batches) => batches.range(from..to).map(|(&base, _)| base).collect(),
            None => return,
        };
        for base in doomed {
            inner.remove(log, base);
        }
    }

    /// Drops every batch of `log` (the log closed or failed).
    pub fn drop_log(&self, log: LogId) {
        let mut inner = self.inner.borrow_mut();
        if let Some(batches) = inner.logs.remove(&log) {
            inner.live_entries -= batches.len();
            inner.used_bytes -= batches.values().map(|b| b.bytes.len()).sum::<usize>();
        }
    }

    pub fn stats(&self) -> CacheStats {
        let inner = self.inner.borrow();
        CacheStats {
            used_bytes: inner.used_bytes,
            budget_bytes: inner.budget_bytes,
            hits: inner.hits,
            misses: inner.misses,
        }
    }
}

impl Inner {
    fn remove(&mut self, log: LogId, base_offset: i64) {
        if let Some(batches) = self.logs.get_mut(&log) {
            if let Some(batch) = batches.remove(&base_offset) {
                self.used_bytes -= batch.bytes.len();
                self.live_entries -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(len: usize) -> Bytes {
        Bytes::from(vec![7u8; len])
    }

    #[test]
    fn reads_contiguous_batches_within_budget() {
        let cache = BatchCache::new(10_000);
        let log = cache.register_log();
        cache.insert(log, 0, 10, batch(100));
        cache.insert(log, 10, 20, batch(100));
        cache.insert(log, 20, 30, batch(100));
        assert_eq!(cache.read(log, 15, 1_000, 30).map(|b| b.len()), Some(2));
        assert_eq!(cache.read(log, 0, 150, 30).map(|b| b.len()), Some(1), "max_bytes limits after the first");
        assert_eq!(cache.read(log, 0, 1, 30).map(|b| b.len()), Some(1), "first batch even if over max_bytes");
        assert_eq!(cache.read(log, 0, 1_000, 20).map(|b| b.len()), Some(2), "stops at max_offset");
        assert_eq!(cache.read(log, 30, 1_000, 40), None);
        assert_eq!(cache.read(log, 25, 1_000, 25), None, "holding batch lies beyond max_offset");
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.used_bytes), (4, 2, 300));
    }

    #[test]
    fn evicts_oldest_when_over_budget() {
        let cache = BatchCache::new(250);
        let a = cache.register_log();
        let b = cache.register_log();
        cache.insert(a, 0, 1, batch(100));
        cache.insert(b, 0, 1, batch(100));
        cache.insert(a, 1, 2, batch(100));
        assert_eq!(cache.read(a, 0, 1_000, 2), None, "oldest insert evicted");
        assert!(cache.read(b, 0, 1_000, 1).is_some());
        assert!(cache.read(a, 1, 1_000, 2).is_some());
        assert!(cache.stats().used_bytes <= 250);
        cache.insert(a, 2, 3, batch(1_000)); // larger than the budget: not cached
        assert_eq!(cache.read(a, 2, 1_000, 3), None);
    }

    #[test]
    fn a_gap_ends_the_read() {
        let cache = BatchCache::new(10_000);
        let log = cache.register_log();
        cache.insert(log, 0, 10, batch(10));
        cache.insert(log, 20, 30, batch(10));
        assert_eq!(cache.read(log, 0, 1_000, 30).map(|b| b.len()), Some(1));
    }

    #[test]
    fn eviction_below_and_drop() {
        let cache = BatchCache::new(10_000);
        let log = cache.register_log();
        for i in 0..10 {
            cache.insert(log, i * 10, i * 10 + 10, batch(10));
        }
        cache.evict_below(log, 50);
        assert_eq!(cache.read(log, 49, 1_000, 100), None);
        assert!(cache.read(log, 50, 1_000, 100).is_some());
        assert_eq!(cache.stats().used_bytes, 50);
        cache.evict_range(log, 60, 80);
        assert_eq!(cache.read(log, 65, 1_000, 100), None);
        assert_eq!(cache.read(log, 50, 1_000, 100).map(|b| b.len()), Some(1), "a gap ends the read");
        assert!(cache.read(log, 80, 1_000, 100).is_some());
        cache.drop_log(log);
        assert_eq!(cache.stats().used_bytes, 0);
    }
}
