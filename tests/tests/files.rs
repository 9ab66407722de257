//! Files through the real server: a chunked upload read back, listed and
//! downloaded byte for byte, content addressed by its SHA-256, visible to its
//! own project only, and refused past the server's size limit.

#![allow(clippy::unwrap_used)]

use paycore_e2e::{
    Authed, Server, assert_bad_request, assert_code, assert_reason, bearer, error_reason, expect_err, pb,
    test_dir,
};
use paycore_grpc::FileServiceClient;
use tonic::{Code, Request, Status};

fn files(server: &Server, key: &str) -> FileServiceClient<Authed> {
    FileServiceClient::with_interceptor(server.channel(), bearer(key))
}

/// The messages of an upload: the name, then one message per chunk.
fn messages(name: &str, chunks: &[&[u8]]) -> Vec<pb::UploadFileRequest> {
    use pb::upload_file_request::Data;
    std::iter::once(Data::Name(name.to_owned()))
        .chain(chunks.iter().map(|chunk| Data::Chunk(chunk.to_vec())))
        .map(|data| pb::UploadFileRequest { data: Some(data) })
        .collect()
}

async fn upload(
    client: &FileServiceClient<Authed>,
    name: &str,
    content: &[u8],
    chunk_size: usize,
) -> Result<pb::File, Status> {
    let chunks: Vec<&[u8]> = content.chunks(chunk_size).collect();
    let stream = futures::stream::iter(messages(name, &chunks));
    Ok(client.clone().upload_file(stream).await?.into_inner())
}

async fn upload_with_key(
    client: &FileServiceClient<Authed>,
    name: &str,
    content: &[u8],
    key: &str,
) -> Result<pb::File, Status> {
    let mut request = Request::new(futures::stream::iter(messages(name, &[content])));
    request
        .metadata_mut()
        .insert("idempotency-key", key.parse().unwrap());
    Ok(client.clone().upload_file(request).await?.into_inner())
}

/// Every chunk of a download, in order.
async fn download(client: &FileServiceClient<Authed>, file_id: &str) -> Result<Vec<Vec<u8>>, Status> {
    let request = pb::DownloadFileRequest {
        file_id: file_id.into(),
    };
    let mut stream = client.clone().download_file(request).await?.into_inner();
    let mut chunks = Vec::new();
    while let Some(message) = stream.message().await? {
        chunks.push(message.chunk);
    }
    Ok(chunks)
}

/// Bytes that do not repeat with any small period.
fn content(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_read_back_listed_and_downloaded_whole() -> anyhow::Result<()> {
    let dir = test_dir();
    let (server, second) = Server::start_with_second_project(dir.path());
    let client = files(&server, server.key());
    let bytes = content(200 * 1024 + 17, 1);

    let file = upload(&client, "passport.jpg", &bytes, 50_000).await?;
    assert!(file.id.starts_with("file_"), "{}", file.id);
    assert_eq!(file.name, "passport.jpg");
    assert_eq!(file.size, i64::try_from(bytes.len())?);
    assert_eq!(file.project_id, server.project_id());
    assert_eq!(file.hash.len(), 44, "standard base64 of 32 bytes: {}", file.hash);
    assert!(file.hash.ends_with('='), "{}", file.hash);

    let got = client
        .clone()
        .get_file(pb::GetFileRequest {
            file_id: file.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(got, file);

    // The same content again, cut differently: another file, the same hash.
    let again = upload(&client, "passport-copy.jpg", &bytes, 7_000).await?;
    assert_ne!(again.id, file.id);
    assert_eq!(again.hash, file.hash);
    let other = upload(&client, "selfie.png", &content(1_000, 2), 1_000).await?;
    assert_ne!(other.hash, file.hash);
    let listed = client
        .clone()
        .list_files(pb::ListFilesRequest::default())
        .await?
        .into_inner();
    assert_eq!(listed.items, [other.clone(), again.clone(), file.clone()]);

    let chunks = download(&client, &file.id).await?;
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    assert!(chunks.iter().all(|chunk| chunk.len() <= 64 * 1024));
    assert_eq!(chunks.concat(), bytes);
    assert_eq!(download(&client, &other.id).await?.concat(), content(1_000, 2));

    // Another project sees none of it.
    let theirs = files(&server, &second.key);
    let status = expect_err(
        theirs
            .clone()
            .get_file(pb::GetFileRequest {
                file_id: file.id.clone(),
            })
            .await,
    );
    assert_code(&status, Code::NotFound);
    assert_code(&expect_err(download(&theirs, &file.id).await), Code::NotFound);
    let listed = theirs
        .clone()
        .list_files(pb::ListFilesRequest::default())
        .await?
        .into_inner();
    assert!(listed.items.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_retries_are_idempotent() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start(dir.path());
    let client = files(&server, server.key());
    let bytes = content(3_000, 3);

    let first = upload_with_key(&client, "id-front.jpg", &bytes, "upload-1").await?;
    let retry = upload_with_key(&client, "id-front.jpg", &bytes, "upload-1").await?;
    assert_eq!(retry.id, first.id);
    let status = expect_err(upload_with_key(&client, "id-back.jpg", &bytes, "upload-1").await);
    assert_reason(&status, Code::InvalidArgument, "IDEMPOTENCY_KEY_REUSED");

    for name in ["", "a/b.jpg"] {
        let status = expect_err(upload(&client, name, &bytes, 1_000).await);
        assert_bad_request(&status, "name");
    }
    // Content without a name first.
    let chunk_first = vec![pb::UploadFileRequest {
        data: Some(pb::upload_file_request::Data::Chunk(bytes.clone())),
    }];
    let status = expect_err(
        client
            .clone()
            .upload_file(futures::stream::iter(chunk_first))
            .await,
    );
    assert_bad_request(&status, "name");
    // A name without content.
    let status = expect_err(upload(&client, "empty.txt", &[], 1).await);
    assert_bad_request(&status, "chunk");

    let listed = client
        .clone()
        .list_files(pb::ListFilesRequest::default())
        .await?
        .into_inner();
    assert_eq!(listed.items, [first]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_over_the_limit_are_invalid_arguments() -> anyhow::Result<()> {
    let dir = test_dir();
    let server = Server::start_with_env(dir.path(), &[("PAYCORE_MAX_FILE_BYTES", "1000")]);
    let client = files(&server, server.key());

    let status = expect_err(upload(&client, "big.pdf", &content(1_800, 4), 600).await);
    assert_bad_request(&status, "chunk");
    assert_eq!(error_reason(&status).as_deref(), Some("FILE_TOO_LARGE"));
    assert!(status.message().contains("1000 bytes"), "{}", status.message());

    // Exactly the limit is fine.
    let fits = upload(&client, "fits.pdf", &content(1_000, 5), 600).await?;
    assert_eq!(fits.size, 1_000);
    let listed = client
        .clone()
        .list_files(pb::ListFilesRequest::default())
        .await?
        .into_inner();
    assert_eq!(listed.items, [fits]);
    Ok(())
}

/// A customer's identity document may show only files of the customer's
/// own project: a missing file and another project's file are both NOT_FOUND
/// and change nothing, on create and on update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_documents_refer_only_to_the_projects_own_files() -> anyhow::Result<()> {
    let dir = test_dir();
    let (server, second) = Server::start_with_second_project(dir.path());
    let own = upload(&files(&server, server.key()), "front.jpg", b"front", 1024).await?;
    let foreign = upload(&files(&server, &second.key), "theirs.jpg", b"theirs", 1024).await?;
    let missing = paycore_e2e::sibling_id(&own.id);
    let client = server.client();
    let with_front = |file_id: &str| {
        let mut identity = paycore_e2e::identity();
        if let Some(document) = identity.document.as_mut() {
            document.front_file_id = Some(file_id.to_owned());
        }
        identity
    };
    let create = |file_id: &str| pb::CreateCustomerRequest {
        identity: Some(with_front(file_id)),
        ..Default::default()
    };

    for file_id in [&foreign.id, &missing] {
        let refused = expect_err(client.customers.clone().create_customer(create(file_id)).await);
        assert_code(&refused, Code::NotFound);
        assert!(
            refused.message().contains(file_id.as_str()),
            "{}",
            refused.message()
        );
    }
    assert!(client.snapshot().await?.customers.is_empty());

    let customer = client
        .customers
        .clone()
        .create_customer(create(&own.id))
        .await?
        .into_inner();
    for file_id in [&foreign.id, &missing] {
        let update = pb::UpdateCustomerRequest {
            customer_id: customer.id.clone(),
            update_mask: Some(paycore_e2e::mask(&["identity"])),
            identity: Some(with_front(file_id)),
            ..Default::default()
        };
        let refused = expect_err(client.customers.clone().update_customer(update).await);
        assert_code(&refused, Code::NotFound);
    }
    let unchanged = client
        .customers
        .clone()
        .get_customer(pb::GetCustomerRequest {
            customer_id: customer.id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(unchanged.identity, customer.identity);
    Ok(())
}
