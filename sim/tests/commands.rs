//! The clients run the server's own command executor: a command the
//! simulator has no code of its own for (MSET, EXISTS) is sent as RESP, its
//! replies are counted and judged (the `replies` checker), and the writes
//! the executor reports it acknowledged are the ones the other checkers
//! judge.

use std::time::Duration;

use rumor_sim::{FaultSet, SimOptions};

#[test]
fn mset_and_exists_go_through_the_executor_and_their_replies_and_writes_are_judged() {
    let opts = SimOptions {
        seed: 9,
        nodes: 4,
        duration: Duration::from_secs(8),
        faults: FaultSet::parse("loss,crash").expect("valid fault list"),
        ..SimOptions::default()
    };
    let run = rumor_sim::run(&opts).expect("valid options");
    assert!(run.passed(), "{}", run.report);
    let m = &run.measurements;
    let msets = m.replies.get("MSET +OK").copied().unwrap_or(0);
    assert!(msets > 10, "MSETs answered: {:?}", m.replies);
    assert!(
        m.replies
            .keys()
            .filter(|kind| kind.starts_with("MSET"))
            .all(|kind| kind == "MSET +OK" || kind.starts_with("MSET -LOADING ")),
        "every MSET answered +OK, or -LOADING while its node caught up: {:?}",
        m.replies
    );
    // Each MSET names two keys: two acknowledged writes, with their
    // versions, in the history the convergence, lost-write and
    // resurrection checkers judged (and passed).
    let mset_writes = m.writes_by_command.get("MSET").copied().unwrap_or(0);
    assert_eq!(mset_writes as u64, 2 * msets);
    assert_eq!(m.writes_by_command.values().sum::<usize>(), m.writes);
    assert!(run.report.contains("replies       ok"), "{}", run.report);
    // Reads' replies were judged against what the store held: both kinds
    // of GET seen, and EXISTS counting none, one and two live keys.
    assert!(m.replies.contains_key("GET $<bulk>") && m.replies.contains_key("GET $-1"), "{:?}", m.replies);
    for count in [":0", ":1", ":2"] {
        assert!(m.replies.contains_key(&format!("EXISTS {count}")), "{:?}", m.replies);
    }
}
