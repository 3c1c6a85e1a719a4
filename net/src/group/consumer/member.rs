//! One member of a consumer-protocol group and its reconciliation towards its target assignment
//! (KIP-848's current-assignment state machine). The coordinator decides the target; the member
//! converges on it one step per heartbeat, and a partition reaches its new owner only once the
//! previous owner stopped reporting it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Where a member stands in its reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// It owns its target assignment (or all of it that is free) at the target epoch.
    Stable,
    /// It must revoke partitions before it moves on; it keeps its epoch meanwhile.
    UnrevokedPartitions,
    /// It is at the target epoch but waits for partitions other members have not released yet.
    UnreleasedPartitions,
}

/// A member of a consumer-protocol group.
#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    /// Sorted, without duplicates.
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout: Duration,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// What the member may own now (what the last answer gave it).
    pub assigned: Assignment,
    /// What it still owns and must give up.
    pub pending_revocation: Assignment,
    /// Removed from the group when no heartbeat arrives by then.
    pub session_deadline: Instant,
    /// Removed from the group if it still holds partitions to revoke by then.
    pub revocation_deadline: Option<Instant>,
}

impl Member {
    /// A member joining at epoch 0 with nothing assigned.
    pub fn new(member_id: String, client_id: String, now: Instant, session_timeout: Duration) -> Member {
        Member {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id,
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            rebalance_timeout: Duration::from_secs(300),
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline: now + session_timeout,
            revocation_deadline: None,
        }
    }

    /// Every partition the member may still hold: assigned and pending revocation.
    pub fn held(&self) -> impl Iterator<Item = (Uuid, i32)> + '_ {
        let assigned = self.assigned.iter().flat_map(|(topic, parts)| parts.iter().map(move |p| (*topic, *p)));
        let revoking =
            self.pending_revocation.iter().flat_map(|(topic, parts)| parts.iter().map(move |p| (*topic, *p)));
        assigned.chain(revoking)
    }

    /// A static member left for now (epoch -2): it keeps its assignment until it comes back under
    /// a new member id or its session ends.
    pub fn set_static_leave(&mut self) {
        self.set_epoch(-2);
    }

    fn set_epoch(&mut self, epoch: i32) {
        if epoch != self.epoch {
            self.previous_epoch = self.epoch;
            self.epoch = epoch;
        }
    }

    /// Moves the member one step towards `target` at `target_epoch`. `owned`: the partitions the
    /// member reported in this heartbeat (`None`: not reported, so it may still own anything).
    /// `is_free`: whether no other member holds a partition.
    pub fn reconcile(
        &mut self,
        target: &Assignment,
        target_epoch: i32,
        owned: Option<&Assignment>,
        is_free: &dyn Fn(Uuid, i32) -> bool,
    ) {
        match self.state {
            MemberState::Stable if self.epoch == target_epoch => {}
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                let epoch = self.epoch;
                self.next_step(epoch, target, target_epoch, owned, is_free);
            }
            MemberState::UnrevokedPartitions => {
                if !owns_any(owned, &self.pending_revocation) {
                    let epoch = self.epoch + 1;
                    self.next_step(epoch.min(target_epoch), target, target_epoch, owned, is_free);
                }
            }
        }
    }

    fn next_step(
        &mut self,
        epoch: i32,
        target: &Assignment,
        target_epoch: i32,
        owned: Option<&Assignment>,
        is_free: &dyn Fn(Uuid, i32) -> bool,
    ) {
        let mut kept = Assignment::new();
        let mut revoking = Assignment::new();
        let mut adding = Assignment::new();
        let mut unreleased = false;
        let topics: BTreeSet<Uuid> = target.keys().chain(self.assigned.keys()).copied().collect();
        let empty = BTreeSet::new();
        for topic in topics {
            let wanted = target.get(&topic).unwrap_or(&empty);
            let current = self.assigned.get(&topic).unwrap_or(&empty);
            let keep: BTreeSet<i32> = current.intersection(wanted).copied().collect();
            let revoke: BTreeSet<i32> = current.difference(&keep).copied().collect();
            let mut add = BTreeSet::new();
            for partition in wanted.difference(&keep) {
                if is_free(topic, *partition) {
                    add.insert(*partition);
                } else {
                    unreleased = true;
                }
            }
            insert_non_empty(&mut kept, topic, keep);
            insert_non_empty(&mut revoking, topic, revoke);
            insert_non_empty(&mut adding, topic, add);
        }
        if !revoking.is_empty() && owns_any(owned, &revoking) {
            // The member keeps its epoch until it confirms the revocation.
            self.state = MemberState::UnrevokedPartitions;
            self.set_epoch(epoch);
            self.assigned = kept;
            self.pending_revocation = revoking;
            return;
        }
        for (topic, partitions) in adding {
            kept.entry(topic).or_default().extend(partitions);
        }
        self.state = if unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
        self.set_epoch(target_epoch);
        self.assigned = kept;
        self.pending_revocation = Assignment::new();
    }
}

fn insert_non_empty(into: &mut Assignment, topic: Uuid, partitions: BTreeSet<i32>) {
    if !partitions.is_empty() {
        into.insert(topic, partitions);
    }
}

/// Whether `owned` holds any partition of `partitions`; an unreported `owned` may hold anything.
fn owns_any(owned: Option<&Assignment>, partitions: &Assignment) -> bool {
    let Some(owned) = owned else { return true };
    partitions.iter().any(|(topic, parts)| owned.get(topic).is_some_and(|held| !held.is_disjoint(parts)))
}

/// Whether every partition of `owned` is in `assigned` (`None`: not known, so no).
pub fn is_subset(owned: Option<&Assignment>, assigned: &Assignment) -> bool {
    let Some(owned) = owned else { return false };
    owned.iter().all(|(topic, parts)| assigned.get(topic).is_some_and(|held| parts.is_subset(held)) || parts.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic() -> Uuid {
        Uuid::from_u128(1)
    }

    fn parts(partitions: &[i32]) -> Assignment {
        Assignment::from([(topic(), partitions.iter().copied().collect())])
    }

    #[test]
    fn a_partition_moves_only_after_its_revocation() {
        let now = Instant::now();
        let mut member = Member::new("a".into(), "c".into(), now, Duration::from_secs(45));
        member.reconcile(&parts(&[0, 1, 2, 3]), 1, Some(&Assignment::new()), &|_, _| true);
        assert_eq!((member.epoch, member.state), (1, MemberState::Stable));
        assert_eq!(member.assigned, parts(&[0, 1, 2, 3]));
        // The target shrinks at epoch 2: partitions 2 and 3 must be revoked first.
        member.reconcile(&parts(&[0, 1]), 2, Some(&parts(&[0, 1, 2, 3])), &|_, _| true);
        assert_eq!((member.epoch, member.state), (1, MemberState::UnrevokedPartitions));
        assert_eq!(member.assigned, parts(&[0, 1]));
        assert_eq!(member.pending_revocation, parts(&[2, 3]));
        // Still reporting 3: nothing moves.
        member.reconcile(&parts(&[0, 1]), 2, Some(&parts(&[0, 1, 3])), &|_, _| true);
        assert_eq!(member.state, MemberState::UnrevokedPartitions);
        // Revoked: the member reaches epoch 2.
        member.reconcile(&parts(&[0, 1]), 2, Some(&parts(&[0, 1])), &|_, _| true);
        assert_eq!((member.epoch, member.state), (2, MemberState::Stable));
        assert!(member.pending_revocation.is_empty());
    }

    #[test]
    fn partitions_held_elsewhere_wait() {
        let now = Instant::now();
        let mut member = Member::new("b".into(), "c".into(), now, Duration::from_secs(45));
        member.reconcile(&parts(&[2, 3]), 2, Some(&Assignment::new()), &|_, p| p != 3);
        assert_eq!((member.epoch, member.state), (2, MemberState::UnreleasedPartitions));
        assert_eq!(member.assigned, parts(&[2]));
        member.reconcile(&parts(&[2, 3]), 2, Some(&parts(&[2])), &|_, _| true);
        assert_eq!((member.epoch, member.state), (2, MemberState::Stable));
        assert_eq!(member.assigned, parts(&[2, 3]));
    }

    #[test]
    fn subsets() {
        assert!(is_subset(Some(&parts(&[1])), &parts(&[1, 2])));
        assert!(!is_subset(Some(&parts(&[3])), &parts(&[1, 2])));
        assert!(!is_subset(None, &parts(&[1, 2])));
    }
}
