//! The connections that asked for live updates (`Subscribe`): each gets the signal `Changed`
//! as a unicast signal (destination: its unique bus name) for every change, so an admin who is
//! not in the bus policy's group (one polkit authorizes) learns of changes too, and nobody
//! else does: a unicast signal reaches only its addressee (and root's monitors).
//!
//! A subscriber is its unique bus name, which the bus daemon never gives to another
//! connection, with the uid the bus reported for it and when its authorization was last
//! checked. It is forgotten on `Unsubscribe`, when its connection leaves the bus
//! (`NameOwnerChanged`), or when a re-check (at most once per period, [`RECHECK`] by default,
//! when a change is delivered, without interaction) finds it no longer authorized. There are
//! at most [`PER_UID`] per uid and [`MAX`] in all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Subscribed connections of one uid at most.
pub const PER_UID: usize = 4;
/// Subscribed connections at most, all uids together.
pub const MAX: usize = 64;
/// How often a subscriber's authorization is checked again, by default.
pub const RECHECK: Duration = Duration::from_secs(60);

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The uid has [`PER_UID`] subscribed connections already.
    PerUid,
    /// There are [`MAX`] subscribed connections already.
    Total,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    uid: u32,
    checked: Instant,
}

/// The subscribed connections, by unique bus name.
#[derive(Debug)]
pub struct Subscribers {
    recheck: Duration,
    by_name: Mutex<HashMap<String, Entry>>,
}

impl Default for Subscribers {
    fn default() -> Subscribers {
        Subscribers::new(RECHECK)
    }
}

impl Subscribers {
    /// No subscriber yet; authorizations checked again after `recheck`.
    pub fn new(recheck: Duration) -> Subscribers {
        Subscribers {
            recheck,
            by_name: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic under this lock leaves a whole map: go on.
        self.by_name.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `name` of `uid`, just authorized at `now` (again: its check is renewed).
    pub fn add(&self, name: &str, uid: u32, now: Instant) -> Result<(), Refused> {
        let mut map = self.map();
        if let Some(e) = map.get_mut(name) {
            e.checked = now;
            return Ok(());
        }
        if map.len() >= MAX {
            return Err(Refused::Total);
        }
        if map.values().filter(|e| e.uid == uid).count() >= PER_UID {
            return Err(Refused::PerUid);
        }
        map.insert(name.to_owned(), Entry { uid, checked: now });
        Ok(())
    }

    /// Forgets `name`; whether it was subscribed.
    pub fn remove(&self, name: &str) -> bool {
        self.map().remove(name).is_some()
    }

    /// Whether `name` is subscribed.
    pub fn contains(&self, name: &str) -> bool {
        self.map().contains_key(name)
    }

    /// How many are subscribed.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether nobody is subscribed.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// The subscribers at `now`: those checked within the period, and those due for a check
    /// (name and uid each).
    pub fn split(&self, now: Instant) -> (Vec<String>, Vec<(String, u32)>) {
        let map = self.map();
        let mut fresh = Vec::new();
        let mut due = Vec::new();
        for (name, e) in map.iter() {
            if now.saturating_duration_since(e.checked) < self.recheck {
                fresh.push(name.clone());
            } else {
                due.push((name.clone(), e.uid));
            }
        }
        (fresh, due)
    }

    /// Records that `name` was found authorized at `now` (nothing if it left meanwhile).
    pub fn checked(&self, name: &str, now: Instant) {
        if let Some(e) = self.map().get_mut(name) {
            e.checked = now;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic here is a failed test
mod tests {
    use super::*;

    #[test]
    fn caps_per_uid_and_in_all() {
        let s = Subscribers::default();
        let now = Instant::now();
        for i in 0..PER_UID {
            s.add(&format!(":1.{i}"), 1000, now).unwrap();
        }
        assert_eq!(s.add(":1.99", 1000, now), Err(Refused::PerUid));
        // Again with a name already there: renewed, not counted twice.
        s.add(":1.0", 1000, now).unwrap();
        assert_eq!(s.len(), PER_UID);
        let mut uid = 2000;
        while s.len() < MAX {
            s.add(&format!(":2.{uid}"), uid, now).unwrap();
            uid += 1;
        }
        assert_eq!(s.add(":3.0", 5, now), Err(Refused::Total));
        assert!(s.remove(":1.0"));
        assert!(!s.remove(":1.0"));
        s.add(":3.0", 5, now).unwrap();
    }

    #[test]
    fn due_after_the_period() {
        let s = Subscribers::new(Duration::from_secs(60));
        let t0 = Instant::now();
        s.add(":1.1", 1000, t0).unwrap();
        let (fresh, due) = s.split(t0 + Duration::from_secs(59));
        assert_eq!((fresh.len(), due.len()), (1, 0));
        let (fresh, due) = s.split(t0 + Duration::from_secs(60));
        assert_eq!((fresh.len(), due), (0, vec![(":1.1".to_owned(), 1000)]));
        s.checked(":1.1", t0 + Duration::from_secs(60));
        let (fresh, _) = s.split(t0 + Duration::from_secs(61));
        assert_eq!(fresh, [":1.1"]);
    }
}
