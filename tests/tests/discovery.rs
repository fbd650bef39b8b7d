//! What grpcurl and grpc_health_probe rely on: server reflection and the health service.

use prism_e2e::*;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

async fn reflect(channel: Channel, request: MessageRequest) -> MessageResponse {
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let mut replies = reflection.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
    replies.message().await.unwrap().and_then(|r| r.message_response).expect("a reflection answer")
}

#[tokio::test]
async fn reflection_lists_and_describes_the_graph_service_and_health_reports_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerSpec::new(&dir.path().join("data"), 1).start().await;
    let channel = Channel::from_shared(server.url()).unwrap().connect().await.unwrap();

    let MessageResponse::ListServicesResponse(list) =
        reflect(channel.clone(), MessageRequest::ListServices(String::new())).await
    else {
        panic!("expected a service list");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"prism.graph.v1.GraphService"), "{names:?}");

    let symbol = MessageRequest::FileContainingSymbol("prism.graph.v1.GraphService".into());
    let MessageResponse::FileDescriptorResponse(files) = reflect(channel.clone(), symbol).await else {
        panic!("expected file descriptors");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    // grpc_health_probe asks for the empty service name.
    let mut health = HealthClient::new(channel);
    for service in ["", "prism.graph.v1.GraphService"] {
        let status = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(status.status, ServingStatus::Serving as i32, "service {service:?}");
    }
}

/// grpc_cli and Python's grpcio-reflection speak the older v1alpha protocol.
#[tokio::test]
async fn reflection_answers_v1alpha_clients_too() {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as AlphaResponse;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest as AlphaReflectionRequest;

    let dir = tempfile::tempdir().unwrap();
    let server = ServerSpec::new(&dir.path().join("data"), 1).start().await;
    let channel = Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let mut reflection = AlphaClient::new(channel);
    let request = AlphaReflectionRequest {
        host: String::new(),
        message_request: Some(AlphaRequest::ListServices(String::new())),
    };
    let mut replies = reflection.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
    let answer = replies.message().await.unwrap().and_then(|r| r.message_response);
    let Some(AlphaResponse::ListServicesResponse(list)) = answer else { panic!("expected a service list: {answer:?}") };
    assert!(list.service.iter().any(|s| s.name == "prism.graph.v1.GraphService"), "{list:?}");
}
