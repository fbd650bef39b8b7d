//! The `prism-graph` binary: parses the command line and runs a server.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use prism_server::config::{ClusterSection, Config, WalBackend};

// The engine allocates per vertex, edge and message; mimalloc keeps that cheap and compact.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "prism-graph", version, about = "A streaming property-graph engine served over gRPC")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server (write-ahead log under --data-dir, or on a Kafka topic with --wal kafka).
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// YAML configuration file (RFC-055 namespace shape); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to serve gRPC on [default: 127.0.0.1:50090].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Where the write-ahead log lives [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Timely worker threads in this process [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Processes in the timely cluster.
    #[arg(long, requires_all = ["process", "hostfile"])]
    processes: Option<usize>,
    /// This process's index in the cluster (0 holds the log).
    #[arg(long, requires = "processes")]
    process: Option<usize>,
    /// The cluster's hostfile: one host:port a line, timely's format.
    #[arg(long, requires = "processes")]
    hostfile: Option<PathBuf>,
    /// Cut the log at damage in its middle instead of refusing to start (loses what follows).
    #[arg(long)]
    wal_truncate_corrupt: bool,
    /// Where the write-ahead log lives [default: embedded].
    #[arg(long, value_enum)]
    wal: Option<WalBackend>,
    /// Kafka brokers (host:port[,host:port…]) for --wal kafka.
    #[arg(long)]
    kafka_brokers: Option<String>,
    /// The log's Kafka topic [default: prism-graph-wal].
    #[arg(long)]
    kafka_topic: Option<String>,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(listen) = self.listen {
            config.server.listen = listen;
        }
        if let Some(dir) = self.data_dir {
            config.server.data_dir = dir;
        }
        if let Some(workers) = self.workers {
            config.server.workers = workers;
        }
        if let (Some(processes), Some(process), Some(hostfile)) = (self.processes, self.process, self.hostfile) {
            anyhow::ensure!(process < processes, "--process {process} must be below --processes {processes}");
            config.cluster = Some(ClusterSection { processes, process, hostfile });
        }
        if self.wal_truncate_corrupt {
            config.wal.truncate_corrupt = true;
        }
        if let Some(backend) = self.wal {
            config.wal.backend = backend;
        }
        if let Some(brokers) = self.kafka_brokers {
            config.wal.kafka.brokers = brokers;
        }
        if let Some(topic) = self.kafka_topic {
            config.wal.kafka.topic = topic;
        }
        config.validate().map_err(|problem| anyhow::anyhow!("{problem}"))?;
        Ok(config)
    }
}

/// Completes on SIGINT or SIGTERM; if neither can be watched, never (the server then runs
/// until killed).
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = args.into_config()?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(async {
                let shutdown = shutdown_signal();
                prism_server::serve(
                    config,
                    // Scripts and tests read the bound address from this line.
                    |address| println!("prism-graph listening on {address}"),
                    shutdown,
                )
                .await
            })?;
        }
    }
    Ok(())
}
