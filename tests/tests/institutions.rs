//! Open banking's catalogue: the institutions of the bank connector (the
//! sandbox bank), searched over gRPC, and activated per project by the
//! operator's CLI, through a running server's admin socket and on a
//! stopped one.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use paycore_e2e::{Server, bearer};
use paycore_grpc::InstitutionServiceClient;
use paycore_grpc::pb;
use tonic::Code;
use tonic_types::StatusExt;

type Institutions = InstitutionServiceClient<paycore_e2e::Authed>;

fn institutions(server: &Server, key: &str) -> Institutions {
    InstitutionServiceClient::with_interceptor(server.channel(), bearer(key))
}

async fn list(
    client: &mut Institutions,
    query: &str,
    country: &str,
    active_only: bool,
) -> Vec<pb::Institution> {
    client
        .list_institutions(pb::ListInstitutionsRequest {
            query: query.into(),
            country: country.into(),
            active_only,
        })
        .await
        .unwrap()
        .into_inner()
        .institutions
}

fn ids(institutions: &[pb::Institution]) -> Vec<&str> {
    institutions.iter().map(|i| i.id.as_str()).collect()
}

#[tokio::test]
async fn the_catalogue_is_searched_and_activated_per_project() {
    let root = tempfile::tempdir().unwrap();
    let (mut server, other) = Server::start_with_second_project(root.path());
    let mut client = institutions(&server, server.key());

    // The whole catalogue, by country then name, nothing active yet.
    let all = list(&mut client, "", "", false).await;
    assert_eq!(
        ids(&all),
        [
            "sandbox_de_rheinbank",
            "sandbox_es_sol",
            "sandbox_fr_lumiere",
            "sandbox_gb_albion",
            "sandbox_pl_wisla"
        ]
    );
    assert!(all.iter().all(|i| !i.active));
    let wisla = all.iter().find(|i| i.country == "PL").unwrap();
    assert_eq!(wisla.name, "Bank Wisła Sandbox");
    assert!(wisla.credit_cards && wisla.max_consent_days == 180 && !wisla.sources.is_empty());

    // Searches: part of the name in any case, a country in any case.
    assert_eq!(
        ids(&list(&mut client, "RHEIN", "", false).await),
        ["sandbox_de_rheinbank"]
    );
    assert_eq!(ids(&list(&mut client, "", "es", false).await), ["sandbox_es_sol"]);
    assert!(list(&mut client, "rhein", "FR", false).await.is_empty());
    assert!(list(&mut client, "", "", true).await.is_empty());

    // Bad input names the field; an unknown institution is NOT_FOUND.
    let refused = client
        .list_institutions(pb::ListInstitutionsRequest {
            country: "Germany".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<String> = refused
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|violation| violation.field)
        .collect();
    assert_eq!(fields, ["country"]);
    let unknown = client
        .get_institution(pb::GetInstitutionRequest {
            institution_id: "sandbox_xx_nowhere".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let malformed = client
        .get_institution(pb::GetInstitutionRequest {
            institution_id: "no spaces!".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);

    // The operator activates one for the first project, through the
    // running server: that project sees it active, the other does not.
    let project = server.project_id().to_owned();
    let activated = server.cli(&[
        "institutions",
        "activate",
        "--project",
        &project,
        "sandbox_gb_albion",
    ]);
    assert!(
        activated.status.success(),
        "{}",
        String::from_utf8_lossy(&activated.stderr)
    );
    let active = list(&mut client, "", "", true).await;
    assert_eq!(ids(&active), ["sandbox_gb_albion"]);
    assert!(active[0].active);
    let albion = client
        .get_institution(pb::GetInstitutionRequest {
            institution_id: "sandbox_gb_albion".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(albion.active);
    let mut others = institutions(&server, &other.key);
    assert!(list(&mut others, "", "", true).await.is_empty());

    // Not in the catalogue, or no such project: refused, nothing written.
    let unknown = server.cli(&[
        "institutions",
        "activate",
        "--project",
        &project,
        "sandbox_xx_nowhere",
    ]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("not in the bank connector's catalogue"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    let no_project = "prj_01m7z1py9me5zsx09x8kv1vnx8";
    let missing = server.cli(&[
        "institutions",
        "activate",
        "--project",
        no_project,
        "sandbox_gb_albion",
    ]);
    assert!(!missing.status.success());

    // On a stopped server the CLI writes to the log itself; the next start
    // sees it.
    server.stop_ok();
    let deactivated = server.cli(&[
        "institutions",
        "deactivate",
        "--project",
        &project,
        "sandbox_gb_albion",
    ]);
    assert!(
        deactivated.status.success(),
        "{}",
        String::from_utf8_lossy(&deactivated.stderr)
    );
    let activated = server.cli(&[
        "institutions",
        "activate",
        "--project",
        &project,
        "sandbox_pl_wisla",
    ]);
    assert!(
        activated.status.success(),
        "{}",
        String::from_utf8_lossy(&activated.stderr)
    );
    server.start_again();
    let mut client = institutions(&server, server.key());
    assert_eq!(ids(&list(&mut client, "", "", true).await), ["sandbox_pl_wisla"]);
}
