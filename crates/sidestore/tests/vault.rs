//! The card vault: sealing, binding to project and resource, tamper
//! detection, and that the number never shows in clear.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use paycore_domain::ProjectId;
use paycore_domain::card::{CardNumber, fingerprint_key};
use paycore_sidestore::vault::NAMESPACE;
use paycore_sidestore::{
    Blobs, CardVault, DirBlobs, KeyError, MemoryBlobs, PgBlobs, SideStoreError, VaultError, VaultKey,
};

use common::SchemaGuard;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const VISA: &str = "4242424242424242";
const MASTERCARD: &str = "5555555555554444";
const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn project(n: u128) -> ProjectId {
    ProjectId::from_uuid(uuid::Uuid::from_u128(n))
}

fn card(digits: &str) -> CardNumber {
    CardNumber::parse(digits).expect("a valid test card number")
}

fn key() -> VaultKey {
    VaultKey::from_hex(KEY_HEX).expect("a valid test key")
}

fn vault() -> (CardVault, Arc<MemoryBlobs>) {
    let blobs = Arc::new(MemoryBlobs::new());
    (CardVault::new(key(), blobs.clone()), blobs)
}

#[tokio::test]
async fn seal_then_open_gives_the_number_back() -> TestResult {
    let (vault, _) = vault();
    assert_eq!(vault.open(project(1), "card_1").await?, None);
    vault.seal(project(1), "card_1", &card(VISA)).await?;
    vault.seal(project(1), "card_2", &card(MASTERCARD)).await?;
    assert_eq!(vault.open(project(1), "card_1").await?, Some(card(VISA)));
    assert_eq!(vault.open(project(1), "card_2").await?, Some(card(MASTERCARD)));
    Ok(())
}

#[tokio::test]
async fn another_vault_with_the_same_key_opens_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("side");
    CardVault::new(key(), Arc::new(DirBlobs::open(root.clone())?))
        .seal(project(1), "card_1", &card(VISA))
        .await?;
    // A restart: a new vault on the same directory and key file contents.
    let again = CardVault::new(key(), Arc::new(DirBlobs::open(root)?));
    assert_eq!(again.open(project(1), "card_1").await?, Some(card(VISA)));
    Ok(())
}

#[tokio::test]
async fn the_digits_never_appear_in_the_stored_bytes() -> TestResult {
    let (vault, blobs) = vault();
    vault.seal(project(1), "card_1", &card(VISA)).await?;
    let stored = blobs.get(NAMESPACE, "card_1").await?.expect("sealed entry");
    assert_eq!(stored[0], 1, "format version first");
    assert_eq!(stored.len(), 1 + 24 + VISA.len() + 16);
    for needle in [VISA, &VISA[..8], &VISA[8..]] {
        assert!(
            !contains(&stored, needle.as_bytes()),
            "{needle} in the sealed bytes"
        );
    }
    assert!(!contains(&stored, &card_bcd(VISA)));
    // Two seals of the same number never give the same bytes (random nonce).
    vault.seal(project(1), "card_2", &card(VISA)).await?;
    let other = blobs.get(NAMESPACE, "card_2").await?.expect("sealed entry");
    assert_ne!(stored[1..25], other[1..25]);
    assert_ne!(stored[25..], other[25..]);
    Ok(())
}

#[tokio::test]
async fn the_digits_never_appear_in_the_files_on_disk() -> TestResult {
    let dir = tempfile::tempdir()?;
    let blobs = Arc::new(DirBlobs::open(dir.path().join("side"))?);
    let vault = CardVault::new(key(), blobs);
    vault.seal(project(1), "card_1", &card(VISA)).await?;
    let path = dir.path().join("side").join("cards").join("card_1");
    let stored = std::fs::read(&path)?;
    assert!(!contains(&stored, VISA.as_bytes()));
    assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    assert_eq!(vault.open(project(1), "card_1").await?, Some(card(VISA)));
    Ok(())
}

#[tokio::test]
async fn another_project_cannot_open_it() -> TestResult {
    let (vault, _) = vault();
    vault.seal(project(1), "card_1", &card(VISA)).await?;
    match vault.open(project(2), "card_1").await {
        Err(VaultError::Tampered { resource }) => assert_eq!(resource, "card_1"),
        other => panic!("expected Tampered, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn an_entry_copied_under_another_resource_does_not_open() -> TestResult {
    let (vault, blobs) = vault();
    vault.seal(project(1), "card_1", &card(VISA)).await?;
    // Another resource simply has nothing.
    assert_eq!(vault.open(project(1), "card_9").await?, None);
    // Copying the bytes there does not make them its own.
    let sealed = blobs.get(NAMESPACE, "card_1").await?.expect("sealed entry");
    blobs.put(NAMESPACE, "card_9", &sealed).await?;
    assert!(matches!(
        vault.open(project(1), "card_9").await,
        Err(VaultError::Tampered { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn any_flipped_byte_is_detected() -> TestResult {
    let (vault, blobs) = vault();
    vault.seal(project(1), "card_1", &card(VISA)).await?;
    let sealed = blobs.get(NAMESPACE, "card_1").await?.expect("sealed entry");
    // Every byte after the version: nonce, ciphertext and tag.
    for at in 1..sealed.len() {
        let mut altered = sealed.clone();
        altered[at] ^= 0x01;
        blobs.overwrite(NAMESPACE, "card_1", altered);
        assert!(
            matches!(
                vault.open(project(1), "card_1").await,
                Err(VaultError::Tampered { .. })
            ),
            "byte {at}"
        );
    }
    // The version byte and the length are checked before decryption.
    let mut altered = sealed.clone();
    altered[0] = 2;
    blobs.overwrite(NAMESPACE, "card_1", altered);
    assert!(matches!(
        vault.open(project(1), "card_1").await,
        Err(VaultError::Corrupt { .. })
    ));
    for length in [0, 1, 25, 40] {
        blobs.overwrite(NAMESPACE, "card_1", sealed[..length].to_vec());
        assert!(
            matches!(
                vault.open(project(1), "card_1").await,
                Err(VaultError::Corrupt { .. })
            ),
            "length {length}"
        );
    }
    blobs.overwrite(NAMESPACE, "card_1", sealed);
    assert_eq!(vault.open(project(1), "card_1").await?, Some(card(VISA)));
    Ok(())
}

#[tokio::test]
async fn another_key_cannot_open_it() -> TestResult {
    let blobs = Arc::new(MemoryBlobs::new());
    CardVault::new(key(), blobs.clone())
        .seal(project(1), "card_1", &card(VISA))
        .await?;
    let other = CardVault::new(VaultKey::from_bytes([7; 32]), blobs);
    assert!(matches!(
        other.open(project(1), "card_1").await,
        Err(VaultError::Tampered { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn sealing_again_is_a_safe_retry_but_never_a_replacement() -> TestResult {
    let (vault, blobs) = vault();
    vault.seal(project(1), "card_1", &card(VISA)).await?;
    let first = blobs.get(NAMESPACE, "card_1").await?;
    vault.seal(project(1), "card_1", &card(VISA)).await?;
    assert_eq!(
        blobs.get(NAMESPACE, "card_1").await?,
        first,
        "the first entry stays"
    );
    match vault.seal(project(1), "card_1", &card(MASTERCARD)).await {
        Err(e @ VaultError::AlreadySealed { .. }) => {
            assert!(!e.to_string().contains(MASTERCARD), "{e}");
            assert!(!e.to_string().contains(VISA), "{e}");
        }
        other => panic!("expected AlreadySealed, got {other:?}"),
    }
    assert_eq!(vault.open(project(1), "card_1").await?, Some(card(VISA)));
    Ok(())
}

#[tokio::test]
async fn forget_erases_the_number() -> TestResult {
    let (vault, blobs) = vault();
    vault.seal(project(1), "card_1", &card(VISA)).await?;
    vault.forget("card_1").await?;
    assert_eq!(vault.open(project(1), "card_1").await?, None);
    assert!(blobs.is_empty());
    vault.forget("card_1").await?;
    Ok(())
}

#[tokio::test]
async fn an_invalid_resource_id_is_a_store_error() {
    let (vault, _) = vault();
    assert!(matches!(
        vault.seal(project(1), "../card", &card(VISA)).await,
        Err(VaultError::Store(SideStoreError::InvalidKey { .. }))
    ));
}

#[tokio::test]
async fn the_vault_works_on_postgres() -> TestResult {
    let guard = SchemaGuard::new().await;
    let blobs = Arc::new(PgBlobs::connect(&guard.url, &guard.schema).await?);
    let vault = CardVault::new(key(), blobs.clone());
    vault.seal(project(1), "card_1", &card(VISA)).await?;
    vault.seal(project(1), "card_1", &card(VISA)).await?;
    assert_eq!(vault.open(project(1), "card_1").await?, Some(card(VISA)));
    let stored = blobs.get(NAMESPACE, "card_1").await?.expect("sealed entry");
    assert!(!contains(&stored, VISA.as_bytes()));
    vault.forget("card_1").await?;
    assert_eq!(vault.open(project(1), "card_1").await?, None);
    Ok(())
}

#[test]
fn debug_output_never_shows_secrets() {
    let key = key();
    assert_eq!(format!("{key:?}"), "VaultKey(<redacted>)");
    assert_eq!(format!("{key:#?}"), "VaultKey(<redacted>)");
    let (vault, _) = vault();
    let debug = format!("{vault:?}");
    assert!(!debug.contains("0102"), "{debug}");
    assert!(!debug.to_lowercase().contains(&KEY_HEX[..16]), "{debug}");
}

#[test]
fn keys_parse_from_hex_only() {
    assert!(VaultKey::from_hex(KEY_HEX).is_ok());
    assert!(VaultKey::from_hex(&KEY_HEX.to_uppercase()).is_ok());
    for bad in [
        "",
        "00",
        &KEY_HEX[..62],
        &format!("{KEY_HEX}00"),
        &KEY_HEX.replace('0', "g"),
    ] {
        match VaultKey::from_hex(bad) {
            Err(e @ KeyError::Malformed) => assert!(!e.to_string().contains("0001"), "{e}"),
            other => panic!("expected Malformed for {bad:?}, got {other:?}"),
        }
    }
}

#[test]
fn the_fingerprint_secret_is_hmac_of_a_label_and_not_the_key() {
    let key = key();
    let secret = key.fingerprint_secret();
    assert_eq!(secret, key.fingerprint_secret(), "deterministic");
    assert_ne!(secret, VaultKey::from_bytes([7; 32]).fingerprint_secret());
    let key_bytes: Vec<u8> = (0u8..32).collect();
    assert_ne!(secret.as_slice(), key_bytes.as_slice());
    // HMAC-SHA256(0x00..0x1f, "paycore card fingerprint v1"), from an
    // independent implementation (Python's hmac module).
    assert_eq!(hex::encode(secret), EXPECTED_FINGERPRINT_SECRET);
    // And it feeds the domain's per-project keys.
    assert_ne!(
        fingerprint_key(&secret, project(1)),
        fingerprint_key(&secret, project(2))
    );
    let fingerprint = card(VISA).fingerprint(&fingerprint_key(&secret, project(1)));
    assert_eq!(
        fingerprint,
        card(VISA).fingerprint(&fingerprint_key(&secret, project(1)))
    );
}

const EXPECTED_FINGERPRINT_SECRET: &str = "cbbeb4abb9bf678e4a8a728f86fe2c796d619b927842eb90f9bde3bfe82f10dd";

#[test]
fn load_reads_a_key_file_with_whitespace() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("vault.key");
    std::fs::write(&path, format!("  {KEY_HEX}\n\n"))?;
    let loaded = VaultKey::load(&path)?;
    assert_eq!(loaded.fingerprint_secret(), key().fingerprint_secret());
    Ok(())
}

#[test]
fn load_errors_name_the_file_but_never_its_content() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("vault.key");
    assert!(matches!(VaultKey::load(&path), Err(KeyError::Missing { .. })));
    std::fs::write(&path, "deadbeef-secret-material")?;
    match VaultKey::load(&path) {
        Err(e @ KeyError::MalformedFile { .. }) => {
            let message = e.to_string();
            assert!(message.contains("vault.key"), "{message}");
            assert!(!message.contains("deadbeef"), "{message}");
        }
        other => panic!("expected MalformedFile, got {other:?}"),
    }
    Ok(())
}

#[test]
fn load_or_create_makes_a_private_key_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("keys").join("vault.key");
    let created = VaultKey::load_or_create(&path)?;
    let text = std::fs::read_to_string(&path)?;
    assert_eq!(text.trim().len(), 64);
    assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(dir.path().join("keys"))?.permissions().mode() & 0o777,
        0o700
    );
    let again = VaultKey::load_or_create(&path)?;
    assert_eq!(again.fingerprint_secret(), created.fingerprint_secret());
    assert_eq!(
        VaultKey::load(&path)?.fingerprint_secret(),
        created.fingerprint_secret()
    );
    // Only the key file is in the directory: no temporary file left.
    assert_eq!(std::fs::read_dir(dir.path().join("keys"))?.count(), 1);
    // Two fresh keys differ.
    let other = VaultKey::load_or_create(&dir.path().join("other.key"))?;
    assert_ne!(other.fingerprint_secret(), created.fingerprint_secret());
    Ok(())
}

#[test]
fn load_or_create_keeps_a_malformed_file_and_fails() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("vault.key");
    std::fs::write(&path, "not a key")?;
    assert!(matches!(
        VaultKey::load_or_create(&path),
        Err(KeyError::MalformedFile { .. })
    ));
    assert_eq!(std::fs::read_to_string(&path)?, "not a key");
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// The digits packed two per byte, another way a number could leak.
fn card_bcd(digits: &str) -> Vec<u8> {
    digits
        .as_bytes()
        .chunks(2)
        .map(|pair| pair.iter().fold(0u8, |acc, d| (acc << 4) | (d - b'0')))
        .collect()
}
