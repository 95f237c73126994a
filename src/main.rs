//! `rumor`: command line → settings → `run::run`. Logging setup lives
//! here and nowhere else.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use rumor::config::{LogFormat, ServeFlags, Settings};
use rumor::dev::Started;
use rumor::dev::output::StatusOutput;
use tokio::sync::{mpsc, watch};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// glibc malloc showed as ~10% of a pipelined GET/SET profile; mimalloc's
/// per-thread free lists cut that for the many small buffers of the client path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "rumor", version, about = "A leaderless key-value mesh that speaks RESP2")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node.
    Serve(Box<ServeFlags>),
    /// Run an N-node mesh on 127.0.0.1 in this process, for trying rumor out.
    Dev(DevFlags),
    /// Print a new cluster key for --cluster-key-file.
    Keygen,
}

#[derive(clap::Args)]
struct DevFlags {
    /// Number of nodes (clients on 6380.., gossip on 7946..).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    nodes: u16,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// No live status line (it is redrawn in place on a terminal, printed
    /// as plain lines when the mesh changes otherwise).
    #[arg(long)]
    no_status: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (nodes, status) = match cli.command {
        Command::Serve(flags) => match Settings::load(&flags) {
            Ok(settings) => (vec![settings], None),
            Err(error) => {
                eprintln!("rumor: {error}");
                return ExitCode::from(2);
            }
        },
        Command::Dev(flags) => (dev_settings(&flags), Some(StatusOutput::detect(!flags.no_status))),
        Command::Keygen => {
            println!("{}", rumor::server::envelope::generate_key());
            return ExitCode::SUCCESS;
        }
    };
    let log_writer = status.as_ref().map_or_else(|| BoxMakeWriter::new(std::io::stderr), StatusOutput::log_writer);
    init_logging(nodes[0].log_format, log_writer);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rumor: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_nodes(nodes, status))
}

/// Settings for a local mesh: node i listens on 6380+i and gossips on
/// 7946+i; every node knows every other as a seed.
fn dev_settings(flags: &DevFlags) -> Vec<Settings> {
    let seeds: Vec<_> = (0..flags.nodes).map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], 7946 + i))).collect();
    (0..flags.nodes)
        .map(|i| {
            let mut s =
                Settings { name: format!("node{}", i + 1), log_format: flags.log_format, ..Settings::default() };
            s.listen.set_port(6380 + i);
            s.gossip.set_port(7946 + i);
            s.node.seeds = seeds.clone();
            s
        })
        .collect()
}

/// Runs the nodes until SIGINT/SIGTERM; with `dev` set (`rumor dev`), with
/// the console that prints how to connect and the live status.
async fn run_nodes(nodes: Vec<Settings>, dev: Option<StatusOutput>) -> ExitCode {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let stopped = |mut stop: watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let (started_tx, started_rx) = mpsc::unbounded_channel();
    let console = dev.map(|output| {
        let names = nodes.iter().map(|s| s.name.clone()).collect();
        tokio::spawn(rumor::dev::console(names, started_rx, output, stopped(stop_rx.clone())))
    });
    let mut tasks = Vec::new();
    for (index, settings) in nodes.into_iter().enumerate() {
        let shutdown = stopped(stop_rx.clone());
        let name = settings.name.clone();
        // Dropped once called, or with the task if the node fails to start:
        // either way the console learns the node is accounted for.
        let started = started_tx.clone();
        tasks.push(tokio::spawn(async move {
            let result = rumor::run::run(settings, shutdown, move |bound, handle| {
                let _ = started.send(Started { index, bound, handle });
            })
            .await;
            (name, result)
        }));
    }
    drop(started_tx);
    let signalled = stop_tx.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = signalled.send(true);
    });
    let mut code = ExitCode::SUCCESS;
    for task in tasks {
        match task.await {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(error))) => {
                eprintln!("rumor: {name}: {error}");
                code = ExitCode::FAILURE;
            }
            Err(error) => {
                eprintln!("rumor: node task failed: {error}");
                code = ExitCode::FAILURE;
            }
        }
    }
    // Every node has stopped (or none started): so does the console.
    let _ = stop_tx.send(true);
    if let Some(console) = console {
        let _ = console.await;
    }
    code
}

/// SIGINT or SIGTERM.
async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Logs to `writer`: stderr, or stderr around `rumor dev`'s status line.
fn init_logging(format: LogFormat, writer: BoxMakeWriter) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
