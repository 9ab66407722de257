//! The logs' JSON lines (`--log-format json`): tracing-subscriber's JSON
//! format, with the IDs a log collector joins lines on lifted to the top
//! level.

use std::fmt;

use serde_json::{Map, Value};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Fields of the spans around a line that are copied to the line's top
/// level; the innermost span that has one wins. The gRPC call's span
/// records all three.
pub(crate) const LIFTED_FIELDS: [&str; 3] = ["trace_id", "span_id", "request_id"];

/// tracing-subscriber's JSON line (timestamp, level, target, fields, the
/// current span and the list of spans), plus `trace_id`, `span_id` and
/// `request_id` at the top level when a span around the event has them.
#[derive(Debug)]
pub(crate) struct JsonWithTraceIds {
    inner: Format<Json>,
}

impl Default for JsonWithTraceIds {
    fn default() -> Self {
        Self {
            inner: tracing_subscriber::fmt::format()
                .json()
                .with_current_span(true)
                .with_span_list(true),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonWithTraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        match lift_ids(&line) {
            Some(lifted) => writeln!(writer, "{lifted}"),
            None => writer.write_str(&line),
        }
    }
}

/// The line with the IDs lifted, or `None` when it has no span with them
/// (then it is written as formatted).
fn lift_ids(line: &str) -> Option<String> {
    if !LIFTED_FIELDS.iter().any(|field| line.contains(field)) {
        return None;
    }
    let mut object: Map<String, Value> = serde_json::from_str(line.trim_end()).ok()?;
    let mut lifted = Map::new();
    if let Some(Value::Array(spans)) = object.get("spans") {
        // Outermost first: an inner span's value replaces an outer one's.
        for span in spans {
            for field in LIFTED_FIELDS {
                if let Some(value) = span.get(field) {
                    lifted.insert(field.to_owned(), value.clone());
                }
            }
        }
    }
    if lifted.is_empty() {
        return None;
    }
    object.extend(lifted);
    serde_json::to_string(&object).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_the_innermost_span_are_lifted() {
        let line = r#"{"timestamp":"t","level":"INFO","fields":{"message":"m"},"spans":[{"name":"grpc","trace_id":"a","span_id":"b","request_id":"r"},{"name":"inner","span_id":"c"}]}"#;
        let lifted: Value = serde_json::from_str(&lift_ids(line).expect("lifted")).expect("json");
        assert_eq!(lifted["trace_id"], "a");
        assert_eq!(lifted["span_id"], "c");
        assert_eq!(lifted["request_id"], "r");
        assert_eq!(lifted["fields"]["message"], "m");
    }

    #[test]
    fn lines_outside_calls_are_unchanged() {
        assert_eq!(lift_ids(r#"{"fields":{"message":"m"}}"#), None);
    }
}
