//! Scatter/gather: one request's partitions sent to their owner shards and the answers put back.
//!
//! Handlers that touch partitions (Produce, Fetch, ListOffsets, DeleteRecords, DescribeLogDirs) all do
//! the same thing: resolve each partition of the request, group them by owner shard ([`Scatter::add`]),
//! send one cross-shard call per owner, all at once ([`Scatter::gather`]), and write every answer
//! back into the slot its partition has in the response (a `[topic][partition]` grid or a flat list,
//! see [`Slots`]). An owner that cannot answer (it is stopping, or its reply does not match the
//! call) gives each of its partitions the handler's `failed` outcome, typically
//! `NOT_LEADER_OR_FOLLOWER`, which clients retry after refreshing metadata.

use std::collections::BTreeMap;

use spate_core::runtime::ShardId;

use super::messages::{ShardReply, ShardRequest};
use super::{join_all, ShardContext};

/// Where answers go back: a `[topic][partition]` grid (slot `(topic, partition)`) or a flat list
/// (slot `index`).
pub trait Slots<K, O> {
    /// Stores `outcome` at `slot`.
    fn put(&mut self, slot: K, outcome: O);
}

impl<O> Slots<(usize, usize), O> for [Vec<O>] {
    fn put(&mut self, (topic, partition): (usize, usize), outcome: O) {
        self[topic][partition] = outcome;
    }
}

impl<O> Slots<usize, O> for [O] {
    fn put(&mut self, index: usize, outcome: O) {
        self[index] = outcome;
    }
}

/// A request's partitions grouped by owner shard: for each owner, the slots the answers go to and
/// the part to send for each, in the same order.
pub struct Scatter<K, P> {
    groups: BTreeMap<ShardId, (Vec<K>, Vec<P>)>,
}

impl<K, P> Default for Scatter<K, P> {
    fn default() -> Self {
        Scatter { groups: BTreeMap::new() }
    }
}

impl<K, P> Scatter<K, P> {
    /// No partitions yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `part` to `owner`; its answer goes to `slot`.
    pub fn add(&mut self, owner: ShardId, slot: K, part: P) {
        let group = self.groups.entry(owner).or_default();
        group.0.push(slot);
        group.1.push(part);
    }

    /// Whether no partition was added.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Sends each owner one request, built by `request` from its parts (in the order they were
    /// added), all owners at once (a call to this shard runs directly); `outcomes` takes the
    /// per-part answers out of the owner's reply (`None`: not the reply expected). Each answer is
    /// stored in its slot of `results`; an owner that failed, or answered with another reply or
    /// another number of outcomes, gives each of its slots `failed`. Slots of partitions never
    /// added are left as they are.
    pub async fn gather<O, S>(
        self,
        context: &ShardContext,
        results: &mut S,
        mut request: impl FnMut(Vec<P>) -> ShardRequest,
        mut outcomes: impl FnMut(ShardReply) -> Option<Vec<O>>,
        failed: O,
    ) where
        O: Clone,
        S: Slots<K, O> + ?Sized,
    {
        let mut slots = Vec::with_capacity(self.groups.len());
        let mut calls = Vec::with_capacity(self.groups.len());
        for (owner, (group_slots, parts)) in self.groups {
            slots.push(group_slots);
            calls.push(context.call(owner, request(parts)));
        }
        for (group_slots, reply) in slots.into_iter().zip(join_all(calls).await) {
            let count = group_slots.len();
            let answers = match reply.ok().and_then(&mut outcomes) {
                Some(answers) if answers.len() == count => answers,
                _ => vec![failed.clone(); count],
            };
            for (slot, answer) in group_slots.into_iter().zip(answers) {
                results.put(slot, answer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_grid_cells_or_list_entries() {
        let mut grid = vec![vec![0; 2], vec![0; 3]];
        grid[..].put((1, 2), 7);
        grid[..].put((0, 0), 5);
        assert_eq!(grid, vec![vec![5, 0], vec![0, 0, 7]]);
        let mut list = vec![0; 3];
        list[..].put(1, 9);
        assert_eq!(list, vec![0, 9, 0]);
    }

    #[test]
    fn parts_are_grouped_by_owner_in_the_order_added() {
        let mut scatter = Scatter::new();
        assert!(scatter.is_empty());
        scatter.add(ShardId::new(1), (0, 0), 'a');
        scatter.add(ShardId::new(0), (0, 1), 'b');
        scatter.add(ShardId::new(1), (1, 0), 'c');
        assert!(!scatter.is_empty());
        let groups: Vec<_> = scatter.groups.into_iter().collect();
        assert_eq!(
            groups,
            vec![
                (ShardId::new(0), (vec![(0, 1)], vec!['b'])),
                (ShardId::new(1), (vec![(0, 0), (1, 0)], vec!['a', 'c']))
            ]
        );
    }
}
