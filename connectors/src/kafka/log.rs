//! The producer side: each record one message, idempotent, acks=all, at most
//! `write_timeout` in flight before its write fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prism_dataflows::{Ticket, WriteLog, WriteRecord};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::handover::Handover;
use super::{client, KafkaError, KafkaOptions, PARTITION, SEQUENCE_HEADER, WRITER_HEADER};
use crate::codec;

/// Tells the handover where the broker put each record, or fails its write.
struct Delivery {
    handover: Arc<Handover>,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, sequence: Box<u64>) {
        match result {
            Ok(message) => self.handover.placed(*sequence, message.offset()),
            Err((error, _)) => {
                tracing::warn!(%error, "the broker did not take a record");
                self.handover.not_taken(*sequence, format!("the broker did not take the record: {error}"));
            }
        }
    }
}

pub struct KafkaLog {
    producer: ThreadedProducer<Delivery>,
    /// The largest payload sent: the smaller of the configured limit and what the producer's
    /// `message.max.bytes` lets through with the key and headers.
    max_record_bytes: usize,
    topic: String,
    writer: String,
    next_sequence: AtomicU64,
    handover: Arc<Handover>,
}

impl KafkaLog {
    pub(crate) fn new(options: &KafkaOptions, handover: Arc<Handover>, writer: String) -> Result<KafkaLog, KafkaError> {
        let config = options.producer_config();
        let context = Delivery { handover: handover.clone() };
        let producer = config.create_with_context(context).map_err(client("producer"))?;
        Ok(KafkaLog {
            producer,
            max_record_bytes: options.record_limit(),
            topic: options.topic.clone(),
            writer,
            next_sequence: AtomicU64::new(1),
            handover,
        })
    }

    /// Waits up to `timeout` for every record handed over to reach the broker.
    pub fn flush(&self, timeout: std::time::Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout).map_err(client("flush"))
    }
}

impl WriteLog for KafkaLog {
    fn append(&self, record: WriteRecord, ticket: Ticket) {
        // A larger message would be dropped by the producer after the write was accepted here.
        let payload = match codec::encode_within(&record, self.max_record_bytes) {
            Ok(payload) => payload,
            Err(too_large) => {
                let message = format!("{too_large} (on Kafka, the producer's message.max.bytes bounds it too)");
                return self.handover.too_large(ticket, message);
            }
        };
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let sequence_text = sequence.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: WRITER_HEADER, value: Some(self.writer.as_bytes()) })
            .insert(Header { key: SEQUENCE_HEADER, value: Some(sequence_text.as_bytes()) });
        let namespace = record.namespace.clone();
        self.handover.waiting(sequence, ticket, record);
        let message = BaseRecord::with_opaque_to(&self.topic, Box::new(sequence))
            .partition(PARTITION)
            .key(namespace.as_str())
            .payload(&payload)
            .headers(headers);
        if let Err((error, _)) = self.producer.send(message) {
            self.handover.not_taken(sequence, format!("could not hand the record to the producer: {error}"));
        }
    }
}
