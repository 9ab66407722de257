#![allow(clippy::unwrap_used)] // test fixtures: a failure is the test failing

//! `--log-format json` (PAYCORE_LOG_FORMAT): one JSON object per line, for
//! log collectors.

use paycore_e2e::{Server, test_dir};

#[test]
fn json_logs_are_one_object_per_line_with_time_level_and_message() {
    let dir = test_dir();
    let mut server = Server::start_with_env(dir.path(), &[("PAYCORE_LOG_FORMAT", "json")]);
    server.stop_ok();
    let log = server.log();
    // The harness marks each start with a line of its own.
    let lines: Vec<&str> = log.lines().filter(|line| !line.starts_with("=====")).collect();
    assert!(lines.len() >= 3, "{log}");
    for line in lines {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"));
        assert!(entry["timestamp"].is_string(), "{line}");
        assert!(entry["level"].is_string(), "{line}");
        assert!(entry["fields"]["message"].is_string(), "{line}");
    }
    assert!(log.contains(r#""message":"paycore serving gRPC""#), "{log}");
}
