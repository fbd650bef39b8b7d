//! A Kafka-protocol broker for the tests: tansu, with in-memory storage, on a free port.
//!
//! `./scripts/test` installs tansu (into ~/.cache/prism-graph/tools) and names it in
//! `PRISM_TANSU`; a test run without it fails, saying how to install it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use prism_connectors::kafka::{self, KafkaOptions};
use tokio::process::{Child, Command};

use crate::free_port;

fn tansu() -> PathBuf {
    let path = std::env::var_os("PRISM_TANSU").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/prism-graph/tools/bin/tansu")
    });
    assert!(
        path.exists(),
        "the Kafka tests need the tansu broker at {}: run ./scripts/test, which installs it, or \
         `cargo install tansu --version 0.6.0 --features dynostore --root ~/.cache/prism-graph/tools`",
        path.display()
    );
    path
}

/// A running broker; killed when dropped.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
}

impl Broker {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub async fn start() -> Broker {
        Broker::start_on(free_port()).await
    }

    /// Starts a broker on `port` (a server may already be waiting for it there).
    pub async fn start_on(port: u16) -> Broker {
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tansu");
        let ready = async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), ready).await.expect("tansu listening within 30 s");
        Broker { child: Some(child), port }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker (its in-memory topics are gone with it).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Produces `payload` to `topic`, partition 0, as a program other than prism-graph
    /// would; returns the offset it got.
    pub async fn produce(&self, topic: &str, key: &str, payload: &[u8]) -> i64 {
        let mut options = KafkaOptions::new(&self.address(), topic);
        options.write_timeout = Duration::from_secs(10);
        kafka::produce(&options, key, payload).await.expect("the broker takes the record")
    }
}

/// Server flags for the Kafka log on `broker`'s address.
pub fn kafka_args(address: &str, topic: &str) -> Vec<String> {
    ["--wal", "kafka", "--kafka-brokers", address, "--kafka-topic", topic].iter().map(|s| s.to_string()).collect()
}
