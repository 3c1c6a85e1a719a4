//! The server-side assignors of consumer-protocol groups (KIP-848's `ServerAssignor`): `uniform`
//! (the default: balanced and sticky) and `range` (consecutive ranges per topic, like the classic
//! client-side RangeAssignor). Both are pure functions of the members' subscriptions, the topics'
//! partition counts and (for `uniform`) the previous target assignment.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::member::Assignment;

/// The default assignor's name.
pub const UNIFORM: &str = "uniform";
/// The range assignor's name.
pub const RANGE: &str = "range";

/// Whether `name` is an assignor this coordinator has.
pub fn is_known(name: &str) -> bool {
    name == UNIFORM || name == RANGE
}

/// What an assignor sees.
pub struct AssignmentInput<'a> {
    /// Every member and the topic ids it subscribes to.
    pub members: BTreeMap<&'a str, BTreeSet<Uuid>>,
    /// Partition counts of the subscribed topics that exist.
    pub partition_counts: BTreeMap<Uuid, i32>,
    /// The previous target assignment, by member id.
    pub previous: &'a HashMap<String, Assignment>,
}

/// The target assignment by `assignor` (unknown names fall back to `uniform`).
pub fn assign(assignor: &str, input: &AssignmentInput) -> HashMap<String, Assignment> {
    match assignor {
        RANGE => range(input),
        _ => uniform(input),
    }
}

fn range(input: &AssignmentInput) -> HashMap<String, Assignment> {
    let mut result: HashMap<String, Assignment> =
        input.members.keys().map(|id| (id.to_string(), Assignment::new())).collect();
    for (topic, count) in &input.partition_counts {
        let subscribers: Vec<&str> =
            input.members.iter().filter(|(_, topics)| topics.contains(topic)).map(|(id, _)| *id).collect();
        if subscribers.is_empty() {
            continue;
        }
        let count = (*count).max(0) as usize;
        let (base, extra) = (count / subscribers.len(), count % subscribers.len());
        let mut next = 0;
        for (index, member) in subscribers.iter().enumerate() {
            let take = base + usize::from(index < extra);
            let partitions: BTreeSet<i32> = (next..next + take).map(|p| p as i32).collect();
            next += take;
            if !partitions.is_empty() {
                result.entry(member.to_string()).or_default().insert(*topic, partitions);
            }
        }
    }
    result
}

/// Balanced first, sticky second: the per-member counts come from a greedy fill (the most
/// constrained partitions first, each to the least loaded eligible member, ties to its previous
/// owner); then each member keeps as many of its previous partitions as its count allows, and the
/// rest go to members below their count.
fn uniform(input: &AssignmentInput) -> HashMap<String, Assignment> {
    let mut previous_owner: HashMap<(Uuid, i32), &str> = HashMap::new();
    for (member, assignment) in input.previous {
        if let Some((id, _)) = input.members.get_key_value(member.as_str()) {
            for (topic, partitions) in assignment {
                for partition in partitions {
                    previous_owner.insert((*topic, *partition), id);
                }
            }
        }
    }
    let eligible = |topic: &Uuid| -> Vec<&str> {
        input.members.iter().filter(|(_, topics)| topics.contains(topic)).map(|(id, _)| *id).collect()
    };
    let mut partitions: Vec<((Uuid, i32), Vec<&str>)> = Vec::new();
    for (topic, count) in &input.partition_counts {
        let members = eligible(topic);
        if members.is_empty() {
            continue;
        }
        for partition in 0..*count {
            partitions.push(((*topic, partition), members.clone()));
        }
    }
    partitions.sort_by_key(|(key, members)| (members.len(), *key));
    let sticky_count = |member: &str| previous_owner.values().filter(|owner| **owner == member).count();
    // Pass 1: how many partitions each member gets.
    let mut quota: BTreeMap<&str, usize> = input.members.keys().map(|id| (*id, 0)).collect();
    for (key, members) in &partitions {
        let chosen = members.iter().min_by_key(|member| {
            let load = quota.get(**member).copied().unwrap_or(0);
            let not_previous = previous_owner.get(key) != Some(*member);
            (load, not_previous, std::cmp::Reverse(sticky_count(member)), **member)
        });
        if let Some(member) = chosen {
            *quota.entry(member).or_default() += 1;
        }
    }
    let quota_of = |member: &str| quota.get(member).copied().unwrap_or(0);
    // Pass 2: keep previous partitions within the quota, then fill.
    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    let mut result: HashMap<String, Assignment> =
        input.members.keys().map(|id| (id.to_string(), Assignment::new())).collect();
    let mut unassigned = Vec::new();
    for (key, members) in &partitions {
        match previous_owner.get(key) {
            Some(owner) if members.contains(owner) && load.get(owner).copied().unwrap_or(0) < quota_of(owner) => {
                *load.entry(owner).or_default() += 1;
                result.entry(owner.to_string()).or_default().entry(key.0).or_default().insert(key.1);
            }
            _ => unassigned.push((key, members)),
        }
    }
    for (key, members) in unassigned {
        let below = members.iter().filter(|m| load.get(**m).copied().unwrap_or(0) < quota_of(m));
        let chosen = below
            .min_by_key(|m| (load.get(**m).copied().unwrap_or(0), **m))
            .or_else(|| members.iter().min_by_key(|m| (load.get(**m).copied().unwrap_or(0), **m)));
        if let Some(member) = chosen {
            *load.entry(member).or_default() += 1;
            result.entry(member.to_string()).or_default().entry(key.0).or_default().insert(key.1);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(assignment: &Assignment) -> usize {
        assignment.values().map(BTreeSet::len).sum()
    }

    fn input<'a>(
        members: &[(&'a str, &[u128])],
        topics: &[(u128, i32)],
        previous: &'a HashMap<String, Assignment>,
    ) -> AssignmentInput<'a> {
        AssignmentInput {
            members: members
                .iter()
                .map(|(id, subscribed)| (*id, subscribed.iter().map(|t| Uuid::from_u128(*t)).collect()))
                .collect(),
            partition_counts: topics.iter().map(|(t, n)| (Uuid::from_u128(*t), *n)).collect(),
            previous,
        }
    }

    /// Every partition exactly once.
    fn assert_covers(result: &HashMap<String, Assignment>, topics: &[(u128, i32)]) {
        let mut seen = BTreeSet::new();
        for assignment in result.values() {
            for (topic, partitions) in assignment {
                for partition in partitions {
                    assert!(seen.insert((*topic, *partition)), "{topic} {partition} twice");
                }
            }
        }
        let total: i32 = topics.iter().map(|(_, n)| n).sum();
        assert_eq!(seen.len(), total as usize);
    }

    #[test]
    fn uniform_is_balanced_and_sticky() {
        let none = HashMap::new();
        let topics = [(1, 6)];
        let first = assign(UNIFORM, &input(&[("a", &[1]), ("b", &[1])], &topics, &none));
        assert_covers(&first, &topics);
        assert_eq!((count(&first["a"]), count(&first["b"])), (3, 3));
        let second = assign(UNIFORM, &input(&[("a", &[1]), ("b", &[1]), ("c", &[1])], &topics, &first));
        assert_covers(&second, &topics);
        for member in ["a", "b", "c"] {
            assert_eq!(count(&second[member]), 2, "{member}");
        }
        for member in ["a", "b"] {
            let kept = &second[member][&Uuid::from_u128(1)];
            assert!(kept.is_subset(&first[member][&Uuid::from_u128(1)]), "{member} only loses partitions");
        }
    }

    #[test]
    fn uniform_with_different_subscriptions() {
        let none = HashMap::new();
        let topics = [(1, 4), (2, 2)];
        let result = assign(UNIFORM, &input(&[("a", &[1]), ("b", &[1, 2])], &topics, &none));
        assert_covers(&result, &topics);
        assert!(!result["a"].contains_key(&Uuid::from_u128(2)));
        assert_eq!((count(&result["a"]), count(&result["b"])), (3, 3));
    }

    #[test]
    fn range_gives_consecutive_partitions() {
        let none = HashMap::new();
        let topics = [(1, 5)];
        let result = assign(RANGE, &input(&[("a", &[1]), ("b", &[1])], &topics, &none));
        assert_covers(&result, &topics);
        assert_eq!(result["a"][&Uuid::from_u128(1)], BTreeSet::from([0, 1, 2]));
        assert_eq!(result["b"][&Uuid::from_u128(1)], BTreeSet::from([3, 4]));
    }
}
