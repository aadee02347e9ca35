//! How much of a service one key (a caller's uid, the account asked about) may hold at once.
//!
//! `twofold-verifyd`'s connections (per peer user), its requests (per account asked about) and
//! `twofold-enrolld`'s calls (per caller uid) are each counted here: a [`Slot`] is taken before
//! the work starts and given back when it is dropped, also when the work panics. A key at its
//! cap, or a service at its total, is refused at once ([`Full`]), with nothing started.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The caps of a [`Slots`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Slots one key may hold at once.
    pub per_key: usize,
    /// Slots all keys together may hold at once.
    pub total: usize,
    /// `Some(reserve)`: key 0 (root) is held to no `per_key` cap, and of `total`, `reserve`
    /// are kept for it (every other key together may hold `total − reserve`). `None`: key 0
    /// is a key like any other.
    pub root: Option<usize>,
}

/// A cap reached: nothing was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The key holds [`Limits::per_key`] slots already.
    Key,
    /// All keys together hold as many as this key may share.
    Total,
}

/// The slots held, per key and in all.
#[derive(Debug)]
pub struct Slots {
    limits: Limits,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    per_key: HashMap<u32, usize>,
    total: usize,
}

impl Slots {
    /// None held yet.
    pub fn new(limits: Limits) -> Arc<Slots> {
        Arc::new(Slots {
            limits,
            held: Mutex::default(),
        })
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        // A panic under this lock leaves counts that are still whole: go on.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for `key`, or which cap it reached.
    pub fn take(self: &Arc<Self>, key: u32) -> Result<Slot, Full> {
        let Limits {
            per_key,
            total,
            root,
        } = self.limits;
        let privileged = key == 0 && root.is_some();
        let share = if privileged {
            total
        } else {
            total.saturating_sub(root.unwrap_or(0))
        };
        let mut h = self.held();
        if h.total >= share {
            return Err(Full::Total);
        }
        let mine = h.per_key.entry(key).or_default();
        if !privileged && *mine >= per_key {
            return Err(Full::Key);
        }
        *mine += 1;
        h.total += 1;
        Ok(Slot {
            slots: self.clone(),
            key,
        })
    }

    /// Slots `key` holds now.
    pub fn running(&self, key: u32) -> usize {
        self.held().per_key.get(&key).copied().unwrap_or(0)
    }

    /// Slots held now, all keys together.
    pub fn total(&self) -> usize {
        self.held().total
    }

    /// The caps.
    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// One slot held; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    key: u32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut h = self.slots.held();
        h.total = h.total.saturating_sub(1);
        if let Some(n) = h.per_key.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                h.per_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PER_UID: usize = 8;
    const TOTAL: usize = 256;
    const ROOT_RESERVE: usize = 16;

    #[test]
    fn per_uid_and_total_caps_with_a_reserve_for_root() {
        let s = Slots::new(Limits {
            per_key: PER_UID,
            total: TOTAL,
            root: Some(ROOT_RESERVE),
        });
        let mine: Vec<Slot> = (0..PER_UID).map(|_| s.take(1000).unwrap()).collect();
        assert_eq!(s.take(1000).unwrap_err(), Full::Key);
        let other = s.take(1001).unwrap();
        drop(other);
        drop(mine);
        assert_eq!(s.running(1000), 0);
        assert_eq!(s.total(), 0);
        // Many users fill what is theirs; root still has its reserve.
        let many: Vec<Slot> = (0..TOTAL - ROOT_RESERVE)
            .map(|i| s.take(2000 + u32::try_from(i / PER_UID).unwrap()).unwrap())
            .collect();
        assert_eq!(s.take(9999).unwrap_err(), Full::Total);
        let root: Vec<Slot> = (0..ROOT_RESERVE).map(|_| s.take(0).unwrap()).collect();
        assert_eq!(s.take(0).unwrap_err(), Full::Total);
        drop(root);
        drop(many);
        assert_eq!(s.total(), 0);
    }

    #[test]
    fn without_a_root_reserve_key_zero_is_capped_like_any_other() {
        let s = Slots::new(Limits {
            per_key: 4,
            total: usize::MAX,
            root: None,
        });
        let held: Vec<Slot> = (0..4).map(|_| s.take(0).unwrap()).collect();
        assert_eq!(s.take(0).unwrap_err(), Full::Key);
        assert!(s.take(1).is_ok());
        drop(held);
        assert_eq!(s.running(0), 0);
    }
}
