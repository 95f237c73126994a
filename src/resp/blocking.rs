//! Work that may take long, or wait on another command, kept off the
//! client runtime's workers.
//!
//! The node's driver (SWIM, gossip, timers) is a task on the same runtime
//! as the client connections, and its probes must be answered within a
//! probe timeout (150 ms by default). A KEYS over millions of keys takes
//! seconds; on every worker at once such commands would leave the driver no
//! thread to run on, and the mesh would declare a busy node down. (Waits
//! never take a thread: a command waiting for an EXEC waits as a task, see
//! [`crate::resp::gate`].) So such work runs under
//! `block_in_place`: its worker hands its queue (the driver, if it is
//! there) to a fresh worker first, and the OS schedules the long command
//! beside it. The short commands that make up most of a node's load stay
//! on the workers with the driver, costing no thread switch.

/// Runs `work` off the runtime's workers when called on one of a
/// multi-threaded runtime's; elsewhere (a single-threaded test runtime, or
/// the simulator, which has no runtime) runs it in place.
pub(crate) fn off_workers<T>(work: impl FnOnce() -> T) -> T {
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_threaded { tokio::task::block_in_place(work) } else { work() }
}
