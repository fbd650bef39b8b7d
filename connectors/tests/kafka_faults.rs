//! The Kafka log against librdkafka's mock cluster, where a broker can be taken down and
//! brought back at a precise moment.

use std::time::Duration;

use prism_connectors::kafka::{KafkaOptions, KafkaWal};
use prism_dataflows::{CommitSink, Committed, Namespace, Ticket, WriteLog, WriteOp, WriteRecord};
use rdkafka::mocking::MockCluster;

const TOPIC: &str = "graph-log";

fn record(id: &str) -> WriteRecord {
    let op = WriteOp::CreateVertex { id: id.into(), label: "V".into(), properties: Default::default() };
    WriteRecord { namespace: Namespace::default(), atomic: true, timestamp: 1, ops: vec![op] }
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
            assert!(error.contains("broker"), "{error}");
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
        }
    }
}
