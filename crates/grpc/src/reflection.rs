//! Server reflection (`grpc.reflection.v1` and `grpc.reflection.v1alpha`):
//! what stock tools such as grpcurl use to list, describe and call the API.
//!
//! Ours rather than tonic-reflection's server (whose messages and generated
//! service traits it uses): tonic-reflection 0.14.9, the latest release, ends
//! the whole `ServerReflectionInfo` stream with a status as soon as one
//! request names an unknown symbol or file (`src/server/v1.rs` and
//! `src/server/v1alpha.rs`, lines 113–115: `resp_tx.send(Err(status))`, then
//! `return`). The protocol answers that one request with an `error_response`
//! and keeps the stream open for the next.
//!
//! Every request on a stream gets one answer, in order:
//! - `file_by_filename`, `file_containing_symbol`, `file_containing_extension`:
//!   the file, then those of its transitive imports not yet sent on this
//!   stream (the protocol's "with transitive dependencies", deduplicated per
//!   stream as the reference implementations do), each as its original bytes;
//! - `all_extension_numbers_of_type`: the extension numbers of a known
//!   message type (none, for every message served today);
//! - `list_services`: every service in the served descriptors;
//! - an unknown file, symbol, extension or type: `error_response` NOT_FOUND;
//!   a request naming nothing: `error_response` INVALID_ARGUMENT.
//!
//! A symbol is any fully-qualified name declared in a file: package-level
//! and nested messages, enums, enum values (beside their enum, as protobuf
//! scopes them, and inside it, as tonic-reflection answered), fields, oneofs,
//! extensions, services and methods.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;

use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto};
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status, Streaming};

/// The reflection service over some encoded `FileDescriptorSet`s; one value
/// serves both protocol versions.
#[derive(Clone, Debug)]
pub struct Reflection {
    index: Arc<Index>,
}

impl Reflection {
    /// Indexes the files of `sets`; a file name seen twice keeps its first
    /// version.
    pub fn new(sets: &[&[u8]]) -> Result<Self, prost::DecodeError> {
        let mut index = Index::default();
        for set in sets {
            for bytes in EncodedFileSet::decode(*set)?.file {
                index.add_file(bytes)?;
            }
        }
        Ok(Self {
            index: Arc::new(index),
        })
    }

    /// The `grpc.reflection.v1` service.
    pub fn v1(&self) -> tonic_reflection::pb::v1::server_reflection_server::ServerReflectionServer<Self> {
        tonic_reflection::pb::v1::server_reflection_server::ServerReflectionServer::new(self.clone())
    }

    /// The `grpc.reflection.v1alpha` service.
    pub fn v1alpha(
        &self,
    ) -> tonic_reflection::pb::v1alpha::server_reflection_server::ServerReflectionServer<Self> {
        tonic_reflection::pb::v1alpha::server_reflection_server::ServerReflectionServer::new(self.clone())
    }
}

/// A `FileDescriptorSet` whose files stay encoded, so each is served with
/// its original bytes (options prost does not know survive).
#[derive(Clone, PartialEq, Message)]
struct EncodedFileSet {
    #[prost(bytes = "vec", repeated, tag = "1")]
    file: Vec<Vec<u8>>,
}

/// What a client may ask, the same in both protocol versions.
#[derive(Debug)]
enum Query<'a> {
    File(&'a str),
    Symbol(&'a str),
    Extension(&'a str, i32),
    ExtensionNumbers(&'a str),
    Services,
    Nothing,
}

/// The answer to one query.
#[derive(Debug, PartialEq)]
enum Answer {
    Files(Vec<Vec<u8>>),
    ExtensionNumbers(String, Vec<i32>),
    Services(Vec<String>),
    Error(Code, String),
}

/// The served files, indexed by name, symbol and extension.
#[derive(Debug, Default)]
struct Index {
    /// File name → its bytes and the names of its imports.
    files: HashMap<String, (Vec<u8>, Vec<String>)>,
    /// Fully-qualified symbol → the name of the file declaring it.
    symbols: HashMap<String, String>,
    /// Message type → its extensions: number → the file declaring it. Every
    /// message served has an entry, so "no extensions" differs from "no such
    /// type".
    extensions: HashMap<String, BTreeMap<i32, String>>,
    /// Every service, in the order of the files.
    services: Vec<String>,
}

impl Index {
    fn add_file(&mut self, bytes: Vec<u8>) -> Result<(), prost::DecodeError> {
        let file = FileDescriptorProto::decode(bytes.as_slice())?;
        let name = file.name().to_owned();
        if self.files.contains_key(&name) {
            return Ok(());
        }
        let package = file.package();
        for message in &file.message_type {
            self.add_message(&name, package, message);
        }
        for enumeration in &file.enum_type {
            self.add_enum(&name, package, enumeration);
        }
        for extension in &file.extension {
            self.add_extension(&name, package, extension);
        }
        for service in &file.service {
            let service_name = qualify(package, service.name());
            for method in &service.method {
                self.add_symbol(qualify(&service_name, method.name()), &name);
            }
            if !self.services.contains(&service_name) {
                self.services.push(service_name.clone());
            }
            self.add_symbol(service_name, &name);
        }
        self.files.insert(name, (bytes, file.dependency));
        Ok(())
    }

    fn add_message(&mut self, file: &str, scope: &str, message: &DescriptorProto) {
        let name = qualify(scope, message.name());
        self.extensions.entry(name.clone()).or_default();
        for field in &message.field {
            self.add_symbol(qualify(&name, field.name()), file);
        }
        for oneof in &message.oneof_decl {
            self.add_symbol(qualify(&name, oneof.name()), file);
        }
        for nested in &message.nested_type {
            self.add_message(file, &name, nested);
        }
        for enumeration in &message.enum_type {
            self.add_enum(file, &name, enumeration);
        }
        for extension in &message.extension {
            self.add_extension(file, &name, extension);
        }
        self.add_symbol(name, file);
    }

    fn add_enum(&mut self, file: &str, scope: &str, enumeration: &EnumDescriptorProto) {
        let name = qualify(scope, enumeration.name());
        for value in &enumeration.value {
            self.add_symbol(qualify(scope, value.name()), file);
            self.add_symbol(qualify(&name, value.name()), file);
        }
        self.add_symbol(name, file);
    }

    fn add_extension(&mut self, file: &str, scope: &str, extension: &FieldDescriptorProto) {
        self.add_symbol(qualify(scope, extension.name()), file);
        let extendee = extension.extendee().trim_start_matches('.').to_owned();
        self.extensions
            .entry(extendee)
            .or_default()
            .entry(extension.number())
            .or_insert_with(|| file.to_owned());
    }

    fn add_symbol(&mut self, symbol: String, file: &str) {
        self.symbols.entry(symbol).or_insert_with(|| file.to_owned());
    }

    /// Answers one query; `sent` holds the files already sent on this stream.
    fn answer(&self, query: Query<'_>, sent: &mut HashSet<String>) -> Answer {
        let not_found = |what: String| Answer::Error(Code::NotFound, format!("{what} not found"));
        match query {
            Query::File(name) => self
                .with_imports(name, sent)
                .unwrap_or_else(|| not_found(format!("file {name:?}"))),
            Query::Symbol(symbol) => self
                .symbols
                .get(symbol)
                .and_then(|file| self.with_imports(file, sent))
                .unwrap_or_else(|| not_found(format!("symbol {symbol:?}"))),
            Query::Extension(extendee, number) => self
                .extensions
                .get(extendee)
                .and_then(|numbers| numbers.get(&number))
                .and_then(|file| self.with_imports(file, sent))
                .unwrap_or_else(|| not_found(format!("extension {number} of {extendee:?}"))),
            Query::ExtensionNumbers(extendee) => match self.extensions.get(extendee) {
                Some(numbers) => {
                    Answer::ExtensionNumbers(extendee.to_owned(), numbers.keys().copied().collect())
                }
                None => not_found(format!("message type {extendee:?}")),
            },
            Query::Services => Answer::Services(self.services.clone()),
            Query::Nothing => Answer::Error(
                Code::InvalidArgument,
                "the request sets none of the message_request fields".to_owned(),
            ),
        }
    }

    /// The file `name` (always: it was asked for), then its transitive
    /// imports not in `sent`, breadth first; `None` if `name` is not served.
    fn with_imports(&self, name: &str, sent: &mut HashSet<String>) -> Option<Answer> {
        let (bytes, imports) = self.files.get(name)?;
        sent.insert(name.to_owned());
        let mut files = vec![bytes.clone()];
        let mut queue: VecDeque<&String> = imports.iter().collect();
        while let Some(import) = queue.pop_front() {
            if let Some((bytes, imports)) = self.files.get(import)
                && sent.insert(import.clone())
            {
                files.push(bytes.clone());
                queue.extend(imports);
            }
        }
        Some(Answer::Files(files))
    }
}

fn qualify(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

/// The `ServerReflection` trait of one protocol version (`v1`, `v1alpha`):
/// the two have the same messages in different modules.
macro_rules! server_reflection {
    ($version:ident) => {
        mod $version {
            use super::*;
            use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
            use tonic_reflection::pb::$version::server_reflection_server::ServerReflection;
            use tonic_reflection::pb::$version::{
                ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse, ListServiceResponse,
                ServerReflectionRequest, ServerReflectionResponse, ServiceResponse,
            };

            #[tonic::async_trait]
            impl ServerReflection for Reflection {
                type ServerReflectionInfoStream =
                    Pin<Box<dyn Stream<Item = Result<ServerReflectionResponse, Status>> + Send>>;

                async fn server_reflection_info(
                    &self,
                    request: Request<Streaming<ServerReflectionRequest>>,
                ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
                    let index = Arc::clone(&self.index);
                    let mut sent = HashSet::new();
                    // One answer per request, in order; only a broken request
                    // stream (its status passed on) ends the answers early.
                    let answers = request.into_inner().map(move |request| {
                        let request = request.map_err(crate::edge::callers_mistake)?;
                        let answer = index.answer(query(&request), &mut sent);
                        Ok(response(request, answer))
                    });
                    Ok(Response::new(Box::pin(answers)))
                }
            }

            fn query(request: &ServerReflectionRequest) -> Query<'_> {
                match &request.message_request {
                    Some(MessageRequest::FileByFilename(name)) => Query::File(name),
                    Some(MessageRequest::FileContainingSymbol(symbol)) => Query::Symbol(symbol),
                    Some(MessageRequest::FileContainingExtension(extension)) => {
                        Query::Extension(&extension.containing_type, extension.extension_number)
                    }
                    Some(MessageRequest::AllExtensionNumbersOfType(extendee)) => {
                        Query::ExtensionNumbers(extendee)
                    }
                    Some(MessageRequest::ListServices(_)) => Query::Services,
                    None => Query::Nothing,
                }
            }

            fn response(request: ServerReflectionRequest, answer: Answer) -> ServerReflectionResponse {
                let message = match answer {
                    Answer::Files(file_descriptor_proto) => {
                        MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
                            file_descriptor_proto,
                        })
                    }
                    Answer::ExtensionNumbers(base_type_name, extension_number) => {
                        MessageResponse::AllExtensionNumbersResponse(ExtensionNumberResponse {
                            base_type_name,
                            extension_number,
                        })
                    }
                    Answer::Services(names) => MessageResponse::ListServicesResponse(ListServiceResponse {
                        service: names
                            .into_iter()
                            .map(|name| ServiceResponse { name })
                            .collect(),
                    }),
                    Answer::Error(code, error_message) => MessageResponse::ErrorResponse(ErrorResponse {
                        error_code: code as i32,
                        error_message,
                    }),
                };
                ServerReflectionResponse {
                    valid_host: request.host.clone(),
                    original_request: Some(request),
                    message_response: Some(message),
                }
            }
        }
    };
}

server_reflection!(v1);
server_reflection!(v1alpha);

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Index {
        let reflection = Reflection::new(&[
            crate::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ])
        .unwrap();
        Arc::try_unwrap(reflection.index).unwrap()
    }

    fn file_names(answer: &Answer) -> Vec<String> {
        let Answer::Files(files) = answer else {
            panic!("not files: {answer:?}");
        };
        files
            .iter()
            .map(|bytes| {
                FileDescriptorProto::decode(bytes.as_slice())
                    .unwrap()
                    .name()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn lists_every_service_served() {
        let Answer::Services(services) = index().answer(Query::Services, &mut HashSet::new()) else {
            panic!("no services");
        };
        for name in crate::SERVICE_NAMES.iter().chain(&[
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]) {
            assert!(services.iter().any(|s| s == name), "{name} not in {services:?}");
        }
    }

    #[test]
    fn a_file_comes_with_the_imports_not_sent_yet() {
        let index = index();
        let mut sent = HashSet::new();
        let first = file_names(&index.answer(Query::Symbol("paycore.v1.TransferService"), &mut sent));
        assert_eq!(first[0], "paycore/v1/transfer.proto");
        assert!(
            first.iter().any(|f| f == "google/protobuf/timestamp.proto"),
            "{first:?}"
        );
        // Every import of every file sent is sent too.
        for name in &first {
            for import in &index.files[name].1 {
                assert!(
                    first.contains(import),
                    "{name} imports {import}, not sent: {first:?}"
                );
            }
        }
        // Asked again on the same stream: the file alone.
        let again = file_names(&index.answer(Query::File("paycore/v1/transfer.proto"), &mut sent));
        assert_eq!(again, ["paycore/v1/transfer.proto"]);
    }

    #[test]
    fn every_kind_of_name_is_a_symbol() {
        let index = index();
        for symbol in [
            "paycore.v1.Transfer",
            "paycore.v1.TransferService.CreateTransfer",
            "grpc.health.v1.HealthCheckResponse.ServingStatus",
            // An enum value beside its enum (protobuf's scoping) and inside it.
            "grpc.health.v1.HealthCheckResponse.SERVING",
            "grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING",
            "grpc.health.v1.HealthCheckRequest.service",
            "google.protobuf.Timestamp",
        ] {
            assert!(
                matches!(
                    index.answer(Query::Symbol(symbol), &mut HashSet::new()),
                    Answer::Files(_)
                ),
                "{symbol}"
            );
        }
    }

    #[test]
    fn unknown_names_answer_not_found_and_an_empty_request_invalid_argument() {
        let index = index();
        let mut sent = HashSet::new();
        for query in [
            Query::Symbol("no.such.Symbol"),
            Query::File("no/such.proto"),
            Query::Extension("paycore.v1.Transfer", 1000),
            Query::ExtensionNumbers("no.such.Type"),
        ] {
            let answer = index.answer(query, &mut sent);
            assert!(matches!(answer, Answer::Error(Code::NotFound, _)), "{answer:?}");
        }
        assert!(matches!(
            index.answer(Query::Nothing, &mut sent),
            Answer::Error(Code::InvalidArgument, _)
        ));
        assert_eq!(
            index.answer(Query::ExtensionNumbers("paycore.v1.Transfer"), &mut sent),
            Answer::ExtensionNumbers("paycore.v1.Transfer".to_owned(), Vec::new())
        );
    }

    #[test]
    fn extensions_are_found_by_extendee_and_number() {
        // A file extending a message of another, as custom options do.
        let file = FileDescriptorProto {
            name: Some("ext.proto".to_owned()),
            package: Some("ext".to_owned()),
            dependency: vec!["google/protobuf/timestamp.proto".to_owned()],
            extension: vec![FieldDescriptorProto {
                name: Some("note".to_owned()),
                number: Some(50_000),
                extendee: Some(".google.protobuf.Timestamp".to_owned()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut index = index();
        index.add_file(file.encode_to_vec()).unwrap();
        let mut sent = HashSet::new();
        assert_eq!(
            file_names(&index.answer(Query::Extension("google.protobuf.Timestamp", 50_000), &mut sent)),
            ["ext.proto", "google/protobuf/timestamp.proto"]
        );
        assert_eq!(
            index.answer(Query::ExtensionNumbers("google.protobuf.Timestamp"), &mut sent),
            Answer::ExtensionNumbers("google.protobuf.Timestamp".to_owned(), vec![50_000])
        );
        assert!(matches!(
            index.answer(Query::Symbol("ext.note"), &mut sent),
            Answer::Files(_)
        ));
    }
}
