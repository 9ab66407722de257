//! Requests no generated client would send, through the real server: bodies
//! that are not valid protobuf on every method, and request metadata over
//! the documented limit. Each is the caller's mistake and answers a precise
//! status (never INTERNAL), and none of them disturbs the other calls on the
//! same connection.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use paycore_e2e::{Server, bearer, pb, raw_call, test_dir};
use paycore_grpc::{EventServiceClient, FILE_DESCRIPTOR_SET};
use prost::Message;
use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, FileDescriptorSet};
use tonic::Code;

/// Every method of the public API, as (path, input message descriptor).
fn methods() -> Vec<(String, DescriptorProto)> {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    let messages: Vec<(String, DescriptorProto)> = set
        .file
        .iter()
        .flat_map(|file| {
            file.message_type
                .iter()
                .map(move |message| (format!(".{}.{}", file.package(), message.name()), message.clone()))
        })
        .collect();
    let input = |name: &str| {
        messages
            .iter()
            .find(|(full, _)| full == name)
            .map(|(_, message)| message.clone())
            .unwrap()
    };
    set.file
        .iter()
        .filter(|file| file.package() == "paycore.v1")
        .flat_map(|file| {
            file.service.iter().flat_map(move |service| {
                service.method.iter().map(move |method| {
                    (
                        format!("/paycore.v1.{}/{}", service.name(), method.name()),
                        method.input_type().to_owned(),
                    )
                })
            })
        })
        .map(|(path, input_type)| (path, input(&input_type)))
        .collect()
}

/// A protobuf key (field number and wire type) as a varint.
fn key(field: u32, wire_type: u32) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(u64::from(field << 3 | wire_type), &mut out);
    out
}

/// Bodies that are not a valid message of any type, each with what the
/// answer's message must mention.
fn undecodable_bodies(input: &DescriptorProto) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    // 150 nested groups of an unknown field, each closed: well formed but
    // deeper than prost's recursion limit (100).
    let depth = 150;
    let mut nested = key(1000, 3).repeat(depth);
    nested.extend(key(1000, 4).repeat(depth));
    let mut bodies = vec![
        ("a lone continuation byte", vec![0x80], "invalid varint"),
        ("nesting past the recursion limit", nested, "recursion limit"),
    ];
    if let Some(field) = input.field.iter().find(|field| field.r#type() == Type::String) {
        let number = u32::try_from(field.number()).unwrap();
        let mut body = key(number, 2);
        body.extend([2, 0xff, 0xfe]);
        bodies.push(("invalid UTF-8 in a string field", body, "UTF-8"));
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_request_bodies_are_invalid_argument_on_every_method() {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let authorization = [("authorization".to_owned(), format!("Bearer {}", server.key()))];
    let methods = methods();
    assert!(methods.len() > 40, "{} methods", methods.len());
    for (path, input) in &methods {
        for (what, body, mentioned) in undecodable_bodies(input) {
            let status = raw_call(server.channel(), path, &authorization, vec![body])
                .await
                .expect_err(what);
            assert_eq!(status.code(), Code::InvalidArgument, "{path}, {what}: {status:?}");
            assert!(
                status.message().contains(mentioned) && status.message().contains(input.name()),
                "{path}, {what}: {}",
                status.message()
            );
        }
    }
}

/// Health and reflection decode with tonic's stock codec; their undecodable
/// requests are the caller's mistake too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_health_and_reflection_requests_are_invalid_argument() {
    let dir = test_dir();
    let server = Server::start(dir.path());
    for path in [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ] {
        let status = raw_call(server.channel(), path, &[], vec![vec![0x80]])
            .await
            .expect_err(path);
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
        assert!(
            status.message().contains("invalid varint"),
            "{path}: {}",
            status.message()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_its_message_is_invalid_argument() {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let authorization = [("authorization".to_owned(), format!("Bearer {}", server.key()))];
    for path in [
        "/paycore.v1.ProjectService/GetProject",
        "/paycore.v1.TransferService/CreateTransfer",
        "/paycore.v1.EventService/SubscribeEvents",
    ] {
        let status = raw_call(server.channel(), path, &authorization, Vec::new())
            .await
            .expect_err(path);
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
        assert!(
            status.message().contains("Missing request message"),
            "{}",
            status.message()
        );
    }
}

/// Metadata of about `bytes` bytes in one header, or in many small ones.
fn one_header(name: &str, bytes: usize) -> Vec<(String, String)> {
    vec![(name.to_owned(), "x".repeat(bytes))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_metadata_answers_resource_exhausted_and_the_connection_lives_on() {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = server.client();
    let channel = server.channel();

    // Another caller's subscription, on the same connection as the bad calls.
    let mut events = EventServiceClient::with_interceptor(channel.clone(), bearer(server.key()));
    let mut subscription = events
        .subscribe_events(pb::SubscribeEventsRequest {
            start: Some(pb::subscribe_events_request::Start::FromNow(true)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let bearer_value = format!("Bearer {}", server.key());
    let mut oversized = vec![
        ("one 16,000-byte header", one_header("x-pad", 16_000)),
        ("a 16,000-byte authorization", one_header("authorization", 16_000)),
        ("one 64 KiB header", one_header("x-pad", 64 * 1024)),
        ("one 900 KiB header", one_header("x-pad", 900 * 1024)),
    ];
    let many = (0..400)
        .map(|i| (format!("x-pad-{i:03}"), "12345678".to_owned()))
        .collect();
    oversized.push(("400 small headers", many));
    for (what, mut metadata) in oversized {
        if !metadata.iter().any(|(name, _)| name == "authorization") {
            metadata.push(("authorization".to_owned(), bearer_value.clone()));
        }
        let status = raw_call(
            channel.clone(),
            "/paycore.v1.ProjectService/GetProject",
            &metadata,
            vec![Vec::new()],
        )
        .await
        .expect_err(what);
        assert_eq!(status.code(), Code::ResourceExhausted, "{what}: {status:?}");
        assert!(
            status.message().contains("the limit is 16384 bytes"),
            "{what}: {}",
            status.message()
        );
    }

    // Just under the limit is served.
    let metadata = vec![
        ("authorization".to_owned(), bearer_value.clone()),
        ("x-pad".to_owned(), "x".repeat(15_000)),
    ];
    raw_call(
        channel.clone(),
        "/paycore.v1.ProjectService/GetProject",
        &metadata,
        vec![Vec::new()],
    )
    .await
    .unwrap();

    // The subscription sharing the connection still delivers.
    client.write_barrier("after-oversized-metadata").await.unwrap();
    let delivered = tokio::time::timeout(Duration::from_secs(20), subscription.message())
        .await
        .expect("an event within 20 s")
        .expect("the subscription is still open")
        .expect("an event");
    assert!(
        matches!(
            &delivered.event,
            Some(pb::event_envelope::Event::ProjectMetaUpdated(_))
        ),
        "{delivered:?}"
    );
}
