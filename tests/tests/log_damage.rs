//! A damaged log is never served: one flipped byte in a frame the index
//! covers stops the next start with `--verify-log-before-serving` (naming
//! file, offset and position); without it the start answers at once and the
//! verification beside serving finds the frame, turns health NOT_SERVING and
//! the commands that need the frame answer DATA_LOSS; `paycore audit`
//! reports it as a violation (exit 1) and audits the rest;
//! damage that appears while the server runs answers DATA_LOSS (never
//! INTERNAL) to the requests that need it and turns health NOT_SERVING, and
//! the background scrub finds it even when nobody reads it.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use paycore_e2e::{Server, error_reason, health_status, paycore_bin, pb, segment_files, test_dir};
use serde_json::Value;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

/// A frame of a segment: offset, body length, first position.
#[derive(Clone, Copy, Debug)]
struct Frame {
    offset: u64,
    body_len: usize,
    first_position: u64,
}

/// Walks the frames: [u32 len][u32 !len][u32 crc32c(body)][body], 8-aligned;
/// the body starts with group_first_position, group_end, first_position.
fn frames(bytes: &[u8]) -> Vec<Frame> {
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut out = Vec::new();
    let mut offset = 0usize;
    while offset + 12 <= bytes.len() {
        let len = word(offset) as usize;
        if len == 0 || word(offset + 4) != !(len as u32) {
            break;
        }
        let p = offset + 12 + 16;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&bytes[p..p + 8]);
        out.push(Frame {
            offset: offset as u64,
            body_len: len,
            first_position: u64::from_le_bytes(raw),
        });
        offset = (offset + 12 + len).div_ceil(8) * 8;
    }
    out
}

/// The first frame of the last segment whose body contains `needle`.
fn frame_holding(data_dir: &Path, needle: &[u8]) -> (PathBuf, Frame) {
    let path = segment_files(data_dir).pop().expect("a segment");
    let bytes = std::fs::read(&path).expect("reading the segment");
    let frame = frames(&bytes)
        .into_iter()
        .find(|f| {
            let body = &bytes[f.offset as usize + 12..f.offset as usize + 12 + f.body_len];
            body.windows(needle.len()).any(|w| w == needle)
        })
        .expect("a frame holds the needle");
    (path, frame)
}

/// Flips one bit in the middle of the frame's body, in place (the server
/// may have the file open).
fn damage(path: &Path, frame: Frame) {
    let at = frame.offset + 12 + frame.body_len as u64 / 2;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("opening the segment");
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).expect("reading a byte");
    byte[0] ^= 0x10;
    file.write_all_at(&byte, at).expect("writing a byte");
    file.sync_all().expect("syncing the segment");
}

/// `paycore serve --verify-log-before-serving` on `data_dir`, which must
/// exit by itself (refusing to start) within a minute.
fn serve_expecting_refusal(data_dir: &Path) -> Output {
    let mut child = Command::new(paycore_bin())
        .args([
            "serve",
            "--verify-log-before-serving",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning paycore serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("waiting for paycore").is_some() {
            return child.wait_with_output().expect("paycore output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("paycore output");
            panic!(
                "paycore serve started on a damaged log; stdout: {}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the server's overall health is `want`.
async fn wait_for_health(server: &Server, want: ServingStatus, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let status = health_status(server.channel(), "").await;
        if matches!(status, Ok(found) if found == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "health is {status:?}, not {want:?}; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Some money moved: a funded account and transfers out of it.
async fn some_history(server: &Server) -> (String, String) {
    let client = server.client();
    let a = client.create_account("EUR", false).await.expect("account").id;
    let b = client.create_account("EUR", false).await.expect("account").id;
    client.set_balance(&a, "EUR", 10_000).await.expect("funding");
    for value in [100, 250, 75, 30] {
        client.transfer(&a, &b, "EUR", value).await.expect("transfer");
    }
    (a, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_frame_under_the_on_disk_index_stops_the_start_and_is_audited() {
    let root = test_dir();
    let mut server = Server::start(root.path());
    let (a, b) = some_history(&server).await;
    // A clean stop writes the rest of the index to disk: it covers every frame.
    server.stop_ok();
    let data_dir = server.data_dir();
    assert!(
        std::fs::read_dir(data_dir.join("log/index"))
            .expect("the index directory")
            .any(|entry| entry.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "run")))
    );
    // Account b's opening frame, in the middle of the segment.
    let (path, frame) = frame_holding(&data_dir, format!("account-{b}").as_bytes());
    damage(&path, frame);

    let refused = serve_expecting_refusal(&data_dir);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    for named in [
        path.display().to_string(),
        format!("offset {}", frame.offset),
        format!("position {}", frame.first_position),
        "CRC mismatch".to_owned(),
    ] {
        assert!(stderr.contains(&named), "{named:?} not in: {stderr}");
    }

    // Without --verify-log-before-serving the server starts, and the
    // verification beside serving finds the frame: health NOT_SERVING, the
    // place in the log, and a command that needs account b cannot run.
    server.start_again_without_readiness_check();
    wait_for_health(&server, ServingStatus::NotServing, Duration::from_secs(30)).await;
    let log = server.log();
    for named in [
        path.display().to_string(),
        format!("offset={}", frame.offset),
        format!("position={}", frame.first_position),
        "the verification after open".to_owned(),
    ] {
        assert!(log.contains(&named), "{named:?} not in: {log}");
    }
    let status = server
        .client()
        .transfer(&a, &b, "EUR", 1)
        .await
        .expect_err("account b's history is damaged");
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");
    assert_eq!(error_reason(&status).as_deref(), Some("LOG_DAMAGED"));
    server.stop_ok();

    // The audit reports the damage as a violation and checks the rest.
    let output = server.cli(&["audit", "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let violations = report["violations"].as_array().expect("violations");
    let damaged: Vec<&Value> = violations.iter().filter(|v| v["rule"] == "log_intact").collect();
    assert_eq!(damaged.len(), 1, "{report}");
    assert_eq!(damaged[0]["file"], path.display().to_string(), "{report}");
    assert_eq!(damaged[0]["offset"], frame.offset, "{report}");
    assert_eq!(damaged[0]["position"], frame.first_position, "{report}");
    // The events after the damaged frame were audited too.
    let audited = report["events"].as_u64().expect("events");
    let last = report["last_position"].as_u64().expect("last position");
    assert!(last > frame.first_position + 5, "{report}");
    assert!(audited > 10, "{report}");
    // Few findings, each saying how it follows from the loss.
    assert!(violations.len() <= 4, "{report}");
    assert!(
        violations
            .iter()
            .filter(|v| v["rule"] != "log_intact")
            .all(|v| v["message"].as_str().is_some_and(|m| m.contains("lost"))),
        "{report}"
    );
    let text = server.cli(&["audit"]);
    let text_out = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(1));
    assert!(
        text_out.contains(&format!(
            "[log_intact] at {} offset {} (position {})",
            path.display(),
            frame.offset,
            frame.first_position
        )),
        "{text_out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn damage_met_by_a_read_answers_data_loss_and_turns_health_not_serving() {
    let root = test_dir();
    // No scrub: the read alone must report it.
    let mut server = Server::start_with_env(root.path(), &[("PAYCORE_SCRUB_BYTES_PER_SECOND", "0")]);
    let (a, b) = some_history(&server).await;
    // After a restart nothing of the log is cached in memory: reads go to
    // the files.
    server.restart();
    wait_for_health(&server, ServingStatus::Serving, Duration::from_secs(5)).await;
    let (path, frame) = frame_holding(&server.data_dir(), format!("account-{a}").as_bytes());
    damage(&path, frame);

    let client = server.client();
    let status = client
        .accounts
        .clone()
        .get_account_at(pb::GetAccountAtRequest {
            account_id: a.clone(),
            as_of: Some(pb::AsOf {
                point: Some(pb::as_of::Point::Position(1_000_000)),
            }),
        })
        .await
        .expect_err("the account's history is damaged");
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("position {}", frame.first_position)),
        "{status:?}"
    );
    assert_eq!(error_reason(&status).as_deref(), Some("LOG_DAMAGED"));
    // A command that needs the account: the same.
    let status = client
        .transfer(&a, &b, "EUR", 1)
        .await
        .expect_err("the account cannot be loaded");
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");

    wait_for_health(&server, ServingStatus::NotServing, Duration::from_secs(10)).await;
    let log = server.log();
    assert!(log.contains(&path.display().to_string()), "{log}");
    assert!(log.contains(&format!("offset={}", frame.offset)), "{log}");
    assert!(!log.contains("internal error"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scrub_finds_a_damaged_frame_nobody_reads() {
    let root = test_dir();
    let server = Server::start_with_env(
        root.path(),
        &[
            ("PAYCORE_SCRUB_INTERVAL", "1s"),
            ("PAYCORE_SCRUB_BYTES_PER_SECOND", "64M"),
        ],
    );
    let (a, _) = some_history(&server).await;
    let (path, frame) = frame_holding(&server.data_dir(), format!("account-{a}").as_bytes());
    damage(&path, frame);
    wait_for_health(&server, ServingStatus::NotServing, Duration::from_secs(30)).await;
    let log = server.log();
    assert!(log.contains("the log scrub"), "{log}");
    assert!(log.contains(&path.display().to_string()), "{log}");
    assert!(log.contains(&format!("offset={}", frame.offset)), "{log}");
    assert!(
        log.contains(&format!("position={}", frame.first_position)),
        "{log}"
    );
}
