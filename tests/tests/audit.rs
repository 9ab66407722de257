//! `paycore audit` on a history made through the real server: a clean log
//! passes (exit 0, JSON report without violations); a log with one payload
//! byte edited (and its frame's CRC fixed, so the store still opens) fails
//! with exit 1 and names the hash-chain rule and the position.

use std::path::Path;

use paycore_e2e::{Server, segment_files, test_dir};
use serde_json::Value;

/// Text that ends up verbatim in one event payload (a project's name).
const MARKER: &str = "audit-marker-project";

fn audit_json(server: &Server) -> (Option<i32>, Value, String) {
    let output = server.cli(&["audit", "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let value = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {stdout}\n{stderr}"));
    (output.status.code(), value, stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_passes_a_clean_log_and_names_an_edited_event() {
    let root = test_dir();
    let mut server = Server::start(root.path());
    let marked = server.create_project(MARKER, false);
    assert!(marked.id.starts_with("prj_"));
    let client = server.client();
    let mut accounts = Vec::new();
    for allow in [false, true, false] {
        accounts.push(client.create_account("EUR", allow).await.expect("account").id);
    }
    client
        .set_balance(&accounts[0], "EUR", 10_000)
        .await
        .expect("magic balance");
    for (i, value) in [700, 300, 45, 5].into_iter().enumerate() {
        let (from, to) = (&accounts[i % 2], &accounts[(i % 2) + 1]);
        client.transfer(from, to, "EUR", value).await.expect("transfer");
    }
    // While the server runs, the log is not the audit's to open.
    let busy = server.cli(&["audit"]);
    assert_eq!(busy.status.code(), Some(2), "{busy:?}");
    assert!(String::from_utf8_lossy(&busy.stderr).contains("running paycore server"));
    server.stop_ok();

    let (code, report, stderr) = audit_json(&server);
    assert_eq!(code, Some(0), "{report:?}\n{stderr}");
    assert_eq!(report["violations"], Value::Array(Vec::new()), "{report}");
    assert!(
        report["events"].as_u64().is_some_and(|events| events > 10),
        "{report}"
    );
    assert_eq!(
        report["accounts"].as_object().map(|a| a.len()),
        Some(3),
        "{report}"
    );
    assert!(stderr.contains("events/s"), "{stderr}");

    // Edit one byte of the marked project's name in the log and fix the CRC.
    let position = corrupt_marker(&server.data_dir());
    let output = server.cli(&["audit"]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("[hash_chain]"), "{stdout}");
    assert!(stdout.contains(&format!("project-{}", marked.id)), "{stdout}");
    let (code, report, _) = audit_json(&server);
    assert_eq!(code, Some(1));
    let first = &report["violations"][0];
    assert_eq!(first["rule"], "hash_chain", "{report}");
    assert_eq!(first["stream"], format!("project-{}", marked.id), "{report}");
    assert_eq!(first["version"], 0, "{report}");
    assert_eq!(first["position"], position, "{report}");
}

/// Flips one letter of [`MARKER`] in the last segment and rewrites that
/// frame's CRC. Returns the position of the frame's first event (the
/// project's creation is one commit of its own, then its key).
fn corrupt_marker(data_dir: &Path) -> u64 {
    let path = segment_files(data_dir).pop().expect("a segment");
    let mut bytes = std::fs::read(&path).expect("reading the segment");
    let at = bytes
        .windows(MARKER.len())
        .position(|window| window == MARKER.as_bytes())
        .expect("the marker is in the last segment");
    bytes[at] ^= 0x20; // 'a' → 'A'
    // Walk the frames: [u32 len][u32 !len][u32 crc32c(body)][body], 8-aligned.
    let mut offset = 0usize;
    let mut first_position = None;
    while offset + 12 <= bytes.len() {
        let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let len = word(offset) as usize;
        if len == 0 {
            break;
        }
        assert_eq!(word(offset + 4), !(len as u32), "frame header at {offset}");
        let body = offset + 12..offset + 12 + len;
        if body.contains(&at) {
            let crc = crc32c::crc32c(&bytes[body.clone()]);
            bytes[offset + 8..offset + 12].copy_from_slice(&crc.to_le_bytes());
            // body: group_first_position, group_end, first_position, …
            let p = body.start + 16;
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&bytes[p..p + 8]);
            first_position = Some(u64::from_le_bytes(raw));
            break;
        }
        offset = (offset + 12 + len).div_ceil(8) * 8;
    }
    std::fs::write(&path, &bytes).expect("writing the segment");
    first_position.expect("no frame holds the marker")
}
