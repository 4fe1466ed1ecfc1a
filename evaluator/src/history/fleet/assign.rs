//! Which live member owns which rule group: rendezvous (highest random
//! weight) hashing. Every member computes the same answer from the same
//! list of members, without talking to the others, and a member joining or
//! leaving moves only the groups it wins or held (about 1/n of them).

use std::collections::BTreeMap;

use crate::hash::StableHasher;
use std::hash::Hasher;

/// The weight of `member` for `group`: FNV-1a of both (the crate's stable
/// hash, so every process and version agrees), finished with the
/// SplitMix64 mixer, since FNV-1a alone barely changes its high bits for
/// keys that differ in their last bytes and the highest weight would then
/// favour some members.
pub fn weight(member: &str, group: &str) -> u64 {
    let mut h = StableHasher::default();
    h.write(member.as_bytes());
    h.write(&[0]);
    h.write(group.as_bytes());
    mix(h.finish())
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The member of `members` that owns `group`: the one of highest weight
/// (ties, which need a 64-bit collision, go to the smallest id). `None`
/// without members.
pub fn owner<'m>(members: &'m [String], group: &str) -> Option<&'m str> {
    members
        .iter()
        .map(|m| (weight(m, group), std::cmp::Reverse(m.as_str())))
        .max()
        .map(|(_, std::cmp::Reverse(m))| m)
}

/// The owner of each of `groups` among `members`.
pub fn assign<'g>(members: &[String], groups: &[&'g str]) -> BTreeMap<&'g str, String> {
    groups
        .iter()
        .filter_map(|g| owner(members, g).map(|m| (*g, m.to_string())))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("host-{i}/{}/x7k{i}", 100 + i))
            .collect()
    }

    fn groups(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("rules/app.yaml/group-{i}"))
            .collect()
    }

    fn counts(assignment: &BTreeMap<&str, String>) -> BTreeMap<String, usize> {
        let mut c = BTreeMap::new();
        for m in assignment.values() {
            *c.entry(m.clone()).or_default() += 1;
        }
        c
    }

    #[test]
    fn every_group_has_exactly_one_owner_and_every_member_computes_the_same() {
        let m = members(3);
        let g = groups(50);
        let refs: Vec<&str> = g.iter().map(String::as_str).collect();
        let a = assign(&m, &refs);
        assert_eq!(a.len(), 50);
        let mut reversed = m.clone();
        reversed.reverse();
        assert_eq!(
            assign(&reversed, &refs),
            a,
            "the order of the list does not matter"
        );
        assert!(assign(&[], &refs).is_empty());
    }

    #[test]
    fn groups_are_spread_evenly_over_the_members() {
        let g = groups(3000);
        let refs: Vec<&str> = g.iter().map(String::as_str).collect();
        for n in [2, 3, 4, 7] {
            let c = counts(&assign(&members(n), &refs));
            let fair = 3000 / n;
            assert_eq!(c.len(), n, "every member owns groups");
            for (member, owned) in c {
                // Binomial spread: within ±20% of the fair share at this size.
                assert!(
                    owned * 10 >= fair * 8 && owned * 10 <= fair * 12,
                    "{member} owns {owned} of 3000 with {n} members (fair {fair})"
                );
            }
        }
    }

    #[test]
    fn a_member_joining_takes_only_groups_from_the_others_and_about_its_share() {
        let g = groups(1000);
        let refs: Vec<&str> = g.iter().map(String::as_str).collect();
        let before = assign(&members(3), &refs);
        let after = assign(&members(4), &refs);
        let joined = &members(4)[3];
        let moved: Vec<&&str> = refs.iter().filter(|g| before[**g] != after[**g]).collect();
        assert!(
            moved.iter().all(|g| &after[**g] == joined),
            "a group moves only to the new member"
        );
        assert!(
            (200..=300).contains(&moved.len()),
            "about a quarter moves: {}",
            moved.len()
        );
    }

    #[test]
    fn a_member_leaving_moves_only_its_own_groups() {
        let g = groups(1000);
        let refs: Vec<&str> = g.iter().map(String::as_str).collect();
        let all = members(4);
        let before = assign(&all, &refs);
        let gone = all[1].clone();
        let rest: Vec<String> = all.into_iter().filter(|m| *m != gone).collect();
        let after = assign(&rest, &refs);
        for g in &refs {
            if before[*g] != gone {
                assert_eq!(before[*g], after[*g], "{g} stays where it was");
            } else {
                assert_ne!(after[*g], gone);
            }
        }
    }
}
