//! `--berlin-group-banks <FILE>`: the banks open banking reads from when
//! they are real Berlin Group NextGenPSD2 (AIS) APIs rather than the
//! in-process sandbox. The file lists each bank's institution (what the
//! catalogue shows and the syncer paces by) and the base URL of its API;
//! `paycore serve` then reads them through `BerlinGroupClient`, and the
//! institutions commands take the catalogue from the same file.
//!
//! ```json
//! {
//!   "sandbox_clock": false,
//!   "extra_roots": ["bank-ca.pem"],
//!   "banks": [{
//!     "id": "rheinbank", "name": "Rheinbank", "country": "DE",
//!     "sources": ["psd2"], "max_refreshes_per_day": 4,
//!     "max_consent_days": 180, "max_history_days": 1826, "credit_cards": false,
//!     "base_url": "https://psd2.rheinbank.example/berlingroup"
//!   }]
//! }
//! ```
//!
//! The serde types are the CLI's own, so the connector's model stays free
//! of a file format; every check names the file and the field.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use paycore_bank_connector::berlin_group::{BankEndpoint, ClientConfig};
use paycore_bank_connector::{
    BankConnector, BerlinGroupClient, CountryCode, Institution, SandboxBank, Source,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

/// The file as written. Unknown fields are refused: a misspelt optional
/// setting would otherwise be silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BanksFile {
    banks: Vec<BankEntry>,
    /// Send the trait's time in `X-Sandbox-Now` (the repository's sandbox
    /// server only; a real bank uses its own clock).
    #[serde(default)]
    sandbox_clock: bool,
    /// PEM files of roots trusted besides the system's (a bank's private
    /// CA), relative to the banks file's directory.
    #[serde(default)]
    extra_roots: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BankEntry {
    id: String,
    name: String,
    country: String,
    sources: Vec<SourceEntry>,
    max_refreshes_per_day: u32,
    max_consent_days: u32,
    max_history_days: u32,
    credit_cards: bool,
    base_url: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum SourceEntry {
    Psd2,
    Web,
}

impl From<SourceEntry> for Source {
    fn from(source: SourceEntry) -> Self {
        match source {
            SourceEntry::Psd2 => Self::Psd2,
            SourceEntry::Web => Self::Web,
        }
    }
}

/// Why a banks file was refused.
#[derive(Debug, thiserror::Error)]
pub enum BanksFileError {
    #[error("reading the banks file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the banks file {} is not valid JSON: {reason}", path.display())]
    Syntax { path: PathBuf, reason: String },
    #[error("the banks file {}: {field}: {reason}", path.display())]
    Field {
        path: PathBuf,
        field: String,
        reason: String,
    },
}

/// The connector of the `--berlin-group-banks` file if one is given, else
/// the sandbox bank (the default of `serve` and the institutions commands).
pub fn connector(file: Option<&Path>) -> anyhow::Result<Arc<dyn BankConnector>> {
    match file {
        Some(file) => berlin_group(file),
        None => Ok(Arc::new(SandboxBank::new())),
    }
}

/// A `BerlinGroupClient` over the banks of `file`.
pub fn berlin_group(file: &Path) -> anyhow::Result<Arc<dyn BankConnector>> {
    let config = load(file)?;
    let client = BerlinGroupClient::new(config)
        .with_context(|| format!("setting up the Berlin Group client for {}", file.display()))?;
    Ok(Arc::new(client))
}

/// Reads and checks `path` into the client's configuration.
pub fn load(path: &Path) -> Result<ClientConfig, BanksFileError> {
    let text = std::fs::read(path).map_err(|source| BanksFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Checks the file's contents; `path` names it in errors and anchors the
/// relative paths of `extra_roots`.
fn parse(path: &Path, text: &[u8]) -> Result<ClientConfig, BanksFileError> {
    let file = decode(path, text)?;
    let invalid = |field: String, reason: String| BanksFileError::Field {
        path: path.to_owned(),
        field,
        reason,
    };
    if file.banks.is_empty() {
        return Err(invalid(
            "banks".into(),
            "the list is empty: name at least one bank".into(),
        ));
    }
    let mut seen = HashMap::new();
    let mut banks = Vec::with_capacity(file.banks.len());
    for (index, entry) in file.banks.into_iter().enumerate() {
        if let Some(first) = seen.insert(entry.id.clone(), index) {
            let reason = format!("{:?} is listed twice (also banks[{first}])", entry.id);
            return Err(invalid(format!("banks[{index}].id"), reason));
        }
        let bank =
            endpoint(entry).map_err(|(field, reason)| invalid(format!("banks[{index}].{field}"), reason))?;
        banks.push(bank);
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut extra_roots = Vec::new();
    for (index, root) in file.extra_roots.iter().enumerate() {
        let certificates = certificates(&base.join(root))
            .map_err(|reason| invalid(format!("extra_roots[{index}]"), reason))?;
        extra_roots.extend(certificates);
    }
    Ok(ClientConfig {
        banks,
        sandbox_clock: file.sandbox_clock,
        extra_roots,
        ..ClientConfig::default()
    })
}

/// The JSON into the file's types; a type error or unknown field names
/// its path (`banks[1].max_consent_days`).
fn decode(path: &Path, text: &[u8]) -> Result<BanksFile, BanksFileError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let field = error.path().to_string();
        let reason = error.inner().to_string();
        if error.inner().is_syntax() || error.inner().is_eof() || field == "." {
            BanksFileError::Syntax {
                path: path.to_owned(),
                reason,
            }
        } else {
            BanksFileError::Field {
                path: path.to_owned(),
                field,
                reason,
            }
        }
    })
}

/// One bank, checked; the error names the field within the entry.
fn endpoint(entry: BankEntry) -> Result<BankEndpoint, (&'static str, String)> {
    // The domain's rule, so that every ID of the catalogue can be activated.
    paycore_domain::kernel::institution::InstitutionId::parse(&entry.id)
        .map_err(|error| ("id", format!("{:?} {error}", entry.id)))?;
    if entry.name.trim().is_empty() {
        return Err(("name", "is empty".into()));
    }
    let country: CountryCode = entry.country.parse().map_err(|_| {
        let reason = format!(
            "{:?} is not an ISO 3166-1 alpha-2 code (two capital letters, e.g. DE)",
            entry.country
        );
        ("country", reason)
    })?;
    let sources = sources(&entry.sources)?;
    for (field, value) in [
        ("max_refreshes_per_day", entry.max_refreshes_per_day),
        ("max_consent_days", entry.max_consent_days),
        ("max_history_days", entry.max_history_days),
    ] {
        if value == 0 {
            return Err((field, "must be at least 1".into()));
        }
    }
    check_base_url(&entry.base_url).map_err(|reason| ("base_url", reason))?;
    Ok(BankEndpoint {
        institution: Institution {
            id: paycore_bank_connector::InstitutionId::new(entry.id),
            name: entry.name,
            country,
            sources,
            max_refreshes_per_day: entry.max_refreshes_per_day,
            max_consent_days: entry.max_consent_days,
            max_history_days: entry.max_history_days,
            credit_cards: entry.credit_cards,
        },
        base_url: entry.base_url,
    })
}

/// At least one source, each once (their order is the priority).
fn sources(entries: &[SourceEntry]) -> Result<Vec<Source>, (&'static str, String)> {
    if entries.is_empty() {
        return Err((
            "sources",
            "the list is empty: give \"psd2\", \"web\" or both".into(),
        ));
    }
    let mut sources: Vec<Source> = Vec::with_capacity(entries.len());
    for entry in entries {
        let source = Source::from(*entry);
        if sources.contains(&source) {
            return Err(("sources", format!("{entry:?} is listed twice")));
        }
        sources.push(source);
    }
    Ok(sources)
}

/// An absolute `http` or `https` URL with a host, and no query or fragment
/// (the client appends `/v1/…` to it).
fn check_base_url(url: &str) -> Result<(), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|error| format!("{url:?} is not a URL: {error}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} is not an http(s) URL with a host"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(format!(
            "{url:?} has a query or fragment: give the API's base path only"
        ));
    }
    Ok(())
}

/// Every certificate of a PEM file (at least one).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| format!("{}: {error}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{}: a certificate does not parse: {error}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/paycore/banks.json";

    fn bank(id: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id, "name": "Rheinbank", "country": "DE", "sources": ["psd2", "web"],
            "max_refreshes_per_day": 4, "max_consent_days": 180, "max_history_days": 1826,
            "credit_cards": false, "base_url": "http://127.0.0.1:8090/sandbox_de_rheinbank"
        })
    }

    fn parsed(file: serde_json::Value) -> Result<ClientConfig, BanksFileError> {
        parse(Path::new(FILE), file.to_string().as_bytes())
    }

    /// The error of a file whose first bank has `field` set to `value`.
    fn refused_field(field: &str, value: serde_json::Value) -> String {
        let mut entry = bank("rheinbank");
        entry[field] = value;
        parsed(serde_json::json!({ "banks": [entry] }))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_good_file_becomes_the_clients_banks() {
        let config = parsed(serde_json::json!({
            "sandbox_clock": true,
            "banks": [bank("rheinbank"), bank("albion")]
        }))
        .unwrap();
        assert!(config.sandbox_clock);
        let ids: Vec<_> = config
            .banks
            .iter()
            .map(|b| b.institution.id.to_string())
            .collect();
        assert_eq!(ids, ["rheinbank", "albion"]);
        let first = &config.banks[0];
        assert_eq!(first.institution.country.as_str(), "DE");
        assert_eq!(first.institution.sources, [Source::Psd2, Source::Web]);
        assert_eq!(first.institution.max_history_days, 1826);
        assert_eq!(first.base_url, "http://127.0.0.1:8090/sandbox_de_rheinbank");
        let defaults = parsed(serde_json::json!({ "banks": [bank("rheinbank")] })).unwrap();
        assert!(!defaults.sandbox_clock && defaults.extra_roots.is_empty());
    }

    #[test]
    fn each_bad_field_is_named_with_the_file() {
        let cases = [
            (
                "country",
                serde_json::json!("de"),
                "banks[0].country: \"de\" is not an ISO 3166-1",
            ),
            ("country", serde_json::json!("DEU"), "banks[0].country"),
            (
                "base_url",
                serde_json::json!("ftp://bank.example"),
                "banks[0].base_url: \"ftp://bank.example\" is not an http(s) URL",
            ),
            (
                "base_url",
                serde_json::json!("bank.example/psd2"),
                "banks[0].base_url",
            ),
            (
                "base_url",
                serde_json::json!("https://bank.example/?x=1"),
                "banks[0].base_url",
            ),
            (
                "id",
                serde_json::json!("rhein bank"),
                "banks[0].id: \"rhein bank\" must be",
            ),
            ("name", serde_json::json!(" "), "banks[0].name: is empty"),
            (
                "sources",
                serde_json::json!([]),
                "banks[0].sources: the list is empty",
            ),
            (
                "sources",
                serde_json::json!(["psd2", "psd2"]),
                "banks[0].sources: Psd2 is listed twice",
            ),
            (
                "sources",
                serde_json::json!(["fax"]),
                "banks[0].sources[0]: unknown variant `fax`",
            ),
            (
                "max_consent_days",
                serde_json::json!(0),
                "banks[0].max_consent_days: must be at least 1",
            ),
            (
                "max_history_days",
                serde_json::json!("5y"),
                "banks[0].max_history_days: invalid type",
            ),
            (
                "colour",
                serde_json::json!("red"),
                "banks[0].colour: unknown field `colour`",
            ),
        ];
        for (field, value, expected) in cases {
            let error = refused_field(field, value.clone());
            assert!(
                error.starts_with(&format!("the banks file {FILE}")),
                "{field}={value}: {error}"
            );
            assert!(error.contains(expected), "{field}={value}: {error}");
        }
    }

    #[test]
    fn a_missing_field_is_named() {
        let mut entry = bank("rheinbank");
        entry.as_object_mut().unwrap().remove("base_url");
        let error = parsed(serde_json::json!({ "banks": [entry] }))
            .unwrap_err()
            .to_string();
        assert!(error.contains("banks[0]: missing field `base_url`"), "{error}");
    }

    #[test]
    fn the_list_must_name_each_bank_once() {
        let empty = parsed(serde_json::json!({ "banks": [] }))
            .unwrap_err()
            .to_string();
        assert_eq!(
            empty,
            format!("the banks file {FILE}: banks: the list is empty: name at least one bank")
        );
        let twice = parsed(serde_json::json!({ "banks": [bank("a"), bank("b"), bank("a")] }))
            .unwrap_err()
            .to_string();
        assert!(
            twice.contains("banks[2].id: \"a\" is listed twice (also banks[0])"),
            "{twice}"
        );
    }

    #[test]
    fn not_json_and_unreadable_files_are_refused() {
        let syntax = parse(Path::new(FILE), b"{\"banks\": [").unwrap_err().to_string();
        assert!(
            syntax.starts_with(&format!("the banks file {FILE} is not valid JSON")),
            "{syntax}"
        );
        let missing = load(Path::new("/nonexistent/banks.json"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("reading the banks file /nonexistent/banks.json"),
            "{missing}"
        );
    }

    #[test]
    fn extra_roots_are_read_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty.pem"), "no certificate here\n").unwrap();
        let file = dir.path().join("banks.json");
        let text = serde_json::json!({ "banks": [bank("a")], "extra_roots": ["empty.pem"] }).to_string();
        let error = parse(&file, text.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("extra_roots[0]: "), "{error}");
        assert!(
            error.contains(&dir.path().join("empty.pem").display().to_string()),
            "{error}"
        );
        assert!(error.contains("no PEM certificate"), "{error}");

        let ca = rcgen::generate_simple_self_signed(vec!["bank.example".to_owned()]).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).unwrap();
        let text = serde_json::json!({ "banks": [bank("a")], "extra_roots": ["ca.pem"] }).to_string();
        let config = parse(&file, text.as_bytes()).unwrap();
        assert_eq!(config.extra_roots, [ca.cert.der().clone()]);
    }
}
