//! Apache Kafka as the write-ahead log: one single-partition topic of wal.proto records.
//!
//! - [`KafkaLog`] is the engine's [`WriteLog`](prism_dataflows::WriteLog): it produces each
//!   record as one Kafka message through the idempotent producer (acks=all), keyed by its
//!   namespace, with headers naming this server and the write's sequence number.
//! - [`KafkaFollower`] consumes the topic in order — this server's records and any other
//!   producer's alike — and hands each to the [`CommitSink`] at LSN = offset + 1, with the
//!   waiting write's ticket when the headers say this server wrote it. A write is answered
//!   once its record is handed over and applied, so a reply means the broker holds it; this
//!   server's own records are handed over as soon as the broker reports their offset, in
//!   offset order with everything else (see `handover.rs`).
//!
//! One partition, because the LSN is the record's position in one total order; the topic is
//! created with one partition if it does not exist, and a topic with more is refused.

mod follower;
mod handover;
mod log;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;

pub use follower::{FollowerStats, KafkaFollower};
pub use log::KafkaLog;

/// Header naming the server that wrote a record (absent on other producers' records).
pub const WRITER_HEADER: &str = "prism-writer";
/// Header carrying the writer's sequence number of the record.
pub const SEQUENCE_HEADER: &str = "prism-sequence";
/// Headers a dead-lettered record carries: where it came from and why it was refused.
pub const SOURCE_OFFSET_HEADER: &str = "prism-source-offset";
pub const ERROR_HEADER: &str = "prism-error";

/// The partition every record goes to.
pub const PARTITION: i32 = 0;

#[derive(Clone, Debug)]
pub struct KafkaOptions {
    /// `host:port[,host:port…]`
    pub brokers: String,
    pub topic: String,
    /// librdkafka properties for both producer and consumer (security, tuning), passed as
    /// they are; they override this connector's own settings.
    pub properties: BTreeMap<String, String>,
    /// Where undecodable records go, with their source offset and the error; when unset they
    /// are logged, counted and skipped.
    pub dead_letter_topic: Option<String>,
    /// How long a record may wait for the broker before its write fails.
    pub write_timeout: Duration,
    /// The replication factor a topic is created with when it does not exist.
    pub replication_factor: i32,
    /// The largest encoded record this server produces (see [`KafkaOptions::record_limit`]).
    pub max_record_bytes: usize,
    /// Whether the follower measures its lag for the metrics (a question to the broker once a
    /// second, on the thread that consumes).
    pub measure_lag: bool,
}

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Room in a message for the key (a namespace) and this server's headers.
const MESSAGE_OVERHEAD_BYTES: usize = 1024;

impl KafkaOptions {
    pub fn new(brokers: &str, topic: &str) -> Self {
        KafkaOptions {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            properties: BTreeMap::new(),
            dead_letter_topic: None,
            write_timeout: Duration::from_secs(5),
            replication_factor: 1,
            max_record_bytes: crate::wal::DEFAULT_MAX_RECORD_BYTES,
            measure_lag: false,
        }
    }

    /// The largest payload a record may have: `max_record_bytes`, and what the producer's
    /// `message.max.bytes` leaves once the key and headers are in (a larger message would be
    /// refused by the producer after the write was accepted here).
    pub fn record_limit(&self) -> usize {
        let message_max = self
            .properties
            .get("message.max.bytes")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        self.max_record_bytes.min(message_max.saturating_sub(MESSAGE_OVERHEAD_BYTES))
    }

    /// A producer's settings: durable in the broker before acknowledged (acks=all), no
    /// duplicates on retry and in order (idempotence), sent at once, failed after
    /// `write_timeout`; the configured properties last, so they can override.
    fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config.set("enable.idempotence", "true");
        config.set("acks", "all");
        config.set("linger.ms", "0");
        config.set("message.timeout.ms", self.write_timeout.as_millis().max(1).to_string());
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// The client settings every connection of this log starts from.
    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        // A broker that comes back is found within a second, not librdkafka's default 10 s.
        config.set("reconnect.backoff.max.ms", "1000");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka {what}: {source}")]
    Client { what: String, source: rdkafka::error::KafkaError },
    #[error("kafka: {0}")]
    Topic(String),
    #[error("could not start the follower thread: {0}")]
    Thread(std::io::Error),
    #[error("topic {topic} has {partitions} partitions; the log needs exactly one (its order is the LSN order)")]
    Partitions { topic: String, partitions: usize },
}

fn client(what: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> KafkaError {
    let what = what.into();
    move |source| KafkaError::Client { what, source }
}

/// A name for this server's records that no other server (or restart) shares.
fn writer_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos:x}", std::process::id())
}

/// The log on Kafka: the producer side and the follower, sharing what writes wait for.
pub struct KafkaWal {
    pub log: Arc<KafkaLog>,
    pub follower: KafkaFollower,
}

impl KafkaWal {
    /// Connects to the broker (retrying until `give_up` passes), makes sure the topic exists
    /// with one partition, and starts following it from `start_offset`. Records reach `sink`
    /// from then on; [`KafkaFollower::wait_caught_up`] says when the topic's records up to
    /// now are all delivered.
    pub fn open(
        options: &KafkaOptions,
        sink: prism_dataflows::CommitSink,
        start_offset: i64,
    ) -> Result<KafkaWal, KafkaError> {
        let handover = Arc::new(handover::Handover::new(sink, start_offset));
        let writer = writer_id();
        let log = Arc::new(KafkaLog::new(options, handover.clone(), writer.clone())?);
        let follower = KafkaFollower::start(options, handover, writer, start_offset)?;
        Ok(KafkaWal { log, follower })
    }
}

/// Creates the log's topic with one partition (nothing if it exists).
pub(crate) async fn create_topic(
    admin: &rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>,
    options: &KafkaOptions,
) -> Result<(), String> {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let topic = &options.topic;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(options.replication_factor));
    let results =
        admin.create_topics([&new], &AdminOptions::new()).await.map_err(|e| format!("create topic {topic}: {e}"))?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(%topic, "created the log's topic (one partition)"),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(format!("create topic {topic}: {code}")),
        }
    }
    Ok(())
}

/// Makes sure the log's topic exists (with one partition when this creates it).
pub async fn ensure_topic(options: &KafkaOptions) -> Result<(), KafkaError> {
    let admin = options.client_config().create().map_err(client("admin"))?;
    create_topic(&admin, options).await.map_err(KafkaError::Topic)
}

/// A producer of log records as any other program would write them (without this server's
/// headers): for tools, tests and benchmarks.
pub struct RecordProducer {
    producer: rdkafka::producer::FutureProducer,
    topic: String,
    timeout: Duration,
}

impl RecordProducer {
    pub fn new(options: &KafkaOptions) -> Result<RecordProducer, KafkaError> {
        let producer = options.producer_config().create().map_err(client("producer"))?;
        Ok(RecordProducer { producer, topic: options.topic.clone(), timeout: options.write_timeout })
    }

    /// Sends one record to the log's partition and waits for the broker to take it; returns
    /// its offset (LSN − 1).
    pub async fn send(&self, key: &str, payload: &[u8]) -> Result<i64, KafkaError> {
        let record = rdkafka::producer::FutureRecord::to(&self.topic).partition(PARTITION).key(key).payload(payload);
        let delivered = self
            .producer
            .send(record, self.timeout)
            .await
            .map_err(|(source, _)| KafkaError::Client { what: format!("produce to {}", self.topic), source })?;
        Ok(delivered.offset)
    }
}

/// Produces one record with a producer of its own (see [`RecordProducer`]).
pub async fn produce(options: &KafkaOptions, key: &str, payload: &[u8]) -> Result<i64, KafkaError> {
    RecordProducer::new(options)?.send(key, payload).await
}
