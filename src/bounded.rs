//! A map bounded by the total weight of its values, dropping the least recently used entries
//! first: the in-memory caches of listings, searches, manifests and materialized content
//! keep memory bounded however large the DAM is. Values are meant to be `Arc`s: an entry
//! dropped from the map stays valid for whoever still holds it.
//!
//! Not synchronized: each owner keeps its map behind its own lock, as it did its `HashMap`.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// A map of at most `capacity` weight (each entry weighs at least 1), least recently used
/// entries dropped first. The entry inserted last is never dropped to make room for
/// itself, so one value heavier than the whole bound is still kept (alone).
#[derive(Debug)]
pub struct Bounded<K, V> {
    entries: HashMap<K, Slot<V>>,
    /// Use order: tick of the last use -> key.
    order: BTreeMap<u64, K>,
    tick: u64,
    weight: u64,
    capacity: u64,
}

#[derive(Debug)]
struct Slot<V> {
    value: V,
    weight: u64,
    used: u64,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    /// An empty map holding at most `capacity` weight.
    pub fn new(capacity: u64) -> Bounded<K, V> {
        Bounded { entries: HashMap::new(), order: BTreeMap::new(), tick: 0, weight: 0, capacity }
    }

    /// The value of `key`, marked as used now.
    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.tick += 1;
        let slot = self.entries.get_mut(key)?;
        if let Some(k) = self.order.remove(&slot.used) {
            self.order.insert(self.tick, k);
        }
        slot.used = self.tick;
        Some(&slot.value)
    }

    /// The value of `key`, without marking it used.
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key).map(|s| &s.value)
    }

    /// The value of `key` for changing in place (its weight stays), marked as used now.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key)?;
        self.entries.get_mut(key).map(|s| &mut s.value)
    }

    /// Whether `key` is held.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.contains_key(key)
    }

    /// Puts `value` under `key` with `weight`, dropping least recently used entries until
    /// the map is within its bound again. Returns the value `key` had.
    pub fn insert(&mut self, key: K, value: V, weight: u64) -> Option<V> {
        let old = self.remove(&key);
        self.tick += 1;
        let weight = weight.max(1);
        self.order.insert(self.tick, key.clone());
        self.entries.insert(key, Slot { value, weight, used: self.tick });
        self.weight = self.weight.saturating_add(weight);
        while self.weight > self.capacity && self.entries.len() > 1 {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            if let Some(slot) = self.entries.remove(&oldest) {
                self.weight = self.weight.saturating_sub(slot.weight);
            }
        }
        old
    }

    /// Takes `key` out.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.entries.remove(key)?;
        self.order.remove(&slot.used);
        self.weight = self.weight.saturating_sub(slot.weight);
        Some(slot.value)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.keys()
    }

    /// The values, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|s| &s.value)
    }

    /// Keeps only the entries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let gone: Vec<K> =
            self.entries.iter().filter(|(k, s)| !keep(k, &s.value)).map(|(k, _)| k.clone()).collect();
        for key in gone {
            self.remove(&key);
        }
    }
}

/// Hands memory freed lately back to the system: the kernel forgetting many inodes at once
/// (memory pressure, drop_caches) and the listings of large folders coming and going free
/// many blocks, which the allocator keeps otherwise, so the daemon's resident size would
/// only grow. A few milliseconds: for after work that freed much, not for every request.
pub fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::Bounded;

    #[test]
    fn the_least_recently_used_go_first_and_the_newest_always_stays() {
        let mut map = Bounded::new(10);
        map.insert("a", 1, 4);
        map.insert("b", 2, 4);
        assert_eq!(map.get("a"), Some(&1));
        map.insert("c", 3, 4);
        assert!(map.contains("a") && map.contains("c") && !map.contains("b"), "b was used last longest ago");
        map.insert("d", 4, 50);
        assert_eq!(map.len(), 1, "one entry heavier than the bound stays alone");
        assert_eq!(map.peek("d"), Some(&4));
        assert_eq!(map.insert("d", 5, 1), Some(4));
        assert_eq!(map.remove("d"), Some(5));
        assert!(map.is_empty());
    }
}
