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
    /// Write records for the log by hand: JSON in, wal.proto out.
    #[command(subcommand)]
    Record(RecordCommand),
    /// Snapshot files: export, load, apply, diff.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Access tokens for a server's `security.tokens`.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Prints a new random token, and the entry that grants it in the configuration (which
    /// holds only its SHA-256). Give the token to the client; it is not stored anywhere.
    New {
        /// The token's name, as audit lines and errors show it.
        name: String,
        /// The namespace to grant (`*`: every namespace).
        #[arg(long, default_value = "*")]
        namespace: String,
        /// read, write or admin.
        #[arg(long, default_value = "read")]
        access: String,
    },
}

fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::New { name, namespace, access } => {
            anyhow::ensure!(
                ["read", "write", "admin"].contains(&access.as_str()),
                "--access: {access:?} is not read, write or admin"
            );
            let (token, sha256) = prism_server::access::new_token();
            println!("token: {token}");
            println!("# for the server's configuration:");
            println!("security:\n  tokens:\n    - name: {name:?}\n      sha256: {sha256}");
            println!("      grants:\n        - namespace: {namespace:?}\n          access: {access}");
        }
    }
    Ok(())
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Writes a server's graph of one namespace to a file.
    Export {
        #[command(flatten)]
        remote: prism_server::snapshot_cli::Remote,
        #[arg(short = 'o', long)]
        output: PathBuf,
        #[arg(long, default_value = "default")]
        namespace: String,
        /// protobuf or jsonlines.
        #[arg(long, default_value = "protobuf")]
        format: String,
        /// zstd, gzip or none.
        #[arg(long, default_value = "zstd")]
        compression: String,
        /// Write the namespace's PII properties (its `pii` in the server's configuration) as "***".
        #[arg(long)]
        mask_pii: bool,
    },
    /// Loads a snapshot into an empty namespace through batches, many in flight; the whole
    /// file is checked first, so bad input changes nothing.
    Load {
        file: PathBuf,
        #[command(flatten)]
        remote: prism_server::snapshot_cli::Remote,
        #[arg(long, default_value = "default")]
        namespace: String,
    },
    /// Applies a newer full snapshot: the server writes only its difference from the current
    /// graph, in one atomic record, and reports what was added, removed and modified.
    Apply {
        file: PathBuf,
        #[command(flatten)]
        remote: prism_server::snapshot_cli::Remote,
        #[arg(long, default_value = "default")]
        namespace: String,
    },
    /// Counts the difference between two snapshots; `-o` writes it as operations (JSON lines).
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
}

fn snapshot(command: SnapshotCommand) -> anyhow::Result<()> {
    use prism_server::snapshot_cli;
    let runtime = || tokio::runtime::Runtime::new().context("starting the async runtime");
    match command {
        SnapshotCommand::Export { remote, output, namespace, format, compression, mask_pii } => {
            runtime()?.block_on(snapshot_cli::export(&remote, &namespace, &output, &format, &compression, mask_pii))
        }
        SnapshotCommand::Load { file, remote, namespace } => {
            runtime()?.block_on(snapshot_cli::load(&remote, &namespace, &file))
        }
        SnapshotCommand::Apply { file, remote, namespace } => {
            runtime()?.block_on(snapshot_cli::apply(&remote, &namespace, &file))
        }
        SnapshotCommand::Diff { old, new, output } => snapshot_cli::diff(&old, &new, output.as_ref()),
    }
}

#[derive(Subcommand)]
enum RecordCommand {
    /// Reads one record as JSON (see connectors/src/json.rs) and writes its wal.proto bytes to
    /// standard output, for any Kafka producer to send.
    Encode {
        /// The JSON file [default: standard input].
        file: Option<PathBuf>,
    },
    /// Reads one record as JSON and produces it to the log's topic; prints its LSN.
    Produce {
        /// The JSON file [default: standard input].
        file: Option<PathBuf>,
        #[arg(long)]
        kafka_brokers: String,
        #[arg(long, default_value = "prism-graph-wal")]
        kafka_topic: String,
    },
}

/// One JSON record from `file` or standard input, stamped with now when it has no timestamp.
fn read_record(file: Option<&PathBuf>) -> anyhow::Result<prism_dataflows::WriteRecord> {
    use std::io::Read;
    let mut text = String::new();
    match file {
        Some(path) => text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            std::io::stdin().read_to_string(&mut text).context("reading standard input")?;
        }
    }
    let now = prism_server::convert::now_micros();
    Ok(prism_connectors::json::record_from_json(&text, now)?)
}

fn record(command: RecordCommand) -> anyhow::Result<()> {
    use prism_connectors::codec::encode_within;
    use std::io::Write;
    match command {
        RecordCommand::Encode { file } => {
            let record = read_record(file.as_ref())?;
            let payload = encode_within(&record, prism_connectors::wal::DEFAULT_MAX_RECORD_BYTES)?;
            std::io::stdout().write_all(&payload).context("writing")?;
        }
        RecordCommand::Produce { file, kafka_brokers, kafka_topic } => {
            let record = read_record(file.as_ref())?;
            let options = prism_connectors::kafka::KafkaOptions::new(&kafka_brokers, &kafka_topic);
            let payload = encode_within(&record, options.record_limit())?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let offset =
                runtime.block_on(prism_connectors::kafka::produce(&options, record.namespace.as_str(), &payload))?;
            println!("lsn {}", offset + 1);
        }
    }
    Ok(())
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
    /// A snapshot to load at start (after recovery): into an empty namespace in batches,
    /// else applied as the difference from what the log holds.
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Serve a non-loopback address without a `security` section: anyone who reaches it can
    /// read and write every namespace.
    #[arg(long)]
    insecure: bool,
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
        if let Some(snapshot) = self.snapshot {
            config.server.snapshot = Some(snapshot);
        }
        if self.insecure {
            config.server.insecure = true;
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

/// A panic anywhere ends the process, loudly. A timely worker or a log thread that died
/// would leave every request that needs it waiting forever; a supervisor restarts a process
/// that exits, not one that hangs half alive.
fn exit_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        if let Some(peer) = lost_peer(name) {
            // A timely cluster is static: without a process it cannot go on, and waiting
            // would leave every request hanging.
            tracing::error!(
                peer,
                "lost the connection to cluster process {peer}; this process stops too: restart the whole cluster"
            );
        }
        tracing::error!(thread = name, "panic: {info}; the process stops");
        report(info);
        std::process::abort();
    }));
}

/// The cluster process a timely network thread talks to (`timely:recv-N`, `timely:send-N`).
fn lost_peer(thread: &str) -> Option<usize> {
    let peer = thread.strip_prefix("timely:recv-").or_else(|| thread.strip_prefix("timely:send-"))?;
    peer.parse().ok()
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    exit_on_panic();
    let cli = Cli::parse();
    match cli.command {
        Command::Record(command) => record(command)?,
        Command::Snapshot(command) => snapshot(command)?,
        Command::Token(command) => token(command)?,
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
