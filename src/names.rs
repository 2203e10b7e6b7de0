//! The snapshot's persistent name table: names spread by hash over a fixed number of
//! shards, each shard one allocation of open-addressed slots that keep a name's hash
//! beside its entry. A change copies the shards it touches and shares the others; a
//! lookup reads the shard pointer, one run of slots and the entry it wants (a
//! hashbrown table per shard kept its header, control bytes and buckets apart: three
//! cache misses per query where this has one).

use std::hash::BuildHasher;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

/// What the table stores: anything that knows its lowercase wire-format name.
pub trait Named {
    /// How many bytes from its start a lookup reads (prefetched together).
    const HOT_BYTES: usize = 64;

    fn name(&self) -> &[u8];
}

/// Names are spread over this many shards; a change copies only the shards of the
/// names it touched.
const SHARD_BITS: u32 = 12;

#[inline]
fn hash_of(name: &[u8]) -> u64 {
    FxBuildHasher.hash_one(name)
}

/// Bits 40–51 pick the shard, the low bits the slot within it.
#[inline]
fn shard_of(hash: u64) -> usize {
    ((hash >> 40) & ((1 << SHARD_BITS) - 1)) as usize
}

struct Slot<T> {
    hash: u64,
    entry: Option<Arc<T>>,
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Slot { hash: self.hash, entry: self.entry.clone() }
    }
}

/// One shard: slot 0 counts the names (in `hash`), the other slots (a power of two,
/// at most three quarters used) hold them with linear probing.
struct Shard<T>(Arc<[Slot<T>]>);

impl<T> Clone for Shard<T> {
    fn clone(&self) -> Self {
        Shard(self.0.clone())
    }
}

impl<T> Shard<T> {
    fn with_capacity(names: usize) -> Self {
        let slots = (names * 4 / 3 + 1).next_power_of_two().max(2);
        let header = Slot { hash: 0, entry: None };
        Shard(
            std::iter::once(header)
                .chain((0..slots).map(|_| Slot { hash: 0, entry: None }))
                .collect(),
        )
    }

    fn len(&self) -> usize {
        self.0[0].hash as usize
    }

    fn mask(&self) -> usize {
        self.0.len() - 2
    }

    fn entries(&self) -> impl Iterator<Item = &Arc<T>> {
        self.0[1..].iter().filter_map(|s| s.entry.as_ref())
    }
}

impl<T: Named> Shard<T> {
    /// Where the probe from `hash`'s home reaches the first slot with that hash
    /// whose entry `is` accepts (None at the first empty slot).
    #[inline]
    fn position(&self, hash: u64, is: impl Fn(&T) -> bool) -> Option<usize> {
        let slots = &self.0[1..];
        let mask = self.mask();
        let mut at = hash as usize & mask;
        loop {
            let slot = &slots[at];
            let entry = slot.entry.as_ref()?;
            if slot.hash == hash && is(entry) {
                return Some(at);
            }
            at = (at + 1) & mask;
        }
    }

    #[inline]
    fn find(&self, hash: u64, name: &[u8]) -> Option<&Arc<T>> {
        let at = self.position(hash, |entry| entry.name() == name)?;
        self.0[1 + at].entry.as_ref()
    }

    /// The entry of the first slot with this hash, without reading any entry.
    #[inline]
    fn entry_by_hash(&self, hash: u64) -> Option<&Arc<T>> {
        let at = self.position(hash, |_| true)?;
        self.0[1 + at].entry.as_ref()
    }

    /// Room for `more` names without growing again (copies when shared).
    fn reserve(&mut self, more: usize) {
        let wanted = self.len() + more;
        if wanted * 4 <= self.mask().saturating_add(1) * 3 {
            return;
        }
        let mut grown = Shard::with_capacity(wanted);
        let slots = Arc::get_mut(&mut grown.0).expect("just made");
        for slot in self.0[1..].iter().filter(|s| s.entry.is_some()) {
            place(&mut slots[1..], slot.clone());
        }
        slots[0].hash = self.len() as u64;
        *self = grown;
    }

    fn insert(&mut self, hash: u64, entry: Arc<T>) {
        self.reserve(1);
        let slots = Arc::make_mut(&mut self.0);
        place(&mut slots[1..], Slot { hash, entry: Some(entry) });
        slots[0].hash += 1;
    }

    /// Removes a name; later slots of its run move back so no lookup stops early.
    fn remove(&mut self, hash: u64, name: &[u8]) -> bool {
        let Some(at) = self.position(hash, |entry| entry.name() == name) else { return false };
        let mask = self.mask();
        let all = Arc::make_mut(&mut self.0);
        all[0].hash -= 1;
        let slots = &mut all[1..];
        slots[at].entry = None;
        let mut hole = at;
        let mut next = (hole + 1) & mask;
        while slots[next].entry.is_some() {
            let home = slots[next].hash as usize & mask;
            // Move it into the hole unless its home lies after the hole (cyclically).
            let stays = if hole <= next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if !stays {
                slots.swap(hole, next);
                hole = next;
            }
            next = (next + 1) & mask;
        }
        true
    }
}

#[inline]
fn prefetch<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// Puts a slot at the first free place from its home (the caller keeps room).
fn place<T>(slots: &mut [Slot<T>], slot: Slot<T>) {
    let mask = slots.len() - 1;
    let mut at = slot.hash as usize & mask;
    while slots[at].entry.is_some() {
        at = (at + 1) & mask;
    }
    slots[at] = slot;
}

/// An immutable map from wire-format name to entry; [`NameTable::update`] makes a new
/// one that shares every untouched shard with the old.
pub struct NameTable<T> {
    shards: Arc<[Shard<T>]>,
    len: usize,
}

impl<T> Clone for NameTable<T> {
    fn clone(&self) -> Self {
        NameTable { shards: self.shards.clone(), len: self.len }
    }
}

impl<T: Named> Default for NameTable<T> {
    fn default() -> Self {
        // Every shard starts as the same empty allocation; the first insert copies it.
        let empty = Shard::with_capacity(0);
        NameTable { shards: (0..1usize << SHARD_BITS).map(|_| empty.clone()).collect(), len: 0 }
    }
}

impl<T: Named> NameTable<T> {
    #[inline]
    pub fn get(&self, name: &[u8]) -> Option<&T> {
        let hash = hash_of(name);
        self.shards[shard_of(hash)].find(hash, name).map(|e| &**e)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Starts loading the slots a lookup of `name` reads first and returns the
    /// name's hash. For a batch of lookups: this for every name, then
    /// [`NameTable::prefetch_entry`] for every hash, then the lookups wait for memory
    /// about once instead of twice per name.
    #[inline]
    pub fn prefetch_slots(&self, name: &[u8]) -> u64 {
        let hash = hash_of(name);
        let shard = &self.shards[shard_of(hash)];
        prefetch(&shard.0[1 + (hash as usize & shard.mask())]);
        hash
    }

    /// Starts loading the entry a lookup will most likely find (by hash alone, so
    /// that no entry is read yet): the cache lines of its hot bytes.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        if let Some(entry) = self.shards[shard_of(hash)].entry_by_hash(hash) {
            let start = Arc::as_ptr(entry).cast::<u8>();
            let last = T::HOT_BYTES.max(1) - 1;
            for offset in (0..last).step_by(64).chain([last]) {
                prefetch(start.wrapping_add(offset));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().flat_map(|s| s.entries().map(|e| &**e))
    }

    /// A new table with some names replaced (None removes one); every shard no edit
    /// touches is shared with `self`.
    pub fn update(&self, edits: impl IntoIterator<Item = (Box<[u8]>, Option<T>)>) -> Self {
        let mut shards: Vec<Shard<T>> = self.shards.to_vec();
        let mut len = self.len;
        let edits: Vec<(u64, Box<[u8]>, Option<T>)> =
            edits.into_iter().map(|(name, entry)| (hash_of(&name), name, entry)).collect();
        if edits.len() > shards.len() {
            // A large batch (a first listing) grows each shard once, not by doublings.
            let mut added = vec![0usize; shards.len()];
            for (hash, _, entry) in &edits {
                added[shard_of(*hash)] += usize::from(entry.is_some());
            }
            for (shard, added) in shards.iter_mut().zip(added) {
                shard.reserve(added);
            }
        }
        for (hash, name, entry) in edits {
            let shard = &mut shards[shard_of(hash)];
            if shard.remove(hash, &name) {
                len -= 1;
            }
            if let Some(entry) = entry {
                debug_assert_eq!(entry.name(), &*name);
                shard.insert(hash, Arc::new(entry));
                len += 1;
            }
        }
        NameTable { shards: shards.into(), len }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, PartialEq)]
    struct Entry(Box<[u8]>, u32);

    impl Named for Entry {
        fn name(&self) -> &[u8] {
            &self.0
        }
    }

    fn name(i: u32) -> Box<[u8]> {
        let label = format!("n{i}");
        let mut wire = vec![label.len() as u8];
        wire.extend_from_slice(label.as_bytes());
        wire.push(0);
        wire.into()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any sequence of batches of inserts, replacements and removals: the table
        /// agrees with a HashMap after every batch, and the table before the batch
        /// still holds exactly what it held.
        #[test]
        fn agrees_with_a_hash_map(batches in prop::collection::vec(
            prop::collection::vec((0u32..600, prop::option::of(any::<u32>())), 0..1500), 1..6)) {
            let mut table = NameTable::<Entry>::default();
            let mut map: HashMap<Box<[u8]>, u32> = HashMap::new();
            for batch in batches {
                let before = table.clone();
                let before_map = map.clone();
                let edits: Vec<_> = batch.iter().map(|(i, v)| (name(*i), v.map(|v| Entry(name(*i), v)))).collect();
                table = table.update(edits);
                for (i, v) in &batch {
                    match v {
                        Some(v) => map.insert(name(*i), *v),
                        None => map.remove(&name(*i)),
                    };
                }
                for (t, m) in [(&table, &map), (&before, &before_map)] {
                    prop_assert_eq!(t.len(), m.len());
                    prop_assert_eq!(t.iter().count(), m.len());
                    for i in 0..600 {
                        prop_assert_eq!(t.get(&name(i)).map(|e| e.1), m.get(&name(i)).copied());
                    }
                }
            }
        }
    }

    #[test]
    fn removal_inside_a_wrapped_run_keeps_every_name_reachable() {
        // Every name in one shard, so runs of probes are long and wrap around.
        let mut table = NameTable::<Entry>::default();
        let same_shard: Vec<u32> =
            (0..u32::MAX).filter(|i| shard_of(hash_of(&name(*i))) == 0).take(200).collect();
        table = table.update(same_shard.iter().map(|i| (name(*i), Some(Entry(name(*i), *i)))));
        for (k, removed) in same_shard.iter().enumerate().filter(|(k, _)| k % 3 == 0) {
            table = table.update([(name(*removed), None)]);
            for (j, i) in same_shard.iter().enumerate() {
                let gone = j % 3 == 0 && j <= k;
                assert_eq!(
                    table.get(&name(*i)).is_none(),
                    gone,
                    "name {i} after removing {removed}"
                );
            }
        }
        assert_eq!(table.len(), 200 - 67);
    }
}
