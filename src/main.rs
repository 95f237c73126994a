//! `rumor`: command line → settings → `server::run`. Logging setup lives
//! here and nowhere else.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rumor::config::{LogFormat, ServeFlags, Settings};
use tokio::sync::watch;

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
    Serve(ServeFlags),
    /// Run an N-node mesh on 127.0.0.1 in this process, for trying rumor out.
    Dev(DevFlags),
}

#[derive(clap::Args)]
struct DevFlags {
    /// Number of nodes (clients on 6380.., gossip on 7946..).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    nodes: u16,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let nodes = match cli.command {
        Command::Serve(flags) => match Settings::load(&flags) {
            Ok(settings) => vec![settings],
            Err(error) => {
                eprintln!("rumor: {error}");
                return ExitCode::from(2);
            }
        },
        Command::Dev(flags) => dev_settings(&flags),
    };
    init_logging(nodes[0].log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rumor: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run_nodes(nodes))
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

async fn run_nodes(nodes: Vec<Settings>) -> ExitCode {
    let (stop_tx, stop_rx) = watch::channel(false);
    let dev = nodes.len() > 1 || std::env::args().nth(1).as_deref() == Some("dev");
    let mut tasks = Vec::new();
    for settings in nodes {
        let mut stop = stop_rx.clone();
        let name = settings.name.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            let result = rumor::server::run(settings, shutdown, |bound| {
                if dev {
                    println!("{name}: redis-cli -p {}   (gossip {})", bound.listen.port(), bound.gossip);
                }
            })
            .await;
            (name, result)
        }));
    }
    if dev {
        println!("rumor dev mesh starting; Ctrl-C stops it.");
    }
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
