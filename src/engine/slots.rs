//! Small maps and sets for the engine's bookkeeping, on a `Vec`: `BTreeMap`'s node code costs
//! ~5 KB of wasm per key/value pair of types, and the engine holds few entries of each at a time
//! (operations in flight, calls, keys being sent).

use alloc::string::String;
use alloc::vec::Vec;

use super::Id;

/// Values by id, kept in id order (ids only grow, so inserts append). A removed entry is left as
/// a hole and the holes are swept out once they are half the map: removing the oldest of 10,000
/// calls one by one would otherwise move the rest each time (a burst of offline `track()`s was
/// quadratic).
pub struct IdMap<V> {
    items: Vec<(Id, Option<V>)>,
    holes: usize,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            items: Vec::new(),
            holes: 0,
        }
    }
}

impl<V> IdMap<V> {
    fn find(&self, id: Id) -> Result<usize, usize> {
        self.items.binary_search_by(|(k, _)| k.cmp(&id))
    }

    pub fn insert(&mut self, id: Id, v: V) {
        match self.find(id) {
            Ok(i) => {
                if let Some(slot) = self.items.get_mut(i) {
                    if slot.1.is_none() {
                        self.holes -= 1;
                    }
                    slot.1 = Some(v);
                }
            }
            Err(i) => self.items.insert(i, (id, Some(v))),
        }
    }

    /// How many entries (holes not counted).
    pub fn len(&self) -> usize {
        self.items.len() - self.holes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, id: &Id) -> Option<&V> {
        self.find(*id)
            .ok()
            .and_then(|i| self.items.get(i))
            .and_then(|(_, v)| v.as_ref())
    }

    pub fn get_mut(&mut self, id: &Id) -> Option<&mut V> {
        let i = self.find(*id).ok()?;
        self.items.get_mut(i).and_then(|(_, v)| v.as_mut())
    }

    pub fn remove(&mut self, id: &Id) -> Option<V> {
        let i = self.find(*id).ok()?;
        let v = self.items.get_mut(i)?.1.take()?;
        self.holes += 1;
        if self.holes * 2 > self.items.len() {
            self.items.retain(|(_, v)| v.is_some());
            self.holes = 0;
        }
        Some(v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Id, &V)> {
        self.items
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Id> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

/// A set of keys: open addressing on a `Vec` (FNV-1a, linear probing), so that the sets a drain
/// of 10,000 records fills and empties one key at a time cost O(1) per key — a `Vec` searched
/// from the start made a drain quadratic. Deterministic (no random seed): the simulation replays.
#[derive(Default)]
pub struct KeySet {
    /// `None`: never used; `Some(None)`: a removed key (probing goes on past it).
    slots: Vec<Option<Option<String>>>,
    len: usize,
    used: usize,
    /// Bumped by every insert, remove and clear that changed the set: tells a reader whether
    /// what it copied out is still the set (see `Engine::busy_keys`).
    changes: u64,
}

fn fnv(k: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in k.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as usize
}

impl KeySet {
    /// The slot holding `k`, or where it would go.
    fn slot(&self, k: &str) -> (usize, bool) {
        let n = self.slots.len();
        let mut i = fnv(k) & (n - 1);
        let mut free = None;
        loop {
            match self.slots.get(i) {
                Some(Some(Some(x))) if x == k => return (i, true),
                Some(Some(None)) => {
                    free.get_or_insert(i);
                }
                Some(None) | None => return (free.unwrap_or(i), false),
                Some(Some(Some(_))) => {}
            }
            i = (i + 1) & (n - 1);
        }
    }

    pub fn contains(&self, k: &str) -> bool {
        !self.slots.is_empty() && self.slot(k).1
    }

    pub fn insert(&mut self, k: String) {
        if (self.used + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let (i, found) = self.slot(&k);
        if found {
            return;
        }
        if let Some(s) = self.slots.get_mut(i) {
            if s.is_none() {
                self.used += 1;
            }
            *s = Some(Some(k));
            self.len += 1;
            self.changes += 1;
        }
    }

    pub fn remove(&mut self, k: &str) {
        if self.slots.is_empty() {
            return;
        }
        if let (i, true) = self.slot(k) {
            if let Some(s) = self.slots.get_mut(i) {
                *s = Some(None);
                self.len -= 1;
                self.changes += 1;
            }
        }
    }

    /// Rebuilds with room for twice the keys (and without the removed ones).
    fn grow(&mut self) {
        let old = core::mem::take(&mut self.slots);
        let cap = ((self.len + 1) * 4).next_power_of_two().max(16);
        self.slots.resize_with(cap, || None);
        self.len = 0;
        self.used = 0;
        for k in old.into_iter().flatten().flatten() {
            self.insert(k);
        }
    }

    pub fn clear(&mut self) {
        if self.len > 0 {
            self.changes += 1;
        }
        self.slots.clear();
        self.len = 0;
        self.used = 0;
    }

    /// How many times the set changed (see the field).
    pub fn changes(&self) -> u64 {
        self.changes
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.slots
            .iter()
            .filter_map(|s| s.as_ref().and_then(Option::as_ref))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn a_key_set_holds_what_was_put_in_and_not_what_was_taken_out() {
        let mut s = KeySet::default();
        assert!(!s.contains("a") && s.is_empty());
        for i in 0..5_000 {
            s.insert(format!("01a3185c-{i}"));
        }
        s.insert("01a3185c-7".into());
        assert_eq!(s.len(), 5_000);
        for i in (0..5_000).step_by(2) {
            s.remove(&format!("01a3185c-{i}"));
        }
        s.remove("never");
        assert_eq!(s.len(), 2_500);
        assert_eq!(s.iter().count(), 2_500);
        for i in 0..5_000 {
            assert_eq!(s.contains(&format!("01a3185c-{i}")), i % 2 == 1, "{i}");
        }
        // Removed slots are reused, and the table does not fill with them.
        for round in 0..20 {
            for i in 0..1_000 {
                s.insert(format!("r{round}-{i}"));
            }
            for i in 0..1_000 {
                s.remove(&format!("r{round}-{i}"));
            }
        }
        assert_eq!(s.len(), 2_500);
        assert!(s.slots.len() <= 32_768, "{}", s.slots.len());
        s.clear();
        assert!(!s.contains("01a3185c-1") && s.is_empty());
    }
}
