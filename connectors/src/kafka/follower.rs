//! The consumer side: follows the topic in order and hands every record to the apply stage.
//!
//! It runs on its own thread and keeps trying while the broker is away: at start (the server
//! stays NOT_SERVING until the records written before it started are all handed over) and
//! mid-run (ingestion resumes where it stopped). A record that cannot be decoded is logged
//! with its topic, partition and offset, counted, sent to the dead-letter topic if there is
//! one, and skipped; its LSN stays unused. A record that decodes but breaks a rule of the
//! graph is the apply stage's to reject, identically on every server following the topic.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prism_dataflows::Lsn;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::handover::{Consumed, Handover};
use super::{
    client, KafkaError, KafkaOptions, ERROR_HEADER, PARTITION, SEQUENCE_HEADER, SOURCE_OFFSET_HEADER, WRITER_HEADER,
};
use crate::codec;

/// How long one request to the broker may take before the follower tries again.
const BROKER_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(100);
/// How often the consumer lag is measured for the metrics.
const LAG_EVERY: Duration = Duration::from_secs(1);
/// How long the lag's question to the broker may take.
const LAG_TIMEOUT: Duration = Duration::from_millis(200);

/// Where the follower stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Not yet through the records the topic held when the follower started.
    CatchingUp,
    /// Every record up to this LSN (the topic's end when the follower started) is handed over.
    CaughtUp(Lsn),
    /// The log cannot be followed (a topic of several partitions, say).
    Failed(String),
}

/// What the follower has done, for the server and its tests.
pub struct FollowerStats {
    progress: Mutex<Progress>,
    changed: Condvar,
    /// Records that could not be decoded and were skipped.
    pub skipped: AtomicU64,
}

impl FollowerStats {
    fn set(&self, progress: Progress) {
        if let Ok(mut current) = self.progress.lock() {
            *current = progress;
        }
        self.changed.notify_all();
    }

    /// Blocks until the follower has caught up (its LSN) or failed (why).
    pub fn wait_caught_up(&self) -> Result<Lsn, String> {
        let Ok(mut progress) = self.progress.lock() else { return Err("poisoned".into()) };
        loop {
            match &*progress {
                Progress::CaughtUp(lsn) => return Ok(*lsn),
                Progress::Failed(why) => return Err(why.clone()),
                Progress::CatchingUp => {
                    progress = self.changed.wait(progress).map_err(|_| "poisoned".to_string())?;
                }
            }
        }
    }
}

pub struct KafkaFollower {
    stats: Arc<FollowerStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KafkaFollower {
    pub(crate) fn start(
        options: &KafkaOptions,
        handover: Arc<Handover>,
        writer: String,
        start_offset: i64,
    ) -> Result<KafkaFollower, KafkaError> {
        let mut config = options.client_config();
        config.set("group.id", format!("prism-graph-{writer}"));
        config.set("enable.auto.commit", "false");
        config.set("enable.auto.offset.store", "false");
        config.set("auto.offset.reset", "earliest");
        // A write waits for its record to come back: fetch often rather than let the broker
        // hold an empty fetch for librdkafka's default 500 ms (brokers that answer a fetch as
        // soon as data arrives do not need this; it costs an idle follower ~200 fetches/s).
        config.set("fetch.wait.max.ms", "5");
        config.set("fetch.error.backoff.ms", "5");
        for (key, value) in &options.properties {
            config.set(key, value);
        }
        let consumer: BaseConsumer = config.create().map_err(client("consumer"))?;
        let admin: AdminClient<DefaultClientContext> = options.client_config().create().map_err(client("admin"))?;
        let dead_letters = match &options.dead_letter_topic {
            Some(topic) => {
                let producer: ThreadedProducer<DefaultProducerContext> =
                    options.client_config().create().map_err(client("dead-letter producer"))?;
                Some((producer, topic.clone()))
            }
            None => None,
        };
        let stats = Arc::new(FollowerStats {
            progress: Mutex::new(Progress::CatchingUp),
            changed: Condvar::new(),
            skipped: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let follow = Follow {
            options: options.clone(),
            consumer,
            admin,
            dead_letters,
            handover,
            writer,
            stats: stats.clone(),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("prism-kafka-follower".into())
            .spawn(move || follow.run(start_offset))
            .map_err(KafkaError::Thread)?;
        Ok(KafkaFollower { stats, stop, thread: Some(thread) })
    }

    pub fn stats(&self) -> Arc<FollowerStats> {
        self.stats.clone()
    }
}

impl Drop for KafkaFollower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Follow {
    options: KafkaOptions,
    consumer: BaseConsumer,
    admin: AdminClient<DefaultClientContext>,
    dead_letters: Option<(ThreadedProducer<DefaultProducerContext>, String)>,
    handover: Arc<Handover>,
    writer: String,
    stats: Arc<FollowerStats>,
    stop: Arc<AtomicBool>,
}

impl Follow {
    fn run(self, start_offset: i64) {
        // The topic's end when we start: everything before it is replayed before SERVING.
        let end = loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            match self.prepare_topic() {
                Ok(end) => break end,
                Err(Fatal(why)) => {
                    tracing::error!(%why, "cannot follow the log");
                    self.stats.set(Progress::Failed(why));
                    return;
                }
                Err(Retry(why)) => {
                    tracing::warn!(brokers = %self.options.brokers, %why, "the log's topic is not ready; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        };
        let mut assignment = TopicPartitionList::new();
        if let Err(error) =
            assignment.add_partition_offset(&self.options.topic, PARTITION, Offset::Offset(start_offset))
        {
            self.stats.set(Progress::Failed(format!("assign {}: {error}", self.options.topic)));
            return;
        }
        if let Err(error) = self.consumer.assign(&assignment) {
            self.stats.set(Progress::Failed(format!("assign {}: {error}", self.options.topic)));
            return;
        }
        let end_lsn = end.max(0) as Lsn;
        if start_offset >= end {
            self.stats.set(Progress::CaughtUp(end_lsn));
        }
        let mut caught_up = start_offset >= end;
        let mut last_error = String::new();
        let (mut next_offset, mut lag_measured) = (start_offset, Instant::now());
        while !self.stop.load(Ordering::Acquire) {
            // The partition's end, asked of the broker once a second (briefly: a broker that is
            // away already shows in the poll's errors).
            if self.options.measure_lag && lag_measured.elapsed() >= LAG_EVERY {
                let watermarks = self.consumer.fetch_watermarks(&self.options.topic, PARTITION, LAG_TIMEOUT);
                if let Ok((_, high)) = watermarks {
                    metrics::gauge!("prism_log_end_lsn").set(high as f64);
                    metrics::gauge!("prism_kafka_consumer_lag").set((high - next_offset).max(0) as f64);
                }
                lag_measured = Instant::now();
            }
            match self.consumer.poll(POLL) {
                Some(Ok(message)) => {
                    next_offset = message.offset() + 1;
                    self.deliver(&message);
                    if !caught_up && message.offset() + 1 >= end {
                        caught_up = true;
                        self.stats.set(Progress::CaughtUp(end_lsn));
                    }
                }
                Some(Err(error)) => {
                    let error = error.to_string();
                    // The same error repeats on every poll while the broker is away.
                    if error != last_error {
                        tracing::warn!(topic = %self.options.topic, %error, "consuming the log");
                        last_error = error;
                    }
                }
                None => {}
            }
        }
    }

    /// Creates the topic if it is missing, checks it has one partition, and returns its end.
    fn prepare_topic(&self) -> Result<i64, Problem> {
        let topic = &self.options.topic;
        let metadata = self.consumer.fetch_metadata(Some(topic), BROKER_TIMEOUT).map_err(|e| Retry(e.to_string()))?;
        let partitions =
            metadata.topics().first().map_or(0, |t| if t.error().is_some() { 0 } else { t.partitions().len() });
        if partitions == 0 {
            block_on(super::create_topic(&self.admin, &self.options)).map_err(Retry)?;
            return Err(Retry(format!("topic {topic} was just created")));
        }
        if partitions > 1 {
            return Err(Fatal(KafkaError::Partitions { topic: topic.clone(), partitions }.to_string()));
        }
        let (_, high) =
            self.consumer.fetch_watermarks(topic, PARTITION, BROKER_TIMEOUT).map_err(|e| Retry(e.to_string()))?;
        Ok(high)
    }

    fn deliver(&self, message: &BorrowedMessage<'_>) {
        let offset = message.offset();
        if let Consumed::Decode = self.handover.consumed(offset, self.own_sequence(message)) {
            let payload = message.payload().unwrap_or_default();
            match codec::decode_record(payload) {
                Ok(record) => self.handover.decoded(offset, Some(record)),
                Err(error) => {
                    let skipped = self.stats.skipped.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::error!(
                        topic = %self.options.topic,
                        partition = message.partition(),
                        offset,
                        %error,
                        skipped,
                        "skipping a record that is not a wal.proto WALRecord"
                    );
                    self.dead_letter(payload, offset, &error.to_string());
                    self.handover.decoded(offset, None);
                }
            }
        }
    }

    /// The sequence number of a record this server wrote.
    fn own_sequence(&self, message: &BorrowedMessage<'_>) -> Option<u64> {
        let headers = message.headers()?;
        let mut writer = None;
        let mut sequence = None;
        for header in headers.iter() {
            match header.key {
                WRITER_HEADER => writer = header.value,
                SEQUENCE_HEADER => sequence = header.value,
                _ => {}
            }
        }
        if writer? != self.writer.as_bytes() {
            return None;
        }
        std::str::from_utf8(sequence?).ok()?.parse().ok()
    }

    fn dead_letter(&self, payload: &[u8], offset: i64, error: &str) {
        let Some((producer, topic)) = &self.dead_letters else { return };
        let source = offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: SOURCE_OFFSET_HEADER, value: Some(source.as_bytes()) })
            .insert(Header { key: ERROR_HEADER, value: Some(error.as_bytes()) });
        let record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(payload).headers(headers);
        if let Err((error, _)) = producer.send(record) {
            tracing::error!(%topic, offset, %error, "could not send a record to the dead-letter topic");
        }
    }
}

/// Why preparing the topic did not work.
enum Problem {
    /// Try again (the broker is away, the topic is being created).
    Retry(String),
    /// Give up (the topic cannot be this log).
    Fatal(String),
}
use Problem::{Fatal, Retry};

/// Runs one admin future to completion on this thread (the admin client answers from its own
/// thread, so this only waits).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}
