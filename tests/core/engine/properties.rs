//! Property tests over random record-set groups with random health.

use super::*;

// ================================================================== property tests

/// One member of a random record-set group.
#[derive(Clone, Debug)]
struct Member {
    weight: u8,
    /// None: no health check (always healthy).
    health: Option<bool>,
    values: usize,
    /// Served through an alias (evaluateTargetHealth) to a Simple record that carries
    /// the values and the health check.
    via_alias: bool,
}

impl Member {
    fn healthy(&self) -> bool {
        self.health.unwrap_or(true)
    }
}

#[derive(Clone, Debug)]
enum Group {
    Weighted(Vec<Member>),
    Failover(Member, Option<Member>),
    Multi(Vec<Member>),
}

fn member() -> impl Strategy<Value = Member> {
    (
        prop_oneof![3 => Just(0u8), 4 => 1u8..=5, 1 => Just(255u8), 2 => any::<u8>()],
        prop_oneof![Just(None), any::<bool>().prop_map(Some), any::<bool>().prop_map(Some)],
        1usize..=3,
        any::<bool>(),
    )
        .prop_map(|(weight, health, values, via_alias)| Member {
            weight,
            health,
            values,
            via_alias,
        })
}

fn group() -> impl Strategy<Value = Group> {
    prop_oneof![
        prop::collection::vec(member(), 1..=8).prop_map(Group::Weighted),
        (member(), prop::option::of(member())).prop_map(|(p, s)| Group::Failover(p, s)),
        prop::collection::vec(member().prop_map(|m| Member { via_alias: false, ..m }), 1..=14)
            .prop_map(Group::Multi),
    ]
}

const GROUP: &str = "g.example.com";

fn value(i: usize, j: usize) -> String {
    format!("10.0.{i}.{j}")
}

/// The member an answer value belongs to.
fn member_of(v: &str) -> usize {
    v.split('.').nth(2).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("foreign value {v}"))
}

fn members(g: &Group) -> Vec<Member> {
    match g {
        Group::Weighted(m) | Group::Multi(m) => m.clone(),
        Group::Failover(p, s) => std::iter::once(p.clone()).chain(s.clone()).collect(),
    }
}

fn build(g: &Group) -> World {
    let mut w = world();
    for (i, m) in members(g).iter().enumerate() {
        let values: Vec<String> = (0..m.values).map(|j| value(i, j)).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let hc = format!("hc{i}");
        if let Some(up) = m.health {
            w.probe(&hc, up);
        }
        let with_hc = |spec: failover_dns::resources::FailoverRecordSpec| {
            if m.health.is_some() { spec.hc(&hc) } else { spec }
        };
        let id = format!("m{i}");
        let data = if m.via_alias { &[][..] } else { &values[..] };
        let spec = match g {
            Group::Weighted(_) => weighted(GROUP, &id, i64::from(m.weight), data),
            Group::Multi(_) => multivalue(GROUP, &id, data),
            Group::Failover(..) => failover(
                GROUP,
                &id,
                if i == 0 { FailoverRole::Primary } else { FailoverRole::Secondary },
                data,
            ),
        };
        if m.via_alias {
            let target = format!("t{i}.example.com");
            w.record(&format!("t{i}"), with_hc(simple_a(&target, &values)));
            w.record(&id, spec.alias(&target, true));
        } else {
            w.record(&id, with_hc(spec));
        }
    }
    w
}

/// The members that may answer under the contract's rules, with their probabilities
/// (for Weighted and Failover; for MultiValue the probability is not given).
fn eligible(g: &Group) -> BTreeMap<usize, f64> {
    let ms = members(g);
    let idx = |f: &dyn Fn(&Member) -> bool| -> Vec<usize> {
        (0..ms.len()).filter(|&i| f(&ms[i])).collect()
    };
    match g {
        Group::Weighted(_) => {
            let healthy_nonzero = idx(&|m| m.healthy() && m.weight > 0);
            let healthy_zero = idx(&|m| m.healthy() && m.weight == 0);
            let (pool, uniform) = if !healthy_nonzero.is_empty() {
                (healthy_nonzero, false)
            } else if !healthy_zero.is_empty() {
                (healthy_zero, true)
            } else if ms.iter().any(|m| m.weight > 0) {
                (idx(&|m| m.weight > 0), false)
            } else {
                (idx(&|_| true), true)
            };
            let w = |i: usize| if uniform { 1.0 } else { f64::from(ms[i].weight) };
            let total: f64 = pool.iter().map(|&i| w(i)).sum();
            pool.iter().map(|&i| (i, w(i) / total)).collect()
        }
        Group::Failover(p, s) => {
            let chosen = if p.healthy() {
                0
            } else if s.as_ref().is_some_and(Member::healthy) {
                1
            } else {
                0
            };
            BTreeMap::from([(chosen, 1.0)])
        }
        Group::Multi(_) => {
            let healthy = idx(&|m| m.healthy());
            let pool = if healthy.is_empty() { idx(&|_| true) } else { healthy };
            pool.into_iter().map(|i| (i, f64::NAN)).collect()
        }
    }
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config(192))]

    /// (a) Some answer whenever a record set exists, and (b) never an unhealthy
    /// record while a healthy alternative exists.
    #[test]
    fn prop_answers_are_never_empty_and_prefer_healthy_records(g in group(), seed in any::<u64>()) {
        let w = build(&g);
        let model = w.model();
        prop_assert!(model.errors().next().is_none(), "{:?}", model.problems);
        let d = w.decide_a(GROUP);
        let ms = members(&g);
        let eligible = eligible(&g);
        let any_healthy = ms.iter().any(Member::healthy);
        prop_assert_eq!(d.healthy, any_healthy);
        let mut rng = rng(seed);
        for _ in 0..64 {
            let a = answer(&d.plan, &mut rng);
            prop_assert!(!a.is_empty(), "empty answer for {:?}", g);
            let answered: BTreeSet<usize> = a.iter().map(|v| member_of(v)).collect();
            for i in &answered {
                prop_assert!(eligible.contains_key(i), "member {} answered, eligible {:?}, group {:?}", i, eligible.keys(), g);
                if any_healthy {
                    prop_assert!(ms[*i].healthy(), "unhealthy member {} answered while a healthy one exists", i);
                }
            }
            match &g {
                Group::Weighted(_) | Group::Failover(..) => {
                    // One whole record set per answer.
                    prop_assert_eq!(answered.len(), 1);
                    let i = *answered.iter().next().unwrap();
                    prop_assert_eq!(sorted(a.clone()), sorted((0..ms[i].values).map(|j| value(i, j)).collect()));
                }
                Group::Multi(_) => {
                    // At most 8 records in all, even when record sets carry several values.
                    prop_assert!(a.len() <= MULTIVALUE_MAX);
                    let eligible_values: usize = eligible.keys().map(|i| ms[*i].values).sum();
                    if eligible_values <= MULTIVALUE_MAX {
                        prop_assert_eq!(answered.len(), eligible.len());
                    } else {
                        prop_assert_eq!(a.len(), MULTIVALUE_MAX);
                    }
                }
            }
        }
        // The same through the snapshot.
        let s = w.snapshot(1);
        let r = resolve(&s, GROUP, qtype::A, &mut rng);
        prop_assert_eq!(r.rcode, Rcode::NoError);
        prop_assert!(!r.records.is_empty());
    }

    /// (c) The weights are honoured: the plan's exact distribution is the contract's,
    /// and a seeded sample agrees with it within six standard deviations.
    #[test]
    fn prop_weights_are_honoured(ms in prop::collection::vec(member(), 1..=8), seed in any::<u64>()) {
        let g = Group::Weighted(ms.clone());
        let w = build(&g);
        let d = w.decide_a(GROUP);
        let expected = eligible(&g);
        let values_of = |i: usize| sorted((0..ms[i].values).map(|j| value(i, j)).collect());
        let exact = exact(&d.plan);
        let want: BTreeMap<Vec<String>, f64> = expected.iter().map(|(&i, &p)| (values_of(i), p)).collect();
        prop_assert_eq!(exact.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
        for (k, p) in &want {
            prop_assert!((exact[k] - p).abs() < 1e-9, "{:?}: {} != {}", k, exact[k], p);
        }
        for (i, c) in d.candidates.iter().enumerate() {
            let p = expected.get(&i).copied().unwrap_or(0.0);
            prop_assert!((c.probability - p).abs() < 1e-9, "candidate {}: {} != {}", i, c.probability, p);
        }
        let n = 4000;
        let sampled = counts(&d.plan, n, seed);
        for (k, p) in &want {
            assert_binomial(sampled.get(k).copied().unwrap_or(0), n, *p, &format!("{k:?}"));
        }
        prop_assert!(sampled.keys().all(|k| want.contains_key(k)));
    }

    /// (d) MultiValue answers hold at most 8 records, never the same value twice, and
    /// only healthy values while any record is healthy (values may repeat across sets).
    #[test]
    fn prop_multivalue_answers_are_at_most_8_distinct(
        sets in prop::collection::vec((0u8..6, prop::option::of(any::<bool>())), 1..=20),
        seed in any::<u64>(),
    ) {
        let mut w = world();
        for (i, (v, health)) in sets.iter().enumerate() {
            let mut spec = multivalue(GROUP, &format!("m{i}"), &[&format!("192.0.2.{v}")]);
            if let Some(up) = health {
                w.probe(&format!("hc{i}"), *up);
                spec = spec.hc(&format!("hc{i}"));
            }
            w.record(&format!("m{i}"), spec);
        }
        let d = w.decide_a(GROUP);
        let healthy: BTreeSet<String> =
            sets.iter().filter(|(_, h)| h.unwrap_or(true)).map(|(v, _)| format!("192.0.2.{v}")).collect();
        let all: BTreeSet<String> = sets.iter().map(|(v, _)| format!("192.0.2.{v}")).collect();
        let mut rng = rng(seed);
        for _ in 0..64 {
            let a = answer(&d.plan, &mut rng);
            prop_assert!(!a.is_empty());
            prop_assert!(a.len() <= MULTIVALUE_MAX, "{:?}", a);
            prop_assert!(distinct(&a), "duplicates: {:?}", a);
            let allowed = if healthy.is_empty() { &all } else { &healthy };
            prop_assert!(a.iter().all(|v| allowed.contains(v)), "{:?} not within {:?}", a, allowed);
        }
    }

    /// (a) over whole models: every name + type of a random set of groups answers
    /// through the snapshot, and every decision's plan yields records.
    #[test]
    fn prop_every_served_name_answers(groups in prop::collection::vec(group(), 1..=4), seed in any::<u64>()) {
        let mut w = world();
        for (k, g) in groups.iter().enumerate() {
            let sub = build(g);
            let prefix = format!("k{k}-");
            let rename = |n: &str| format!("{prefix}{n}");
            for c in sub.checks {
                w.checks.push(input(NS, &rename(&c.id.name), c.seq, c.spec));
            }
            for r in sub.records {
                let mut spec = r.spec;
                spec.name = rename(&spec.name);
                spec.health_check_name = spec.health_check_name.map(|n| rename(&n));
                if let Some(t) = &mut spec.alias_target {
                    t.name = rename(&t.name);
                }
                w.records.push(input(NS, &rename(&r.id.name), r.seq, spec));
            }
            for (i, m) in members(g).iter().enumerate() {
                if let Some(up) = m.health {
                    w.set(&rename(&format!("hc{i}")), up);
                }
            }
        }
        let model = w.model();
        prop_assert!(model.errors().next().is_none(), "{:?}", model.problems);
        let s = w.snapshot(1);
        let mut rng = rng(seed);
        prop_assert_eq!(s.decision_count(), model.sets.len());
        for (name, rtype) in model.sets.keys() {
            prop_assert_eq!(*rtype, RecordType::A);
            for _ in 0..8 {
                let r = resolve(&s, name.as_str(), qtype::A, &mut rng);
                prop_assert_eq!(r.rcode, Rcode::NoError);
                prop_assert!(!r.records.is_empty(), "no answer for {}", name);
            }
        }
    }
}
