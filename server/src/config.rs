//! Server configuration: a YAML file in the shape of RFC-055's namespace config, overridden
//! by command-line flags.
//!
//! ```yaml
//! server:
//!   listen: 127.0.0.1:50090
//!   data_dir: ./data
//!   workers: 2
//!   checkpoint_interval: 5m
//!   max_element_bytes: 1048576       # largest vertex or edge
//!   max_standing_page_ranks: 16      # distinct SubscribePageRank parameter sets at once
//!   request_id_window: 10m           # x-prism-request-id remembered this long (record time)
//!   request_id_capacity: 100000      # ... and at most this many
//! wal:
//!   backend: embedded          # or kafka (then the kafka section below)
//!   truncate_corrupt: false
//!   max_record_bytes: 67108864 # largest log record (one write, encoded)
//!   kafka:
//!     brokers: 127.0.0.1:9092
//!     topic: prism-graph-wal   # one partition; created if missing
//!     write_timeout: 5s        # a write the broker has not taken by then fails UNAVAILABLE
//!     dead_letter_topic: prism-graph-wal-dead   # undecodable records go here (else skipped)
//!     properties:              # librdkafka properties, passed through
//!       security.protocol: plaintext
//! namespaces:
//!   - name: default
//!     pattern: graph
//!     backend:
//!       type: memstore
//!     performance:
//!       traversal_timeout: 100ms
//!       max_traversal_depth: 6
//!       batch_size: 10000
//! ```
//! Every key is checked: an unknown key or a bad value is an error naming it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prism_dataflows::RequestIdLimits;
use prism_dataflows::{Capacities, Capacity, ElementLimits, Namespace};
use serde::{Deserialize, Deserializer};

/// The largest `server.max_element_bytes`: half a snapshot record, well within a gRPC reply.
const MAX_ELEMENT_BYTES: usize = 32 << 20;

/// The largest `wal.max_record_bytes`: a log frame's limit, less its header.
const MAX_RECORD_BYTES: usize = (256 << 20) - 64;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{0}")]
    Setting(String),
}

/// The whole configuration, after the file and the flags are merged.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerSection,
    pub cluster: Option<ClusterSection>,
    pub wal: WalSection,
    pub namespaces: Vec<NamespaceSection>,
    /// Access control; without it the server is open, and listens on loopback only unless
    /// `server.insecure` (`--insecure`) says otherwise.
    pub security: Option<SecuritySection>,
}

/// `security:` the tokens a client may present (`authorization: Bearer <token>`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySection {
    /// With none listed, calls need no token (TLS alone, or mTLS, secures the server).
    #[serde(default)]
    pub tokens: Vec<TokenSection>,
    pub tls: Option<TlsSection>,
    /// Where the audit log goes: a file (appended, fsynced before each mutation is answered)
    /// or `stdout`. One JSON line per mutation; no property values.
    pub audit_log: Option<PathBuf>,
}

/// `security.tls`: the server's certificate chain and key (PEM files), and with `client_ca`
/// every client must present a certificate that CA signed (mutual TLS).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// One token: a name for logs and audit lines, its SHA-256 (`prism-graph token new NAME`
/// prints both), and what it may do.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    pub name: String,
    pub sha256: String,
    pub grants: Vec<GrantSection>,
}

/// What a call does to a namespace; each level includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
    /// Replacing a namespace's contents wholesale (ApplySnapshot).
    Admin,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Admin => "admin",
        }
    }
}

/// `access` (read, write or admin, each including the ones before) to `namespace` (`*`:
/// every namespace).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSection {
    pub namespace: String,
    pub access: Access,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Timely worker threads in this process; 0 means one per core.
    pub workers: usize,
    /// How long a read LSN stays readable after it is applied; bounds query deadlines.
    #[serde(deserialize_with = "duration")]
    pub read_hold: Duration,
    /// How long a write waits for its record to be durable and applied.
    #[serde(deserialize_with = "duration")]
    pub write_timeout: Duration,
    /// How long a read waits for `x-prism-min-lsn` when the call has no deadline.
    #[serde(deserialize_with = "duration")]
    pub read_timeout: Duration,
    /// A snapshot file loaded at start, after recovery (`--snapshot`).
    pub snapshot: Option<PathBuf>,
    /// How often the whole graph is written as a checkpoint (recovery starts from the newest
    /// and the embedded log before it is deleted); 0s: never.
    #[serde(deserialize_with = "duration")]
    pub checkpoint_interval: Duration,
    /// The largest vertex or edge (its strings and properties; see prism_dataflows::limits):
    /// a write that would make one larger, a merge included, is RESOURCE_EXHAUSTED. Every
    /// server following one log must agree on it.
    pub max_element_bytes: usize,
    /// Most standing PageRanks at once (distinct SubscribePageRank parameter sets; any number
    /// of subscribers share one): a new one past it is RESOURCE_EXHAUSTED.
    pub max_standing_page_ranks: usize,
    /// How long (in record time) a write's x-prism-request-id is remembered, so that a retry
    /// answers with the first outcome; and how many ids at most (oldest forgotten first).
    /// Every server following one log must agree on both.
    #[serde(deserialize_with = "duration")]
    pub request_id_window: Duration,
    pub request_id_capacity: usize,
    /// Listen on an address other than loopback without a `security` section (`--insecure`).
    pub insecure: bool,
    /// Where Prometheus scrapes `GET /metrics` (plain HTTP); none: no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 50090)),
            data_dir: PathBuf::from("./data"),
            workers: 0,
            read_hold: Duration::from_secs(2),
            write_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(5),
            snapshot: None,
            checkpoint_interval: Duration::from_secs(300),
            max_element_bytes: ElementLimits::default().max_element_bytes,
            max_standing_page_ranks: 16,
            request_id_window: Duration::from_secs(600),
            request_id_capacity: RequestIdLimits::default().capacity,
            insecure: false,
            metrics_listen: None,
        }
    }
}

impl SecuritySection {
    fn validate(&self) -> Result<(), String> {
        let mut names = HashMap::new();
        let mut hashes = HashMap::new();
        for (i, token) in self.tokens.iter().enumerate() {
            let at = format!("security.tokens[{i}]");
            if token.name.is_empty() {
                return Err(format!("{at}.name: must not be empty"));
            }
            if let Some(first) = names.insert(token.name.as_str(), i) {
                return Err(format!("{at}.name: {:?} is already security.tokens[{first}]", token.name));
            }
            if token.sha256.len() != 64 || !token.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{at}.sha256: must be 64 hex digits (prism-graph token new prints them)"));
            }
            if let Some(first) = hashes.insert(token.sha256.to_ascii_lowercase(), i) {
                return Err(format!("{at}.sha256: the same hash as security.tokens[{first}]"));
            }
            if token.grants.iter().any(|grant| grant.namespace.is_empty()) {
                return Err(format!("{at}.grants: a namespace must not be empty (`*` for every namespace)"));
            }
        }
        Ok(())
    }
}

/// Timely cluster settings (`--processes N --process I --hostfile FILE`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    pub processes: usize,
    pub process: usize,
    /// One `host:port` a line, process 0 first: timely's hostfile format.
    pub hostfile: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalSection {
    pub backend: WalBackend,
    /// Cut the log at damage in its middle instead of refusing to start.
    pub truncate_corrupt: bool,
    pub segment_bytes: u64,
    /// The largest record (one write, encoded) the log takes; a larger write is
    /// RESOURCE_EXHAUSTED and nothing is written. On Kafka the producer's
    /// `message.max.bytes` (librdkafka's default: 1,000,000) bounds it too.
    pub max_record_bytes: usize,
    /// The Kafka topic, when `backend` is kafka.
    pub kafka: KafkaSection,
}

impl Default for WalSection {
    fn default() -> Self {
        WalSection {
            backend: WalBackend::Embedded,
            truncate_corrupt: false,
            segment_bytes: 64 * 1024 * 1024,
            max_record_bytes: prism_connectors::wal::DEFAULT_MAX_RECORD_BYTES,
            kafka: KafkaSection::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WalBackend {
    /// Segment files under the data directory.
    Embedded,
    /// A single-partition Apache Kafka topic.
    Kafka,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSection {
    /// `host:port[,host:port…]`; required with the kafka backend.
    pub brokers: String,
    pub topic: String,
    #[serde(deserialize_with = "duration")]
    pub write_timeout: Duration,
    pub dead_letter_topic: Option<String>,
    /// Replication factor of the topic when this server creates it.
    pub replication_factor: i32,
    /// librdkafka properties for the producer and the consumer, passed as they are.
    pub properties: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaSection {
    fn default() -> Self {
        KafkaSection {
            brokers: String::new(),
            topic: "prism-graph-wal".into(),
            write_timeout: Duration::from_secs(5),
            dead_letter_topic: None,
            replication_factor: 1,
            properties: Default::default(),
        }
    }
}

/// One namespace (RFC-055 shape). Namespaces not listed get the limits of `default`, or the
/// built-in defaults.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSection {
    pub name: String,
    #[serde(default = "graph_pattern")]
    pub pattern: Pattern,
    #[serde(default)]
    pub backend: BackendSection,
    #[serde(default)]
    pub performance: Limits,
    /// Property names whose values are personal data: exports with `mask_pii` write them
    /// as "***". (No log line, audit line or error message carries a property value.)
    #[serde(default)]
    pub pii: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    Graph,
}

fn graph_pattern() -> Pattern {
    Pattern::Graph
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSection {
    #[serde(rename = "type", default)]
    pub kind: BackendKind,
    /// Most vertices the namespace may hold (0: no limit); the apply rules refuse a create
    /// past it with RESOURCE_EXHAUSTED. Servers following one log need the same value.
    #[serde(default)]
    pub max_vertices: u64,
    /// Most edges, likewise.
    #[serde(default)]
    pub max_edges: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Memstore,
}

/// RFC-055's `performance` section: the limits queries and batches run under.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    #[serde(deserialize_with = "duration")]
    pub traversal_timeout: Duration,
    pub max_traversal_depth: u32,
    /// Most items in one batch call.
    pub batch_size: usize,
    /// Most vertices in one level of a traversal.
    pub max_frontier: usize,
    /// Most edges one traversal may expand.
    pub max_expanded_edges: usize,
    /// Most vertices a traversal returns without a smaller `limit`.
    pub max_results: usize,
    /// Most paths a traversal keeps and returns.
    pub max_paths: usize,
    /// How long a one-shot algorithm (PageRank) may run.
    #[serde(deserialize_with = "duration")]
    pub algorithm_timeout: Duration,
    /// Most PageRank iterations a request may ask for.
    pub max_iterations: u32,
    /// Most edges GetVertex returns with include_edges.
    pub max_vertex_edges: usize,
    /// Most hops of an AllPaths path (DetectCycles is capped by max_traversal_depth). A
    /// ShortestPath has no cap but the caller's max_hops: time and max_expanded_edges bound it.
    pub max_path_hops: u32,
    /// Results a PageRank subscriber may fall behind by before it is cut off
    /// (RESOURCE_EXHAUSTED); shared by the subscribers of one parameter set.
    pub subscription_buffer: usize,
    /// How often a PageRank subscription sends a heartbeat when nothing changed.
    #[serde(deserialize_with = "duration")]
    pub subscription_heartbeat: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            traversal_timeout: Duration::from_millis(100),
            max_traversal_depth: 6,
            batch_size: 10_000,
            max_frontier: 100_000,
            max_expanded_edges: 1_000_000,
            max_results: 10_000,
            max_paths: 1_000,
            max_path_hops: 16,
            max_vertex_edges: 10_000,
            algorithm_timeout: Duration::from_secs(60),
            max_iterations: 1_000,
            subscription_buffer: 64,
            subscription_heartbeat: Duration::from_secs(1),
        }
    }
}

impl Config {
    /// Reads a config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::from_yaml(&text).map_err(|message| ConfigError::Invalid { path: path.to_owned(), message })
    }

    /// Parses YAML text; the error names the offending key.
    pub fn from_yaml(text: &str) -> Result<Config, String> {
        let config: Config = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        let mut seen = HashMap::new();
        for (i, ns) in self.namespaces.iter().enumerate() {
            if ns.name.is_empty() {
                return Err(format!("namespaces[{i}].name: must not be empty"));
            }
            if let Some(first) = seen.insert(ns.name.as_str(), i) {
                return Err(format!("namespaces[{i}].name: {:?} is already namespaces[{first}]", ns.name));
            }
            if ns.performance.batch_size == 0 {
                return Err(format!("namespaces[{i}].performance.batch_size: must be at least 1"));
            }
            if ns.performance.subscription_buffer == 0 {
                return Err(format!("namespaces[{i}].performance.subscription_buffer: must be at least 1"));
            }
            if ns.performance.subscription_heartbeat.is_zero() {
                return Err(format!("namespaces[{i}].performance.subscription_heartbeat: must be longer than 0"));
            }
        }
        let element = self.server.max_element_bytes;
        if !(1024..=MAX_ELEMENT_BYTES).contains(&element) {
            return Err(format!(
                "server.max_element_bytes: {element} is outside 1024..={MAX_ELEMENT_BYTES} (an element must fit \
                 a snapshot record and a gRPC reply)"
            ));
        }
        let record = self.wal.max_record_bytes;
        if !(element..=MAX_RECORD_BYTES).contains(&record) {
            return Err(format!(
                "wal.max_record_bytes: {record} is outside {element}..={MAX_RECORD_BYTES} (at least \
                 server.max_element_bytes, at most what a log frame holds)"
            ));
        }
        if let Some(security) = &self.security {
            security.validate()?;
        } else if !self.server.listen.ip().is_loopback() && !self.server.insecure {
            return Err(format!(
                "server.listen: {} is not a loopback address, and without a security section anyone who \
                 reaches it can read and write every namespace; configure security.tokens, or pass \
                 --insecure to serve it open",
                self.server.listen
            ));
        }
        if self.wal.backend == WalBackend::Kafka && self.wal.kafka.brokers.is_empty() {
            return Err("wal.kafka.brokers: required when wal.backend is kafka (or --kafka-brokers)".into());
        }
        if let Some(cluster) = &self.cluster {
            if cluster.processes == 0 || cluster.process >= cluster.processes {
                return Err(format!(
                    "cluster.process: {} is not below cluster.processes ({})",
                    cluster.process, cluster.processes
                ));
            }
        }
        Ok(())
    }

    /// What the apply stage remembers of request ids.
    pub fn request_ids(&self) -> RequestIdLimits {
        let window = i64::try_from(self.server.request_id_window.as_micros()).unwrap_or(i64::MAX);
        RequestIdLimits { window, capacity: self.server.request_id_capacity }
    }

    /// The options of the Kafka log, as the config sets them.
    pub fn kafka_options(&self) -> prism_connectors::kafka::KafkaOptions {
        let section = &self.wal.kafka;
        let mut options = prism_connectors::kafka::KafkaOptions::new(&section.brokers, &section.topic);
        options.properties = section.properties.clone();
        options.dead_letter_topic = section.dead_letter_topic.clone();
        options.write_timeout = section.write_timeout;
        options.replication_factor = section.replication_factor;
        options.max_record_bytes = self.wal.max_record_bytes;
        options.measure_lag = self.server.metrics_listen.is_some();
        options
    }

    /// The largest record the configured log takes (see `wal.max_record_bytes`).
    pub fn record_limit(&self) -> usize {
        match self.wal.backend {
            WalBackend::Embedded => self.wal.max_record_bytes,
            WalBackend::Kafka => self.kafka_options().record_limit(),
        }
    }

    /// The section that configures `namespace`: its own, or for a namespace not listed the
    /// `default` namespace's.
    fn section(&self, namespace: &str) -> Option<&NamespaceSection> {
        let named = |name: &str| self.namespaces.iter().find(|ns| ns.name == name);
        named(namespace).or_else(|| named(Namespace::DEFAULT))
    }

    /// The limits of a namespace.
    pub fn limits(&self, namespace: &str) -> Limits {
        self.section(namespace).map(|ns| ns.performance.clone()).unwrap_or_default()
    }

    /// The namespace's PII property names.
    pub fn pii(&self, namespace: &str) -> Vec<String> {
        self.section(namespace).map(|ns| ns.pii.clone()).unwrap_or_default()
    }

    /// Each namespace's `backend.max_vertices` and `max_edges`, the `default` namespace's
    /// for the others.
    pub fn capacities(&self) -> Capacities {
        let capacity =
            |ns: &NamespaceSection| Capacity { max_vertices: ns.backend.max_vertices, max_edges: ns.backend.max_edges };
        Capacities {
            namespaces: self.namespaces.iter().map(|ns| (ns.name.clone(), capacity(ns))).collect(),
            otherwise: self.section(Namespace::DEFAULT).map(capacity).unwrap_or_default(),
        }
    }

    /// Reads the cluster's hostfile: one `host:port` a line, as many as processes.
    pub fn cluster_addresses(&self) -> Result<Option<(usize, Vec<String>)>, ConfigError> {
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&cluster.hostfile)
            .map_err(|source| ConfigError::Read { path: cluster.hostfile.clone(), source })?;
        let addresses: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        if addresses.len() != cluster.processes {
            return Err(ConfigError::Setting(format!(
                "--hostfile {} lists {} addresses, but --processes is {}",
                cluster.hostfile.display(),
                addresses.len(),
                cluster.processes
            )));
        }
        Ok(Some((cluster.process, addresses)))
    }
}

/// A server limit on a call's time, shortened by the call's own deadline when it has one.
pub fn within(limit: Duration, deadline: Option<Duration>) -> Duration {
    deadline.map_or(limit, |d| d.min(limit))
}

/// Parses durations written as `100ms`, `5s`, `2m`, `250us`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 100ms, 5s or 2m"))?;
    match unit {
        "us" => Ok(Duration::from_micros(number)),
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        _ => Err(format!("{text:?}: unknown unit {unit:?} (use us, ms, s or m)")),
    }
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rfc_shape() {
        let config = Config::from_yaml(
            "server:\n  listen: 127.0.0.1:6000\n  workers: 3\nnamespaces:\n  - name: social\n    pattern: graph\n    backend:\n      type: memstore\n      max_vertices: 100\n    performance:\n      traversal_timeout: 250ms\n      max_traversal_depth: 4\n",
        )
        .unwrap();
        assert_eq!(config.server.workers, 3);
        assert_eq!(config.limits("social").traversal_timeout, Duration::from_millis(250));
        assert_eq!(config.limits("other").max_traversal_depth, 6);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = Config::from_yaml("server:\n  listn: 1\n").unwrap_err();
        assert!(err.contains("listn"), "{err}");
        let err = Config::from_yaml("namespaces:\n  - name: a\n    performance:\n      traversal_timeout: fast\n")
            .unwrap_err();
        assert!(err.contains("traversal_timeout") || err.contains("fast"), "{err}");
        let err = Config::from_yaml("namespaces:\n  - name: a\n  - name: a\n").unwrap_err();
        assert!(err.contains("namespaces[1].name"), "{err}");
    }

    #[test]
    fn the_kafka_section_passes_librdkafka_properties_and_needs_brokers() {
        let config = Config::from_yaml(
            "wal:\n  backend: kafka\n  kafka:\n    brokers: b1:9092,b2:9092\n    topic: t\n    write_timeout: 2s\n    dead_letter_topic: dead\n    properties:\n      security.protocol: ssl\n",
        )
        .unwrap();
        assert_eq!(config.wal.backend, WalBackend::Kafka);
        assert_eq!(config.wal.kafka.brokers, "b1:9092,b2:9092");
        assert_eq!(config.wal.kafka.write_timeout, Duration::from_secs(2));
        assert_eq!(config.wal.kafka.dead_letter_topic.as_deref(), Some("dead"));
        assert_eq!(config.wal.kafka.properties["security.protocol"], "ssl");
        let err = Config::from_yaml("wal:\n  backend: kafka\n").unwrap_err();
        assert!(err.contains("wal.kafka.brokers"), "{err}");
        let err = Config::from_yaml("wal:\n  kafka:\n    brokr: x\n").unwrap_err();
        assert!(err.contains("brokr"), "{err}");
    }

    #[test]
    fn size_limits_are_checked_against_each_other_and_what_the_formats_hold() {
        let config =
            Config::from_yaml("server:\n  max_element_bytes: 65536\nwal:\n  max_record_bytes: 131072\n").unwrap();
        assert_eq!((config.server.max_element_bytes, config.record_limit()), (65536, 131072));
        let err = Config::from_yaml("server:\n  max_element_bytes: 1073741824\n").unwrap_err();
        assert!(err.contains("server.max_element_bytes"), "{err}");
        let err =
            Config::from_yaml("server:\n  max_element_bytes: 65536\nwal:\n  max_record_bytes: 1024\n").unwrap_err();
        assert!(err.contains("wal.max_record_bytes"), "{err}");
        // On Kafka the producer's message.max.bytes bounds a record too.
        let kafka = Config::from_yaml("wal:\n  backend: kafka\n  kafka:\n    brokers: b:9092\n").unwrap();
        assert!(kafka.record_limit() < 1_000_000);
        let request_ids = Config::from_yaml("server:\n  request_id_window: 2m\n").unwrap().request_ids();
        assert_eq!(request_ids.window, 120_000_000);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5 parsecs").is_err());
    }
}
