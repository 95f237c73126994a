//! `rumor-sim`: the deterministic simulator. It will run many nodes of the
//! real core under simulated time and network; until then it says so.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("rumor-sim: the deterministic simulator is not built yet (see the simulator issue)");
    ExitCode::from(2)
}
