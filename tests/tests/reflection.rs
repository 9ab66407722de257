//! Server reflection as stock tools use it: many requests on one
//! `ServerReflectionInfo` stream, each answered in turn, an unknown name with
//! an `error_response` that leaves the stream open (v1 and v1alpha).

use paycore_e2e::{Server, test_dir};
use prost::Message;
use prost_types::FileDescriptorProto;

/// On one stream of `$version`: an unknown symbol, then `list_services`, then
/// a real service, each request sent only after the previous answer.
macro_rules! one_stream_answers_every_request {
    ($test:ident, $version:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() -> anyhow::Result<()> {
            use tonic_reflection::pb::$version::ServerReflectionRequest;
            use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;

            let dir = test_dir();
            let server = Server::start(dir.path());
            let (requests, request_stream) = futures::channel::mpsc::unbounded();
            let mut answers = ServerReflectionClient::new(server.channel())
                .server_reflection_info(request_stream)
                .await?
                .into_inner();
            let mut ask = async |request: MessageRequest| -> anyhow::Result<MessageResponse> {
                requests.unbounded_send(ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(request.clone()),
                })?;
                let answer = answers
                    .message()
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("the stream ended instead of answering {request:?}"))?;
                anyhow::ensure!(
                    answer.original_request.and_then(|r| r.message_request) == Some(request),
                    "the answer is not to the request just sent"
                );
                answer
                    .message_response
                    .ok_or_else(|| anyhow::anyhow!("an answer without a message"))
            };

            let unknown = ask(MessageRequest::FileContainingSymbol(
                "no.such.Symbol".into(),
            ))
            .await?;
            let MessageResponse::ErrorResponse(error) = unknown else {
                anyhow::bail!("no error_response for an unknown symbol: {unknown:?}");
            };
            assert_eq!(error.error_code, tonic::Code::NotFound as i32, "{error:?}");
            assert!(error.error_message.contains("no.such.Symbol"), "{error:?}");

            let listed = ask(MessageRequest::ListServices(String::new())).await?;
            let MessageResponse::ListServicesResponse(list) = listed else {
                anyhow::bail!("no service list: {listed:?}");
            };
            let reflection = format!("grpc.reflection.{}.ServerReflection", stringify!($version));
            for service in [
                "paycore.v1.TransferService",
                "grpc.health.v1.Health",
                &reflection,
            ] {
                assert!(
                    list.service.iter().any(|s| s.name == service),
                    "{service} not listed: {list:?}"
                );
            }

            let described = ask(MessageRequest::FileContainingSymbol(
                "paycore.v1.TransferService".into(),
            ))
            .await?;
            let MessageResponse::FileDescriptorResponse(files) = described else {
                anyhow::bail!("no descriptor for paycore.v1.TransferService: {described:?}");
            };
            let files = files
                .file_descriptor_proto
                .iter()
                .map(|bytes| FileDescriptorProto::decode(bytes.as_slice()))
                .collect::<Result<Vec<_>, _>>()?;
            assert_eq!(files[0].name(), "paycore/v1/transfer.proto");
            assert!(
                files[0]
                    .service
                    .iter()
                    .any(|s| s.name() == "TransferService")
            );
            // Its imports come along, so a client can build the descriptor.
            for import in &files[0].dependency {
                assert!(
                    files.iter().any(|f| f.name() == import),
                    "{import} not sent"
                );
            }

            // The client closes its side: the stream ends cleanly.
            drop(requests);
            assert!(answers.message().await?.is_none());
            Ok(())
        }
    };
}

one_stream_answers_every_request!(v1_answers_every_request_on_one_stream, v1);
one_stream_answers_every_request!(v1alpha_answers_every_request_on_one_stream, v1alpha);
