//! Access control end to end: tokens made by `prism-graph token new`, configured by their
//! hash, checked on every call of the spawned server; the CLI's `--token`; and a server that
//! will not listen beyond loopback without them.

use std::process::Stdio;

use prism_e2e::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A new token from the CLI: (token, its sha256).
async fn new_token(name: &str) -> (String, String) {
    let (ok, out, err) = cli(&["token", "new", name]).await;
    assert!(ok, "{out}{err}");
    let field = |prefix: &str| {
        out.lines().find_map(|line| line.trim().strip_prefix(prefix)).map(str::to_owned).unwrap_or_else(|| {
            panic!("no {prefix:?} line in:\n{out}");
        })
    };
    (field("token: "), field("sha256: "))
}

/// `message` for `namespace`, sent with `token`.
fn authed<T>(message: T, token: Option<&str>, namespace: &str) -> tonic::Request<T> {
    let mut request = request(message, Some(namespace));
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

fn refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, mentions: &[&str]) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    for word in mentions {
        assert!(status.message().contains(word), "{:?} lacks {word:?}", status.message());
    }
}

#[tokio::test]
async fn every_call_needs_a_token_granted_its_access_to_the_namespace_it_names() {
    let (reader, reader_hash) = new_token("reader").await;
    let (writer, writer_hash) = new_token("writer").await;
    let (admin, admin_hash) = new_token("admin").await;
    let yaml = format!(
        "security:\n  tokens:\n    - name: reader\n      sha256: {reader_hash}\n      grants: [{{namespace: social, \
         access: read}}]\n    - name: writer\n      sha256: {writer_hash}\n      grants: [{{namespace: '*', \
         access: write}}]\n    - name: admin\n      sha256: {admin_hash}\n      grants: [{{namespace: social, \
         access: admin}}]\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = ServerSpec::configured(dir.path(), &yaml).start().await;
    let mut client = server.client().await;
    let get =
        |token: Option<&str>| authed(pb::GetVertexRequest { id: "a".into(), include_edges: false }, token, "social");

    // No token, or one the server does not know: UNAUTHENTICATED.
    refused(client.get_vertex(get(None)).await, Code::Unauthenticated, &["authorization"]);
    refused(client.get_vertex(get(Some("prism_not-a-token"))).await, Code::Unauthenticated, &["authorization"]);

    // A token without the grant: PERMISSION_DENIED naming the namespace and the access.
    let create = |token: &str, namespace: &str| authed(vertex_request("a", "V", &[]), Some(token), namespace);
    refused(client.create_vertex(create(&reader, "social")).await, Code::PermissionDenied, &["social", "write"]);
    client.create_vertex(create(&writer, "social")).await.unwrap();
    let vertex = client.get_vertex(get(Some(&reader))).await.unwrap().into_inner().vertex.unwrap();
    assert_eq!(vertex.id, "a");
    let elsewhere = authed(pb::GetVertexRequest { id: "a".into(), include_edges: false }, Some(&reader), "other");
    refused(client.get_vertex(elsewhere).await, Code::PermissionDenied, &["other", "read"]);
    // Admin includes write and read, on its namespace only.
    client.create_vertex(authed(vertex_request("b", "V", &[]), Some(&admin), "social")).await.unwrap();
    refused(client.create_vertex(create(&admin, "other")).await, Code::PermissionDenied, &["other"]);

    // Subscriptions follow the same grants.
    let subscribe = pb::SubscribePageRankRequest { damping_factor: 0.0, tolerance: 0.0, vertex_filter: None, top_k: 1 };
    refused(client.subscribe_page_rank(authed(subscribe.clone(), None, "social")).await, Code::Unauthenticated, &[]);
    let elsewhere = authed(subscribe.clone(), Some(&reader), "other");
    refused(client.subscribe_page_rank(elsewhere).await, Code::PermissionDenied, &["other"]);
    let mut stream = client.subscribe_page_rank(authed(subscribe, Some(&reader), "social")).await.unwrap().into_inner();
    assert!(stream.message().await.unwrap().is_some(), "the first message is the current ranking");

    // Health answers without a token, for probes.
    let channel = tonic::transport::Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let health = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;
    assert!(health.is_ok(), "{health:?}");

    // The CLI sends --token; without it the server refuses, and writing a snapshot into a
    // namespace wholesale (apply) needs admin.
    let address = server.address.to_string();
    let file = dir.path().join("social.snap");
    let export = |token: Option<&str>| {
        let mut args = vec!["snapshot", "export", "--server", &address, "--namespace", "social"];
        args.extend(["-o", file.to_str().unwrap()]);
        if let Some(token) = token {
            args.extend(["--token", token]);
        }
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| async move { cli(&args.iter().map(String::as_str).collect::<Vec<_>>()).await };
    let (ok, out, err) = run(export(None)).await;
    assert!(!ok && err.contains("authorization"), "{out}{err}");
    let (ok, out, err) = run(export(Some(&reader))).await;
    assert!(ok, "{out}{err}");
    let apply = |token: &str| {
        let args = ["snapshot", "apply", file.to_str().unwrap(), "--server", &address, "--namespace", "social"];
        let mut args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        args.extend(["--token".to_owned(), token.to_owned()]);
        args
    };
    let (ok, out, err) = run(apply(&writer)).await;
    assert!(!ok && err.contains("admin"), "{out}{err}");
    let (ok, out, err) = run(apply(&admin)).await;
    assert!(ok, "{out}{err}");
}

/// Starts `prism-graph serve` on all interfaces with `extra` arguments; the first line of its
/// standard output, and the process.
async fn serve_everywhere(dir: &std::path::Path, extra: &[&str]) -> (Option<String>, tokio::process::Child) {
    let data = dir.join("data");
    let mut child = tokio::process::Command::new(binary())
        .args(["serve", "--listen", "0.0.0.0:0", "--workers", "1", "--data-dir", data.to_str().unwrap()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first = BufReader::new(stdout).lines().next_line().await.unwrap();
    (first, child)
}

#[tokio::test]
async fn an_open_server_listens_beyond_loopback_only_when_told_it_is_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let (first, child) = serve_everywhere(dir.path(), &[]).await;
    assert_eq!(first, None, "it must not start");
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("--insecure") && stderr.contains("security"), "{stderr}");

    let (first, mut child) = serve_everywhere(dir.path(), &["--insecure"]).await;
    let first = first.unwrap_or_default();
    assert!(first.starts_with("prism-graph listening on 0.0.0.0:"), "{first}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn every_mutation_leaves_one_audit_line_before_it_is_answered_and_no_property_value() {
    let (token, sha256) = new_token("ingest").await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let yaml = format!(
        "security:\n  audit_log: {}\n  tokens:\n    - name: ingest\n      sha256: {sha256}\n      grants: \
         [{{namespace: '*', access: admin}}]\n",
        audit.display()
    );
    let server = ServerSpec::configured(dir.path(), &yaml).start().await;
    let mut client = server.client().await;
    let secret = "ada@example.com";
    let lines = || -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
    };

    let created = client
        .create_vertex(authed(vertex_request("ada", "Person", &[("email", string(secret))]), Some(&token), "social"))
        .await;
    let lsn = lsn_of(&created.unwrap());
    let line = lines().pop().expect("a line as soon as the call is answered");
    assert_eq!(line["token"], "ingest");
    assert_eq!(line["method"], "CreateVertex");
    assert_eq!(line["namespace"], "social");
    assert_eq!(line["operations"], serde_json::json!([{"kind": "create_vertex", "id": "ada"}]));
    assert_eq!((line["outcome"].as_str(), line["lsn"].as_u64()), (Some("applied"), Some(lsn)));
    assert!(line["peer"].as_str().is_some_and(|peer| peer.starts_with("127.0.0.1:")), "{line}");

    // A refused operation is audited with its kind; an update and a delete each leave a line.
    let again =
        client.create_vertex(authed(vertex_request("ada", "Person", &[]), Some(&token), "social")).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let update = pb::UpdateVertexRequest {
        id: "ada".into(),
        properties: [("email".to_string(), string(&secret.to_uppercase()))].into(),
        merge: true,
    };
    client.update_vertex(authed(update, Some(&token), "social")).await.unwrap();
    client
        .delete_vertex(authed(pb::DeleteVertexRequest { id: "ada".into(), cascade: true }, Some(&token), "social"))
        .await
        .unwrap();
    let lines = lines();
    let methods: Vec<&str> = lines.iter().map(|line| line["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["CreateVertex", "CreateVertex", "UpdateVertex", "DeleteVertex"]);
    assert_eq!(lines[1]["rejected"], serde_json::json!([[0, "ALREADY_EXISTS"]]));
    let text = std::fs::read_to_string(&audit).unwrap().to_lowercase();
    assert!(!text.contains(secret), "a property value reached the audit log:\n{text}");
}

#[tokio::test]
async fn pii_values_are_masked_in_exports_on_request_and_absent_from_the_servers_log() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "namespaces:\n  - name: social\n    pii: [email, phone]\n";
    let server = ServerSpec::configured(dir.path(), yaml).start().await;
    let mut client = server.client().await;
    let secret = "grace@example.com";
    let props = [("email", string(secret)), ("name", string("Grace"))];
    client.create_vertex(request(vertex_request("grace", "Person", &props), Some("social"))).await.unwrap();
    let again = client.create_vertex(request(vertex_request("grace", "Person", &props), Some("social"))).await;
    assert_eq!(again.unwrap_err().code(), Code::AlreadyExists);

    let address = server.address.to_string();
    let export = |name: &str, mask: bool| {
        let path = dir.path().join(name);
        let mut args: Vec<String> = ["snapshot", "export", "--server", &address, "--namespace", "social", "-o"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        args.push(path.display().to_string());
        if mask {
            args.push("--mask-pii".into());
        }
        (path, args)
    };
    let email_in = |path: &std::path::Path| -> prism_dataflows::Value {
        let items = prism_snapshots::SnapshotReader::open(path).unwrap();
        let vertex = items
            .filter_map(|item| match item.unwrap() {
                prism_snapshots::SnapshotItem::Vertex(vertex) => Some(vertex),
                _ => None,
            })
            .next()
            .expect("the vertex");
        assert_eq!(vertex.properties["name"], prism_dataflows::Value::String("Grace".into()));
        vertex.properties["email"].clone()
    };
    for (mask, expected) in [(true, "***"), (false, secret)] {
        let (path, args) = export(if mask { "masked.snap" } else { "plain.snap" }, mask);
        let (ok, out, err) = cli(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        assert!(ok, "{out}{err}");
        assert_eq!(email_in(&path), prism_dataflows::Value::String(expected.into()), "mask_pii {mask}");
    }
    assert!(!server.log().contains(secret), "a PII value reached the server's log:\n{}", server.log());
}
