//! A numbered buffer of the most recent items that readers follow at their
//! own pace from a cursor: a slow reader never slows the writer, and what
//! leaves the buffer before a reader gets it is counted for that reader.
//! The agent buffers its flows in one; the controller its live flow stream.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// What one read returned.
#[derive(Debug)]
pub struct Read<T> {
    /// Items after the cursor, in order.
    pub items: Vec<Arc<T>>,
    /// Items after the cursor that already left the buffer.
    pub skipped: u64,
    /// The new cursor: the sequence number of the last item returned.
    pub last_seq: u64,
}

#[derive(Debug)]
struct Inner<T> {
    items: VecDeque<Arc<T>>,
    /// Sequence number of `items[0]`; items are numbered from 1.
    first_seq: u64,
}

/// The buffer.
#[derive(Debug)]
pub struct SeqRing<T> {
    inner: Mutex<Inner<T>>,
    capacity: usize,
    latest: watch::Sender<u64>,
}

impl<T> SeqRing<T> {
    /// A buffer keeping the `capacity` most recent items.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner { items: VecDeque::with_capacity(capacity.min(65_536)), first_seq: 1 }),
            capacity: capacity.max(1),
            latest: watch::channel(0).0,
        }
    }

    /// Appends items, evicting the oldest beyond the capacity; returns the
    /// sequence number of the last one.
    pub fn publish_all(&self, items: impl IntoIterator<Item = T>) -> u64 {
        let Ok(mut r) = self.inner.lock() else { return 0 };
        for item in items {
            if r.items.len() >= self.capacity {
                r.items.pop_front();
                r.first_seq += 1;
            }
            r.items.push_back(Arc::new(item));
        }
        let last = r.first_seq + r.items.len() as u64 - 1;
        drop(r);
        self.latest.send_replace(last);
        last
    }

    /// Appends one item.
    pub fn publish(&self, item: T) -> u64 {
        self.publish_all([item])
    }

    /// Up to `max` items after sequence number `after` (0: from the oldest).
    pub fn read_after(&self, after: u64, max: usize) -> Read<T> {
        let Ok(r) = self.inner.lock() else { return Read { items: Vec::new(), skipped: 0, last_seq: after } };
        let start = after.saturating_add(1).max(r.first_seq);
        let skipped = if after == 0 { 0 } else { start.saturating_sub(after.saturating_add(1)) };
        let from = (start - r.first_seq) as usize;
        let items: Vec<Arc<T>> = r.items.iter().skip(from).take(max).cloned().collect();
        let last_seq = if items.is_empty() { start - 1 } else { start + items.len() as u64 - 1 };
        Read { items, skipped, last_seq: last_seq.max(after) }
    }

    /// Sequence number of the oldest buffered item.
    pub fn first_seq(&self) -> u64 {
        self.inner.lock().map(|r| r.first_seq).unwrap_or(1)
    }

    /// Sequence number of the newest item (0 before the first).
    pub fn last_seq(&self) -> u64 {
        *self.latest.borrow()
    }

    /// Changes whenever items are published (carries the last sequence number).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_resume_after_their_cursor_and_count_what_left_the_buffer() {
        let ring = SeqRing::new(4);
        for p in 1..=3u32 {
            ring.publish(p);
        }
        let r = ring.read_after(0, 10);
        assert_eq!((r.items.len(), r.skipped, r.last_seq), (3, 0, 3));
        let r = ring.read_after(1, 1);
        assert_eq!((*r.items[0], r.last_seq), (2, 2));
        // A reader at 3 goes away; 5 more items arrive, the buffer keeps 4.
        ring.publish_all(4..=8);
        let r = ring.read_after(3, 10);
        assert_eq!(r.skipped, 1, "item 4 left the buffer before the reader came back");
        assert_eq!(r.items.iter().map(|i| **i).collect::<Vec<_>>(), vec![5, 6, 7, 8]);
        assert_eq!(r.last_seq, 8);
        let r = ring.read_after(8, 10);
        assert!(r.items.is_empty() && r.skipped == 0 && r.last_seq == 8);
        assert_eq!((ring.first_seq(), ring.last_seq()), (5, 8));
    }
}
