//! TLS end to end: certificates made at test time (rcgen), a server that asks every client
//! for one (mutual TLS), the access statuses through a real TLS client, and the CLI's `--ca`.

use std::path::{Path, PathBuf};

use prism_e2e::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// PEM files: a CA, a server certificate for 127.0.0.1 and a client certificate, both signed
/// by the CA.
struct Pki {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

fn pki(dir: &Path) -> Pki {
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let signed = |name: &str, names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names).unwrap().signed_by(&key, &ca).unwrap();
        (write(&format!("{name}.pem"), cert.pem()), write(&format!("{name}.key"), key.serialize_pem()))
    };
    let server = signed("server", vec!["127.0.0.1".into(), "localhost".into()]);
    let client = signed("client", vec!["client".into()]);
    Pki { ca: write("ca.pem", ca.pem()), server, client }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A TLS channel to `server`, presenting `identity` when given.
async fn channel(server: &Server, pki: &Pki, identity: bool) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&pki.ca)));
    if identity {
        tls = tls.identity(Identity::from_pem(read(&pki.client.0), read(&pki.client.1)));
    }
    Channel::from_shared(format!("https://{}", server.address)).unwrap().tls_config(tls)?.connect().await
}

#[tokio::test]
async fn a_mutual_tls_server_answers_only_clients_with_a_certificate_its_ca_signed() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (token, sha256) = prism_server::access::new_token();
    let (read_only, read_sha256) = prism_server::access::new_token();
    let yaml = format!(
        "security:\n  tls:\n    cert: {}\n    key: {}\n    client_ca: {}\n  tokens:\n    - name: app\n      sha256: \
         {sha256}\n      grants: [{{namespace: '*', access: write}}]\n    - name: reader\n      sha256: {read_sha256}\n      \
         grants: [{{namespace: '*', access: read}}]\n",
        pki.server.0.display(),
        pki.server.1.display(),
        pki.ca.display()
    );
    let server = ServerSpec::configured(dir.path(), &yaml).spawn().await.unwrap_or_else(|log| panic!("{log}"));

    // SERVING, seen through the health Watch stream over TLS.
    let tls = channel(&server, &pki, true).await.expect("a TLS connection with a client certificate");
    let watch = HealthCheckRequest { service: "prism.graph.v1.GraphService".into() };
    let mut statuses = HealthClient::new(tls.clone()).watch(watch).await.unwrap().into_inner();
    while let Some(status) = statuses.message().await.unwrap() {
        if status.status == ServingStatus::Serving as i32 {
            break;
        }
    }

    let mut client = Client::new(tls);
    let mut with_token = request(vertex_request("a", "V", &[]), None);
    with_token.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    client.create_vertex(with_token).await.unwrap();
    let status = client.create_vertex(vertex_request("b", "V", &[])).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let mut reader = request(vertex_request("b", "V", &[]), None);
    reader.metadata_mut().insert("authorization", format!("Bearer {read_only}").parse().unwrap());
    let status = client.create_vertex(reader).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // Without a client certificate, or in plaintext, no call gets through.
    let refused = match channel(&server, &pki, false).await {
        Err(_) => true,
        Ok(channel) => HealthClient::new(channel).check(HealthCheckRequest::default()).await.is_err(),
    };
    assert!(refused, "a client without a certificate was answered");
    let plain = Channel::from_shared(server.url()).unwrap().connect().await;
    let answered = match plain {
        Err(_) => false,
        Ok(channel) => HealthClient::new(channel).check(HealthCheckRequest::default()).await.is_ok(),
    };
    assert!(!answered, "a plaintext client was answered");

    // The CLI over TLS: --ca for the server's certificate, --cert and --key for its own.
    let address = server.address.to_string();
    let output = dir.path().join("export.snap");
    let (ca, cert, key) = (pki.ca.display().to_string(), pki.client.0.display().to_string(), pki.client.1.display());
    let key = key.to_string();
    let mut args = vec!["snapshot", "export", "--server", &address, "-o", output.to_str().unwrap()];
    args.extend(["--token", &token, "--ca", &ca, "--cert", &cert, "--key", &key]);
    let (ok, out, err) = cli(&args).await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = cli(&args[..args.len() - 4]).await;
    assert!(!ok, "without a client certificate the export must fail: {out}{err}");
}
