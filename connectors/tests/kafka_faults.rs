//! The Kafka log against librdkafka's mock cluster, where a broker can be taken down and
//! brought back at a precise moment.

use std::time::Duration;

use prism_connectors::kafka::{KafkaOptions, KafkaWal};
use prism_dataflows::{CommitSink, Committed, Namespace, Ticket, WriteLog, WriteOp, WriteRecord};
use rdkafka::mocking::MockCluster;

const TOPIC: &str = "graph-log";

fn record(id: &str) -> WriteRecord {
    let op = WriteOp::CreateVertex { id: id.into(), label: "V".into(), properties: Default::default() };
    WriteRecord { namespace: Namespace::default(), atomic: true, timestamp: 1, ops: vec![op], ..Default::default() }
}

fn next(received: &crossbeam_channel::Receiver<Committed>, within: Duration) -> Committed {
    received.recv_timeout(within).expect("the log answers in time")
}

#[test]
fn writes_fail_in_bounded_time_while_the_broker_is_down_and_ingestion_resumes_after() {
    let cluster = MockCluster::new(1).expect("a mock cluster");
    cluster.create_topic(TOPIC, 1, 1).expect("the topic");
    let mut options = KafkaOptions::new(&cluster.bootstrap_servers(), TOPIC);
    options.write_timeout = Duration::from_secs(1);
    let (sink, received) = CommitSink::detached();
    let wal = KafkaWal::open(&options, sink, 0).expect("the log");
    assert_eq!(wal.follower.stats().wait_caught_up(), Ok(0), "an empty topic");

    wal.log.append(record("a"), Ticket::unattached(1));
    match next(&received, Duration::from_secs(10)) {
        Committed::Record { lsn, record, ticket } => {
            assert_eq!(lsn, 1);
            assert_eq!(record.ops.len(), 1);
            assert_eq!(ticket, Some(Ticket::unattached(1)), "this server's record comes back with its ticket");
        }
        other => panic!("expected the record, got {other:?}"),
    }

    cluster.broker_down(1).expect("broker down");
    let started = std::time::Instant::now();
    wal.log.append(record("b"), Ticket::unattached(2));
    match next(&received, Duration::from_secs(10)) {
        Committed::Failed { ticket, error } => {
            assert_eq!(ticket, Ticket::unattached(2));
            assert!(error.to_string().contains("broker"), "{error}");
        }
        other => panic!("expected the write to fail, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "failed after {:?}", started.elapsed());

    // Once the broker is back (and the clients have reconnected), writes go through again
    // and the follower resumes where it stopped.
    cluster.broker_up(1).expect("broker up");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for request in 3.. {
        assert!(std::time::Instant::now() < deadline, "no write went through after the broker came back");
        wal.log.append(record("c"), Ticket::unattached(request));
        match next(&received, Duration::from_secs(30)) {
            Committed::Record { lsn, ticket, .. } => {
                assert_eq!(ticket, Some(Ticket::unattached(request)));
                assert_eq!(lsn, 2, "the failed records never reached the topic");
                break;
            }
            Committed::Failed { .. } => continue,
            Committed::Restore { .. } => panic!("no checkpoint here"),
        }
    }
}

#[test]
fn undecodable_records_are_counted_skipped_and_dead_lettered_with_their_offset() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::ClientConfig;

    let cluster = MockCluster::new(1).expect("a mock cluster");
    cluster.create_topic(TOPIC, 1, 1).expect("the topic");
    cluster.create_topic("dead", 1, 1).expect("the dead-letter topic");
    let brokers = cluster.bootstrap_servers();
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("producer");
    let good = prism_connectors::codec::encode_record(&record("ok"));
    for payload in [&b"garbage"[..], &good] {
        producer.send(BaseRecord::<(), [u8]>::to(TOPIC).partition(0).payload(payload)).expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("produced");

    let mut options = KafkaOptions::new(&brokers, TOPIC);
    options.dead_letter_topic = Some("dead".into());
    let (sink, received) = CommitSink::detached();
    let wal = KafkaWal::open(&options, sink, 0).expect("the log");
    assert_eq!(wal.follower.stats().wait_caught_up(), Ok(2));
    match next(&received, Duration::from_secs(10)) {
        Committed::Record { lsn, ticket, .. } => assert_eq!((lsn, ticket), (2, None), "offset 0 skipped, LSN 1 unused"),
        other => panic!("expected the good record, got {other:?}"),
    }
    assert_eq!(wal.follower.stats().skipped.load(std::sync::atomic::Ordering::Acquire), 1);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "check")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&["dead"]).expect("subscribe");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(std::time::Instant::now() < deadline, "nothing arrived on the dead-letter topic");
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else { continue };
        assert_eq!(message.payload(), Some(&b"garbage"[..]));
        let headers = message.headers().expect("headers");
        let source = headers.iter().find(|h| h.key == prism_connectors::kafka::SOURCE_OFFSET_HEADER);
        assert_eq!(source.and_then(|h| h.value), Some(&b"0"[..]));
        break;
    }
}
