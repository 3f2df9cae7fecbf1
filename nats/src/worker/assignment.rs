//! Who should own which partition, and whether a lease still holds: pure
//! functions of what a replica has observed and of its own monotonic clock.
//!
//! No two machines' clocks are ever compared. A replica judges another
//! replica alive while that replica's heartbeat (the sequence number of its
//! member subject) keeps changing, as measured by the observer's own
//! `Instant`s; it judges *itself* able to work while its own last
//! successful heartbeat is younger than the TTL minus a margin. So the
//! holder always stops before any observer may take over.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// The rendezvous (highest-random-weight) choice: every replica computes
/// the same owner from the same member list, and a member joining or
/// leaving moves only the partitions it wins or held.
pub fn desired_owner<'a>(
    group: &str,
    partition: u16,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .max_by_key(|member| (weight(group, partition, member), *member))
}

fn weight(group: &str, partition: u16, member: &str) -> u64 {
    // FNV-1a over the three parts, then a SplitMix64 finalizer: FNV alone
    // mixes the last bytes poorly, which skews the winners.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(group.as_bytes());
    eat(&partition.to_be_bytes());
    eat(member.as_bytes());
    let mut z = hash.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What an observer knows about one member's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The stream sequence of its latest member record.
    pub seq: u64,
    /// When the observer first saw that sequence (its own clock).
    pub since: Instant,
    /// The member takes partitions (false while it starts or drains).
    pub accepting: bool,
    /// The member said it stopped (graceful shutdown).
    pub stopped: bool,
}

/// One partition's lease as last read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseState {
    /// Stream sequence of the lease record; 0 when never written.
    pub seq: u64,
    pub owner: Option<String>,
    /// The last owner gave it back after settling or handing back
    /// (nak, in order) everything it held.
    pub clean: bool,
}

/// What a replica does about one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// It is ours and should stay ours.
    Hold,
    /// Take it with a compare-and-set on `expected`. `clean`: the last
    /// owner released it properly, so there is nothing in flight to wait
    /// for.
    Acquire { expected: u64, clean: bool },
    /// It is ours but another member should have it: settle or hand back
    /// what we hold, then release it.
    GiveBack,
    /// Not ours to touch (yet).
    Wait,
}

/// The members a replica has observed, and since when it has been
/// watching (a member it never saw is treated as seen at that moment).
#[derive(Debug, Clone)]
pub struct View<'a> {
    pub me: &'a str,
    /// Whether this replica takes partitions now.
    pub me_accepting: bool,
    pub group: &'a str,
    pub ttl: Duration,
    pub now: Instant,
    pub watching_since: Instant,
    pub members: &'a BTreeMap<String, Observed>,
}

impl View<'_> {
    /// Whether `member`'s heartbeat changed within the TTL.
    pub fn is_live(&self, member: &str) -> bool {
        if member == self.me {
            return true;
        }
        match self.members.get(member) {
            Some(o) => !o.stopped && self.now.saturating_duration_since(o.since) < self.ttl,
            None => self.now.saturating_duration_since(self.watching_since) < self.ttl,
        }
    }

    /// Live members that take partitions, this replica included when it does.
    pub fn candidates(&self) -> impl Iterator<Item = &str> + '_ {
        let others = self
            .members
            .iter()
            .filter(|(id, o)| id.as_str() != self.me && o.accepting && self.is_live(id))
            .map(|(id, _)| id.as_str());
        self.me_accepting
            .then_some(self.me)
            .into_iter()
            .chain(others)
    }

    pub fn desired(&self, partition: u16) -> Option<&str> {
        desired_owner(self.group, partition, self.candidates())
    }

    /// The step for one partition.
    pub fn plan(&self, partition: u16, lease: &LeaseState) -> Step {
        let desired = self.desired(partition);
        let mine = desired == Some(self.me);
        match lease.owner.as_deref() {
            Some(owner) if owner == self.me => match desired {
                Some(other) if other != self.me => Step::GiveBack,
                _ => Step::Hold,
            },
            None if mine => Step::Acquire {
                expected: lease.seq,
                clean: lease.clean,
            },
            None => Step::Wait,
            Some(owner) if !self.is_live(owner) && mine => Step::Acquire {
                expected: lease.seq,
                clean: false,
            },
            Some(_) => Step::Wait,
        }
    }
}

/// The holder's own standing: may it still act on its partitions?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Standing {
    /// When the last successful heartbeat was sent.
    pub last_ok: Option<Instant>,
    /// Bumped whenever the heartbeats had a gap long enough that an
    /// observer may have taken over: work begun in an older epoch must
    /// check its lease again before going on.
    pub epoch: u64,
}

/// The holder's timing rules, from the lease TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub ttl: Duration,
    /// The holder stops this much before any observer may take over.
    pub margin: Duration,
    /// How long one pull request may wait at the server: it must end
    /// within the margin too, or a stopped holder's open request could
    /// still take a message from its successor.
    pub pull_expires: Duration,
    pub heartbeat_every: Duration,
}

impl Timing {
    pub fn from_ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            margin: ttl / 3,
            pull_expires: ttl / 6,
            heartbeat_every: ttl / 6,
        }
    }

    /// How long after its last heartbeat a holder may still act.
    pub fn work_window(&self) -> Duration {
        self.ttl - self.margin
    }
}

impl Standing {
    /// Records a heartbeat sent at `sent_at` that the server stored.
    pub fn heartbeat_ok(&mut self, sent_at: Instant, timing: &Timing) {
        if let Some(previous) = self.last_ok {
            if sent_at.saturating_duration_since(previous) >= timing.work_window() {
                self.epoch += 1;
            }
        }
        self.last_ok = Some(self.last_ok.map_or(sent_at, |p| p.max(sent_at)));
    }

    /// May work begun in `epoch` go on (handle, acknowledge, progress)?
    pub fn may_work(&self, epoch: u64, now: Instant, timing: &Timing) -> bool {
        self.epoch == epoch
            && self
                .last_ok
                .is_some_and(|at| now.saturating_duration_since(at) < timing.work_window())
    }

    /// May it issue a pull request now (which can stay open for
    /// `pull_expires`)?
    pub fn may_pull(&self, epoch: u64, now: Instant, timing: &Timing) -> bool {
        self.may_work(epoch, now + timing.pull_expires, timing)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn members(ids: &[&str], now: Instant) -> BTreeMap<String, Observed> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    id.to_string(),
                    Observed {
                        seq: i as u64 + 1,
                        since: now,
                        accepting: true,
                        stopped: false,
                    },
                )
            })
            .collect()
    }

    fn owners(ids: &[&str], partitions: u16) -> Vec<String> {
        (0..partitions)
            .map(|p| {
                desired_owner("conversation", p, ids.iter().copied())
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn rendezvous_is_stable_and_independent_of_the_order_of_members() {
        let a = owners(&["c-1", "c-2", "c-3"], 64);
        let b = owners(&["c-3", "c-1", "c-2"], 64);
        assert_eq!(a, b);
        assert_eq!(a, owners(&["c-1", "c-2", "c-3"], 64));
        assert_eq!(desired_owner("g", 0, std::iter::empty()), None);
    }

    #[test]
    fn rendezvous_is_balanced() {
        let ids: Vec<String> = (1..=4).map(|i| format!("router-{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let assigned = owners(&refs, 256);
        for id in &ids {
            let n = assigned.iter().filter(|o| *o == id).count();
            // 64 expected; a fair hash stays well within ±50 %.
            assert!((32..=96).contains(&n), "{id} got {n} of 256");
        }
    }

    #[test]
    fn a_joining_or_leaving_member_moves_only_its_own_partitions() {
        let before = owners(&["a", "b", "c"], 128);
        let joined = owners(&["a", "b", "c", "d"], 128);
        for (old, new) in before.iter().zip(&joined) {
            assert!(old == new || new == "d", "{old} → {new}");
        }
        assert!(joined.iter().any(|o| o == "d"), "the new member gets some");
        let left = owners(&["a", "c"], 128);
        for (old, new) in before.iter().zip(&left) {
            assert!(old == new || old == "b", "{old} → {new}");
        }
    }

    fn view<'a>(me: &'a str, members: &'a BTreeMap<String, Observed>, now: Instant) -> View<'a> {
        View {
            me,
            me_accepting: true,
            group: "g",
            ttl: Duration::from_secs(6),
            now,
            watching_since: now - Duration::from_secs(60),
            members,
        }
    }

    /// A partition `me` is the desired owner of, among `ids`.
    fn won_by(me: &str, ids: &[&str]) -> u16 {
        (0..u16::MAX)
            .find(|&p| desired_owner("g", p, ids.iter().copied()) == Some(me))
            .unwrap()
    }

    #[test]
    fn a_free_partition_is_acquired_by_its_desired_owner_only() {
        let now = Instant::now();
        let m = members(&["a", "b"], now);
        let p = won_by("a", &["a", "b"]);
        let free = LeaseState {
            seq: 7,
            owner: None,
            clean: true,
        };
        assert_eq!(
            view("a", &m, now).plan(p, &free),
            Step::Acquire {
                expected: 7,
                clean: true
            }
        );
        assert_eq!(view("b", &m, now).plan(p, &free), Step::Wait);
    }

    #[test]
    fn a_live_owner_is_waited_for_and_a_stale_one_taken_over_after_the_ttl() {
        let start = Instant::now();
        let mut m = members(&["a", "b"], start);
        let p = won_by("b", &["b"]);
        let held_by_a = LeaseState {
            seq: 3,
            owner: Some("a".into()),
            clean: false,
        };
        // a stops accepting partitions: b should own p, but a is alive.
        m.get_mut("a").unwrap().accepting = false;
        assert_eq!(view("b", &m, start).plan(p, &held_by_a), Step::Wait);
        // a's heartbeat has not changed for the TTL, by b's own clock.
        let later = start + Duration::from_secs(6);
        assert_eq!(
            view("b", &m, later).plan(p, &held_by_a),
            Step::Acquire {
                expected: 3,
                clean: false
            }
        );
        // An owner that said it stopped is not waited for.
        m.get_mut("a").unwrap().stopped = true;
        assert!(matches!(
            view("b", &m, start).plan(p, &held_by_a),
            Step::Acquire { clean: false, .. }
        ));
    }

    #[test]
    fn an_owner_never_seen_is_presumed_alive_for_a_ttl_after_watching_starts() {
        let now = Instant::now();
        let m = members(&["b"], now);
        let p = won_by("b", &["b"]);
        let lease = LeaseState {
            seq: 1,
            owner: Some("ghost".into()),
            clean: false,
        };
        let mut fresh = view("b", &m, now);
        fresh.watching_since = now;
        assert_eq!(fresh.plan(p, &lease), Step::Wait);
        assert!(matches!(
            view("b", &m, now).plan(p, &lease),
            Step::Acquire { .. }
        ));
    }

    #[test]
    fn the_owner_gives_back_what_a_new_member_wins_and_keeps_the_rest() {
        let now = Instant::now();
        let m = members(&["a", "b"], now);
        let ours = |_: u16| LeaseState {
            seq: 1,
            owner: Some("a".into()),
            clean: false,
        };
        let mut gave = BTreeSet::new();
        for p in 0..64 {
            match view("a", &m, now).plan(p, &ours(p)) {
                Step::GiveBack => {
                    gave.insert(p);
                }
                Step::Hold => {}
                other => panic!("{p}: {other:?}"),
            }
        }
        let b_wins: BTreeSet<u16> = (0..64)
            .filter(|&p| desired_owner("g", p, ["a", "b"]) == Some("b"))
            .collect();
        assert_eq!(gave, b_wins);
        // Draining (not accepting): everything goes back if anyone can take it.
        let mut draining = view("a", &m, now);
        draining.me_accepting = false;
        assert!((0..64).all(|p| draining.plan(p, &ours(p)) == Step::GiveBack));
        // ... and is kept when nobody else is alive.
        let alone = members(&["a"], now);
        let mut last = view("a", &alone, now);
        last.me_accepting = false;
        assert_eq!(last.plan(0, &ours(0)), Step::Hold);
    }

    #[test]
    fn a_restarted_replica_holds_its_own_leases_at_once() {
        let now = Instant::now();
        let m = members(&["a"], now);
        let mut fresh = view("a", &m, now);
        fresh.watching_since = now;
        let lease = LeaseState {
            seq: 9,
            owner: Some("a".into()),
            clean: false,
        };
        assert_eq!(fresh.plan(0, &lease), Step::Hold);
    }

    #[test]
    fn the_holder_stops_before_any_observer_can_take_over() {
        let timing = Timing::from_ttl(Duration::from_secs(6));
        let t0 = Instant::now();
        let mut s = Standing::default();
        assert!(!s.may_work(0, t0, &timing), "never heartbeated");
        s.heartbeat_ok(t0, &timing);
        assert!(s.may_work(0, t0 + Duration::from_secs(3), &timing));
        assert!(s.may_pull(0, t0 + Duration::from_secs(2), &timing));
        // Pulls stop first: an open request must end within the margin.
        assert!(!s.may_pull(0, t0 + Duration::from_millis(3100), &timing));
        assert!(!s.may_work(0, t0 + Duration::from_secs(4), &timing));
        // Every moment the holder may act precedes every moment an
        // observer (who saw the heartbeat no earlier than t0) may take over.
        assert!(timing.work_window() + timing.pull_expires < timing.ttl);
        // Heartbeats on time keep the epoch.
        s.heartbeat_ok(t0 + Duration::from_secs(1), &timing);
        assert_eq!(s.epoch, 0);
        // A gap (a paused process) starts a new epoch: old work must
        // re-check its lease even though heartbeats succeed again.
        s.heartbeat_ok(t0 + Duration::from_secs(30), &timing);
        assert_eq!(s.epoch, 1);
        assert!(!s.may_work(0, t0 + Duration::from_secs(30), &timing));
        assert!(s.may_work(1, t0 + Duration::from_secs(30), &timing));
    }
}
