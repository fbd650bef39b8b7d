//! Harness for end-to-end tests: spawns the real `prism-graph` binary and talks to it over
//! gRPC with the generated tonic client.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use prism_server::pb::graph_service_client::GraphServiceClient;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

pub mod arbitrary;
pub mod kafka;
pub mod oracle;

pub use prism_proto::graph as pb;
pub type Client = GraphServiceClient<Channel>;

/// How long a server may take to start and recover before a test fails.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The `prism-graph` binary next to this test's executable (cargo builds it for
/// `cargo test --workspace`).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target directory");
    let binary = dir.join("prism-graph");
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or build it with `cargo build -p prism-server`)",
        binary.display()
    );
    binary
}

/// Runs `prism-graph ARGS`; (success, stdout, stderr).
pub async fn cli(args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(binary()).args(args).output().await.expect("run prism-graph");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

/// A free loopback port (bound once and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// How to start a server.
#[derive(Clone)]
pub struct ServerSpec {
    pub data_dir: PathBuf,
    pub workers: usize,
    pub extra_args: Vec<String>,
    /// Environment variables for the server process.
    pub env: Vec<(String, String)>,
}

/// A running `prism-graph serve` process.
pub struct Server {
    child: Child,
    pub address: SocketAddr,
    pub log_path: PathBuf,
}

impl ServerSpec {
    pub fn new(data_dir: &Path, workers: usize) -> Self {
        ServerSpec { data_dir: data_dir.to_owned(), workers, extra_args: Vec::new(), env: Vec::new() }
    }

    /// Two workers on `dir/data`, with a config file of `yaml`.
    pub fn configured(dir: &Path, yaml: &str) -> Self {
        ServerSpec { extra_args: config_args(dir, yaml), ..ServerSpec::new(&dir.join("data"), 2) }
    }

    fn command(&self, log_path: &Path) -> Command {
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--workers")
            .arg(self.workers.to_string())
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log_path).expect("server log file"))
            .kill_on_drop(true);
        command
    }

    /// Starts the server and waits until it reports SERVING.
    pub async fn start(&self) -> Server {
        let server = self.spawn().await.unwrap_or_else(|log| panic!("server did not start:\n{log}"));
        server.wait_serving().await;
        server
    }

    /// Spawns the server and waits for its listen address; on failure, returns its log.
    pub async fn spawn(&self) -> Result<Server, String> {
        let log_path = self.data_dir.with_extension(format!("{}.log", unique()));
        let mut child = self.command(&log_path).spawn().expect("spawn prism-graph");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        // Timely may print its own lines (cluster connection progress) before ours.
        let find_address = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(address) = line.strip_prefix("prism-graph listening on ") {
                    return address.trim().parse::<SocketAddr>().ok();
                }
            }
            None
        };
        let address = match tokio::time::timeout(START_TIMEOUT, find_address).await {
            Ok(Some(address)) => address,
            _ => {
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                return Err(read_log());
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server { child, address, log_path })
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub async fn client(&self) -> Client {
        let channel = Channel::from_shared(self.url()).expect("url").connect().await.expect("connect to the server");
        GraphServiceClient::new(channel).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20)
    }

    /// Waits, through the health service's Watch stream, until the server is SERVING.
    pub async fn wait_serving(&self) {
        let wait = async {
            let channel = Channel::from_shared(self.url()).expect("url").connect().await.expect("connect");
            let mut health = HealthClient::new(channel);
            let request = HealthCheckRequest { service: "prism.graph.v1.GraphService".into() };
            let mut statuses = health.watch(request).await.expect("health watch").into_inner();
            while let Some(status) = statuses.message().await.expect("health stream") {
                if status.status == ServingStatus::Serving as i32 {
                    return;
                }
            }
            panic!("health stream ended before SERVING");
        };
        if tokio::time::timeout(START_TIMEOUT, wait).await.is_err() {
            panic!("server not SERVING after {START_TIMEOUT:?}:\n{}", self.log());
        }
    }

    /// The server's log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILL: no shutdown path runs.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Waits for the process to exit on its own; returns whether it succeeded.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<bool> {
        tokio::time::timeout(limit, self.child.wait()).await.ok().and_then(|r| r.ok()).map(|s| s.success())
    }
}

/// Attaches `x-prism-namespace` (and other metadata) to a request.
pub fn request<T>(message: T, namespace: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(ns) = namespace {
        request.metadata_mut().insert("x-prism-namespace", ns.parse().expect("ascii namespace"));
    }
    request
}

/// The `x-prism-lsn` of a reply.
pub fn lsn_of<T>(response: &tonic::Response<T>) -> u64 {
    response
        .metadata()
        .get("x-prism-lsn")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("every reply carries x-prism-lsn")
}

pub fn string(s: &str) -> pb::Value {
    pb::Value { value: Some(pb::value::Value::StringValue(s.into())) }
}

pub fn int(i: i64) -> pb::Value {
    pb::Value { value: Some(pb::value::Value::IntValue(i)) }
}

pub fn vertex_request(id: &str, label: &str, props: &[(&str, pb::Value)]) -> pb::CreateVertexRequest {
    pb::CreateVertexRequest {
        id: id.into(),
        label: label.into(),
        properties: props.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
    }
}

pub fn edge_request(id: &str, label: &str, from: &str, to: &str) -> pb::CreateEdgeRequest {
    pb::CreateEdgeRequest {
        id: id.into(),
        label: label.into(),
        from_vertex_id: from.into(),
        to_vertex_id: to.into(),
        properties: Default::default(),
    }
}

/// Starts a cluster of `processes` × 1 worker on loopback; returns the servers, process 0
/// first, once each is SERVING.
pub async fn start_cluster(base: &Path, processes: usize) -> Vec<Server> {
    start_cluster_with(base, processes, Vec::new()).await
}

/// As [`start_cluster`], with `extra_args` for every process.
pub async fn start_cluster_with(base: &Path, processes: usize, extra_args: Vec<String>) -> Vec<Server> {
    let hostfile = base.join("hosts.txt");
    let hosts: Vec<String> = (0..processes).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    std::fs::write(&hostfile, hosts.join("\n")).expect("write hostfile");
    let mut spawning = Vec::new();
    for process in 0..processes {
        let mut spec = ServerSpec::new(&base.join(format!("p{process}")), 1);
        spec.extra_args = extra_args.clone();
        spec.extra_args.extend([
            "--processes".into(),
            processes.to_string(),
            "--process".into(),
            process.to_string(),
            "--hostfile".into(),
            hostfile.display().to_string(),
        ]);
        // Every process must be up for any to finish connecting: spawn all, then wait.
        spawning.push(tokio::spawn(async move { spec.spawn().await }));
    }
    let mut servers = Vec::new();
    for handle in spawning {
        servers.push(handle.await.expect("spawn task").unwrap_or_else(|log| panic!("cluster process failed:\n{log}")));
    }
    for server in &servers {
        server.wait_serving().await;
    }
    servers
}

impl Server {
    /// SIGTERM: the graceful path.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        }
    }
}

/// Flags for a config file of `yaml`, written under `dir`.
pub fn config_args(dir: &Path, yaml: &str) -> Vec<String> {
    let path = dir.join(format!("config-{}.yaml", unique()));
    std::fs::write(&path, yaml).expect("write the config file");
    vec!["--config".into(), path.display().to_string()]
}

/// The config of a server that checkpoints every 200 ms into a log of 2 KiB segments: the
/// tests of checkpoints see several, and the segments they cover go.
pub const FREQUENT_CHECKPOINTS: &str = "server:\n  checkpoint_interval: 200ms\nwal:\n  segment_bytes: 2048\n";

/// Flags for a config file that gives queries 10 s instead of the 100 ms default: tests that
/// check answers must not fail because a loaded machine is slow.
pub fn generous_limits(dir: &Path) -> Vec<String> {
    let path = dir.join("generous.yaml");
    std::fs::write(&path, "namespaces:\n  - name: default\n    performance:\n      traversal_timeout: 10s\n")
        .expect("write the config file");
    vec!["--config".into(), path.display().to_string()]
}

/// The LSN of the newest checkpoint under a server's data directory, if any.
pub fn newest_checkpoint(data_dir: &Path) -> Option<u64> {
    checkpoints(data_dir).last().copied()
}

/// The LSNs of the checkpoints kept under a server's data directory, oldest first.
pub fn checkpoints(data_dir: &Path) -> Vec<u64> {
    let mut lsns: Vec<u64> = std::fs::read_dir(data_dir.join("checkpoints"))
        .map(|entries| {
            entries
                .filter_map(|entry| {
                    let name = entry.ok()?.file_name();
                    name.to_str()?.strip_prefix("checkpoint-")?.strip_suffix(".snap")?.parse::<u64>().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    lsns.sort();
    lsns
}

/// The first LSNs of the embedded log's segment files under a server's data directory, in
/// order.
pub fn segment_starts(data_dir: &Path) -> Vec<u64> {
    let mut starts: Vec<u64> = std::fs::read_dir(data_dir.join("wal"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("wal-")?.strip_suffix(".log")?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    starts.sort();
    starts
}

/// Waits (up to 30 s) until `done` holds, checking it every 10 ms: for what a server does on
/// its own schedule (checkpoints). The pause only spaces the checks, so that they do not
/// take the server's cores; nothing assumes it is long enough.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let wait = async {
        let mut checks = tokio::time::interval(Duration::from_millis(10));
        while !done() {
            checks.tick().await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), wait).await.is_err() {
        panic!("{what}: not within 30 s");
    }
}

/// One scrape: every sample by its name with labels, as the text exposition writes it.
pub async fn scrape(port: u16) -> std::collections::HashMap<String, f64> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("the metrics endpoint");
    tokio::io::AsyncWriteExt::write_all(
        &mut stream,
        b"GET /metrics HTTP/1.1\r\nHost: prism\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut reply = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut reply).await.unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample: {line:?}"));
            (name.to_owned(), value.parse().unwrap_or_else(|_| panic!("a number: {line:?}")))
        })
        .collect()
}

/// Scrapes `port` until `done` holds for a scrape (each 100 ms, at most 30 s): for gauges a
/// server updates on its own schedule, with no event to wait for.
pub async fn scrape_until(
    port: u16,
    what: &str,
    mut done: impl FnMut(&std::collections::HashMap<String, f64>) -> bool,
) {
    let wait = async {
        let mut scrapes = tokio::time::interval(Duration::from_millis(100));
        loop {
            scrapes.tick().await;
            if done(&scrape(port).await) {
                return;
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), wait).await.is_err() {
        panic!("{what}: not within 30 s: {:#?}", scrape(port).await);
    }
}

/// Fails unless `result` is an error with `code` whose message mentions `mentions`.
pub async fn expect_code<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: tonic::Code, mentions: &str) {
    match result {
        Ok(value) => panic!("expected {code:?}, got {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert!(status.message().contains(mentions), "{:?} should mention {mentions:?}", status.message());
        }
    }
}
