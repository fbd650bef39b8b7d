//! Wiring a server together: the engine, the log, recovery, and the gRPC front.

use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prism_connectors::kafka::{KafkaError, KafkaWal};
use prism_connectors::{EmbeddedWal, WalError, WalOptions};
use prism_dataflows::{ClusterConfig, ElementLimits, Engine, EngineConfig, EngineError, Lsn};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::access::AccessLayer;
use crate::audit::Audit;
use crate::checkpoints;
use crate::config::{Config, ConfigError, TlsSection, WalBackend};
use crate::pb::graph_service_server::GraphServiceServer;
use crate::prometheus::{self, RpcMetricsLayer};
use crate::service::GraphApi;

/// Largest request or reply message, so that large batches fit.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("the write-ahead log: {0}")]
    Log(String),
    #[error("--snapshot {path}: {message}")]
    Snapshot { path: String, message: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(
        "the graph loaded in bulk at LSN {lsn} is only in the checkpoint at LSN {newest}, which is \
         damaged (recovery fell back to LSN {restored}): repair or restore that checkpoint, or load \
         the snapshot again into a fresh data directory"
    )]
    BulkLoadLost { lsn: Lsn, newest: Lsn, restored: Lsn },
    #[error("data directory {0} is in use by another prism-graph process")]
    Locked(String),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("a startup task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

/// The server's TLS settings from its PEM files.
fn tls_config(tls: &TlsSection) -> Result<ServerTlsConfig, ServeError> {
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(io(format!("security.tls.{what} {}", path.display())))
    };
    let identity = Identity::from_pem(read("cert", &tls.cert)?, read("key", &tls.key)?);
    let mut config = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &tls.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read("client_ca", ca)?));
    }
    Ok(config)
}

/// Runs a server until `shutdown` completes. `on_listening` is told the bound address (the
/// listen address may ask for port 0) before recovery starts.
pub async fn serve(
    config: Config,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let config = Arc::new(config);
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let cluster = config.cluster_addresses()?.map(|(process, addresses)| ClusterConfig { process, addresses });
    let limits = ElementLimits { max_element_bytes: config.server.max_element_bytes };
    let capacities = config.capacities();
    let engine_config = EngineConfig {
        workers,
        cluster,
        read_hold: config.server.read_hold,
        limits,
        capacities,
        max_standing_page_ranks: config.server.max_standing_page_ranks,
        request_ids: config.request_ids(),
        release_memory: Some(crate::memory::release),
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    // The empty name is the whole server, what grpc_health_probe asks by default.
    health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    health.set_not_serving::<GraphServiceServer<GraphApi>>().await;

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(io(format!("listen on {}", config.server.listen)))?;
    let address = listener.local_addr().map_err(io("listen address"))?;

    tracing::info!(workers, cluster = ?engine_config.cluster, "starting the engine");
    let engine = Arc::new(tokio::task::spawn_blocking(move || Engine::start(engine_config)).await??);

    // Both versions: grpcurl and Postman speak v1, grpc_cli and Python's grpcio-reflection v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_error = |e| ServeError::Io { what: "reflection".into(), source: std::io::Error::other(e) };
    let reflection_v1 = reflection().build_v1().map_err(reflection_error)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(reflection_error)?;
    // Until recovery has finished, the state is partial: data calls answer UNAVAILABLE rather
    // than a NOT_FOUND for a vertex the log still holds.
    let recovered = Arc::new(AtomicBool::new(false));
    let gate = recovered.clone();
    let audit = match config.security.as_ref().and_then(|security| security.audit_log.as_ref()) {
        Some(target) => Some(Audit::open(target).map_err(io(format!("security.audit_log {}", target.display())))?),
        None => None,
    };
    let api = GraphServiceServer::new(GraphApi::new(engine.clone(), config.clone(), audit))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let api = InterceptedService::new(api, move |request: tonic::Request<()>| {
        if gate.load(Ordering::Acquire) {
            Ok(request)
        } else {
            Err(tonic::Status::unavailable(
                "the server is recovering (replaying its log); health reports NOT_SERVING until it is done",
            ))
        }
    });
    if config.security.is_none() && config.server.insecure && !address.ip().is_loopback() {
        tracing::warn!(%address, "serving without access control on a non-loopback address (--insecure)");
    }
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = config.security.as_ref().and_then(|security| security.tls.as_ref()) {
        builder = builder.tls_config(tls_config(tls)?)?;
    }
    if let Some(listen) = config.server.metrics_listen {
        let handle = prometheus::install()
            .map_err(|e| ServeError::Io { what: "metrics".into(), source: std::io::Error::other(e) })?;
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(io(format!("server.metrics_listen {listen}")))?;
        tracing::info!(address = %listener.local_addr().map_err(io("metrics address"))?, "serving metrics");
        tokio::spawn(prometheus::serve(listener, handle, engine.clone()));
    }
    let server = builder
        .layer(RpcMetricsLayer { enabled: config.server.metrics_listen.is_some() })
        .layer(AccessLayer::new(config.security.as_ref()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(api)
        // Without TCP_NODELAY, a reply written in several segments waits on the client's
        // delayed ACK: 40 ms stalls on any answer larger than one segment.
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown);
    let server = tokio::spawn(server);
    tracing::info!(%address, "listening");
    on_listening(address);

    // Recovery: replay the log into the engine before reporting SERVING.
    let _log = if engine.is_writer_process() {
        let data_dir = config.server.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(io(format!("create data directory {}", data_dir.display())))?;
        let lock = lock_data_dir(&data_dir)?;
        let log = match config.wal.backend {
            WalBackend::Embedded => recover_embedded(&config, &engine).await?,
            WalBackend::Kafka => follow_kafka(&config, &engine).await?,
        };
        Some((lock, log))
    } else {
        None
    };
    if let (Some(path), true) = (&config.server.snapshot, engine.is_writer_process()) {
        crate::snapshot_load::load_at_start(&engine, path, &config)
            .await
            .map_err(|message| ServeError::Snapshot { path: path.display().to_string(), message })?;
    }
    if engine.is_writer_process() {
        engine.mark_recovered();
    } else {
        // Another process's state comes from process 0's log: serve once it has applied
        // what process 0 had when its recovery ended.
        let lsn = engine.wait_recovered().await?;
        engine.wait_applied(lsn).await?;
    }
    recovered.store(true, Ordering::Release);
    if let Some((_, log)) = &_log {
        if !config.server.checkpoint_interval.is_zero() {
            let wal = match log {
                RunningLog::Embedded(wal) => Some(wal.clone()),
                RunningLog::Kafka { .. } => None,
            };
            let dir = checkpoints::dir(&config.server.data_dir);
            let last = checkpoints::newest(&dir).map_or(0, |(lsn, _)| lsn);
            tokio::spawn(checkpoints::run(engine.clone(), dir, config.server.checkpoint_interval, wal, last));
        }
    }
    health.set_serving::<GraphServiceServer<GraphApi>>().await;
    health.set_service_status("", tonic_health::ServingStatus::Serving).await;
    tracing::info!("serving");

    let result = server.await;
    engine.shutdown();
    result??;
    Ok(())
}

/// What keeps a log running while the server does (dropped when the server stops).
enum RunningLog {
    Embedded(Arc<EmbeddedWal>),
    Kafka { _wal: Box<KafkaWal> },
}

/// Hands the newest readable checkpoint (if any) to the engine; returns the LSN it covers.
async fn restore_checkpoint(config: &Config, engine: &Arc<Engine>) -> Result<Lsn, ServeError> {
    let dir = checkpoints::dir(&config.server.data_dir);
    let started = std::time::Instant::now();
    let read = move || {
        let newest = checkpoints::newest_readable(&dir);
        // The parse's own garbage goes back now, not whenever this thread runs again.
        crate::memory::release();
        newest
    };
    let Some((lsn, graph, path)) = tokio::task::spawn_blocking(read).await? else {
        return Ok(0);
    };
    let (vertices, edges) = (graph.vertices.len(), graph.edges.len());
    engine.commit_sink().restored(lsn, graph);
    tracing::info!(
        path = %path.display(),
        lsn,
        vertices,
        edges,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored the checkpoint"
    );
    Ok(lsn)
}

/// Replays the embedded log into the engine, then attaches it for writes.
async fn recover_embedded(config: &Config, engine: &Arc<Engine>) -> Result<RunningLog, ServeError> {
    let checkpoint = restore_checkpoint(config, engine).await?;
    let options = WalOptions {
        dir: config.server.data_dir.join("wal"),
        segment_bytes: config.wal.segment_bytes,
        truncate_corrupt: config.wal.truncate_corrupt,
        after: checkpoint,
        max_record_bytes: config.wal.max_record_bytes,
    };
    let sink = engine.commit_sink();
    let started = std::time::Instant::now();
    let (wal, recovery) = tokio::task::spawn_blocking(move || EmbeddedWal::open(&options, sink)).await??;
    engine.wait_applied(recovery.last_lsn.max(checkpoint)).await?;
    refuse_lost_bulk_loads(config, checkpoint, &recovery.bulk_loads)?;
    tracing::info!(
        checkpoint,
        records = recovery.records,
        last_lsn = recovery.last_lsn,
        torn_bytes = recovery.torn_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered the write-ahead log"
    );
    engine.attach_log(wal.clone());
    Ok(RunningLog::Embedded(wal))
}

/// A bulk load's graph is only in the checkpoint written after its marker. Replaying a
/// marker means recovery started from a checkpoint older than it: either that load never
/// finished (the server stopped before its checkpoint, so it never served it: its namespace
/// stays empty, and `--snapshot` loads it again), or the checkpoint that held it is the
/// damaged one recovery fell back past, and starting would lose what it acknowledged.
fn refuse_lost_bulk_loads(config: &Config, restored: Lsn, bulk_loads: &[Lsn]) -> Result<(), ServeError> {
    let newest = checkpoints::newest(&checkpoints::dir(&config.server.data_dir)).map_or(0, |(lsn, _)| lsn);
    for &lsn in bulk_loads {
        if lsn <= newest && newest > restored {
            return Err(ServeError::BulkLoadLost { lsn, newest, restored });
        }
        tracing::warn!(lsn, "a bulk load at this LSN did not finish before the server stopped; its namespace is empty");
    }
    Ok(())
}

/// Follows the Kafka topic from its start until the records written before now are applied
/// (waiting for the broker as long as it takes), then attaches the producer for writes.
async fn follow_kafka(config: &Config, engine: &Arc<Engine>) -> Result<RunningLog, ServeError> {
    let section = &config.wal.kafka;
    let options = config.kafka_options();
    let started = std::time::Instant::now();
    // From the newest checkpoint's offset (LSN = offset + 1 on every server), or the topic's
    // first record: the consumed position is the one stored with the state it produced.
    let checkpoint = restore_checkpoint(config, engine).await?;
    let wal = KafkaWal::open(&options, engine.commit_sink(), checkpoint as i64)?;
    let stats = wal.follower.stats();
    let caught_up = tokio::task::spawn_blocking(move || stats.wait_caught_up()).await?.map_err(ServeError::Log)?;
    engine.wait_applied(caught_up.max(checkpoint)).await?;
    tracing::info!(
        brokers = %section.brokers,
        topic = %section.topic,
        last_lsn = caught_up,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "caught up with the Kafka log"
    );
    engine.attach_log(wal.log.clone());
    Ok(RunningLog::Kafka { _wal: Box::new(wal) })
}

/// Takes an exclusive lock on the data directory, so two servers never share one log.
fn lock_data_dir(dir: &std::path::Path) -> Result<File, ServeError> {
    let path = dir.join("LOCK");
    let file = File::create(&path).map_err(io(format!("create {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServeError::Locked(dir.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(io(format!("lock {}", path.display()))(e)),
    }
}
