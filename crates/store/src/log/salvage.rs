//! Reading a damaged log for the audit: every intact frame's events, in
//! order, and each damaged stretch reported instead of failing.
//!
//! [`LogStore::open`](super::LogStore::open) refuses a log with a damaged
//! frame anywhere but its torn tail, which is right for a server; an auditor
//! wants the opposite: to see as much as can be read and to know exactly
//! what could not. [`salvage`] reads the segments directly (no index, no
//! snapshot), frame by frame. At a frame that fails its header, CRC or
//! decoding (or does not start at the next position), it reports the frame
//! and looks for the next intact frame at 8-byte steps (frames are 8-byte
//! aligned), like torn-tail recovery does, and carries on from there.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::api::{Position, RecordedEvent};
use crate::error::StoreError;

use super::codec::{EventBuilder, HEADER_BYTES, RawHeader, decode_body, decode_body_header, frame_end};
use super::fsutil::{SEGMENTS_DIR, first_nonzero, list_segments, lock_dir};
use super::recovery::{FrameError, Window, find_next_frame};
use super::verify::Damage;

/// What [`salvage`] hands over, in log order.
#[derive(Debug)]
pub enum Salvaged {
    /// Events of intact frames, in position order.
    Events(Vec<RecordedEvent>),
    /// A stretch of the log that cannot be read.
    Lost(LostFrames),
}

/// A damaged frame (and whatever could not be read after it) in place of
/// its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostFrames {
    /// The damaged frame: file, offset, the first position it should hold,
    /// and why it cannot be read.
    pub damage: Damage,
    /// The first position readable again (the next intact frame's); `None`
    /// when nothing intact follows, to the end of the log.
    pub resumes_at: Option<Position>,
}

/// What [`salvage`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SalvageReport {
    /// Events handed over.
    pub events: u64,
    /// Damaged stretches reported.
    pub lost: usize,
}

enum Step {
    Frame {
        end: u64,
        next: Position,
    },
    /// An intact frame that starts later than expected: the positions
    /// before it are missing.
    Ahead {
        first_position: Position,
    },
    End,
    Bad(String),
}

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::io(format!("reading {}", path.display()), e)
}

/// Reads the log in `dir` (the directory `LogStore::open` takes), handing
/// `on` the events of every intact frame in batches of about `batch` events
/// and a [`Salvaged::Lost`] for each damaged stretch, in log order, until the
/// end or until `on` breaks. Takes the directory's lock like `open`
/// ([`StoreError::Locked`] while a server holds it) and writes nothing.
///
/// Damage in the last segment with nothing intact after it is reported too:
/// `open` would cut it as a torn tail if the write was never acknowledged,
/// which the log alone cannot tell.
pub fn salvage(
    dir: &Path,
    batch: usize,
    mut on: impl FnMut(Salvaged) -> ControlFlow<()>,
) -> Result<SalvageReport, StoreError> {
    let _lock = lock_dir(dir)?;
    let listing = list_segments(&dir.join(SEGMENTS_DIR))?;
    let mut report = SalvageReport::default();
    let mut pending: Vec<RecordedEvent> = Vec::new();
    let mut expected: Position = 0;
    let batch = batch.max(1);

    // Hands over the pending events; `Break` when `on` says to stop.
    let mut flush =
        |pending: &mut Vec<RecordedEvent>, report: &mut SalvageReport, lost: Option<LostFrames>| {
            if !pending.is_empty() {
                report.events += pending.len() as u64;
                on(Salvaged::Events(std::mem::take(pending)))?;
            }
            if let Some(lost) = lost {
                report.lost += 1;
                on(Salvaged::Lost(lost))?;
            }
            ControlFlow::Continue(())
        };

    for (i, (first_position, path)) in listing.iter().enumerate() {
        let next_segment = listing.get(i + 1).map(|(first, _)| *first);
        if *first_position != expected {
            let lost = LostFrames {
                damage: damage(
                    path,
                    0,
                    expected,
                    format!(
                        "segment starts at position {first_position}, but the log before it ends at position {expected}"
                    ),
                ),
                resumes_at: Some(*first_position),
            };
            if flush(&mut pending, &mut report, Some(lost)).is_break() {
                return Ok(report);
            }
            expected = *first_position;
        }
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        let len = file.metadata().map_err(|e| io_err(path, e))?.len();
        let mut window = Window::new(&file, len);
        let mut at = 0;
        loop {
            let step = read_frame(&mut window, at, expected, &mut pending).map_err(|e| io_err(path, e))?;
            let lost = match step {
                Step::Frame { end, next } => {
                    at = end;
                    expected = next;
                    if pending.len() >= batch && flush(&mut pending, &mut report, None).is_break() {
                        return Ok(report);
                    }
                    continue;
                }
                Step::End => break,
                Step::Ahead { first_position } => {
                    let lost = LostFrames {
                        damage: damage(
                            path,
                            at,
                            expected,
                            format!("frame starts at position {first_position}, expected {expected}"),
                        ),
                        resumes_at: Some(first_position),
                    };
                    expected = first_position;
                    lost
                }
                Step::Bad(reason) => match next_intact(&mut window, at + 8, expected, next_segment)
                    .map_err(|e| io_err(path, e))?
                {
                    Some((offset, first_position)) => {
                        let lost = LostFrames {
                            damage: damage(path, at, expected, reason),
                            resumes_at: Some(first_position),
                        };
                        at = offset;
                        expected = first_position;
                        lost
                    }
                    None => {
                        let reason = if next_segment.is_none() {
                            format!(
                                "{reason}; nothing intact follows to the end of the log (if this is the \
                                 remains of a write that was never acknowledged, opening the log cuts it)"
                            )
                        } else {
                            format!("{reason}; nothing intact follows in this segment")
                        };
                        let lost = LostFrames {
                            damage: damage(path, at, expected, reason),
                            resumes_at: next_segment,
                        };
                        if flush(&mut pending, &mut report, Some(lost)).is_break() {
                            return Ok(report);
                        }
                        if let Some(next) = next_segment {
                            expected = next;
                        }
                        break;
                    }
                },
            };
            if flush(&mut pending, &mut report, Some(lost)).is_break() {
                return Ok(report);
            }
        }
    }
    let _ = flush(&mut pending, &mut report, None);
    Ok(report)
}

fn damage(path: &Path, offset: u64, position: Position, reason: String) -> Damage {
    Damage {
        file: PathBuf::from(path),
        offset,
        position: Some(position),
        reason,
    }
}

/// Reads the frame at `at`, which should start at `expected`, pushing its
/// events to `out` if it is intact.
fn read_frame(
    window: &mut Window<'_>,
    at: u64,
    expected: Position,
    out: &mut Vec<RecordedEvent>,
) -> std::io::Result<Step> {
    let len = window.len;
    if at >= len {
        return Ok(Step::End);
    }
    if len - at < HEADER_BYTES as u64 {
        return Ok(match first_nonzero(window.file, at, len)? {
            None => Step::End,
            Some(_) => Step::Bad("the file ends inside a frame header".into()),
        });
    }
    let mut header_bytes = [0; HEADER_BYTES];
    header_bytes.copy_from_slice(window.get(at, HEADER_BYTES)?);
    if header_bytes == [0; HEADER_BYTES] {
        return Ok(match first_nonzero(window.file, at, len)? {
            None => Step::End,
            Some(z) => Step::Bad(format!("a zeroed frame header is followed by data at offset {z}")),
        });
    }
    let header = RawHeader::parse(&header_bytes);
    if !header.is_consistent() {
        return Ok(Step::Bad("the frame header fails its length check".into()));
    }
    let body_len = header.body_len;
    if at + HEADER_BYTES as u64 + u64::from(body_len) > len {
        return Ok(Step::Bad(format!(
            "the frame ({body_len} bytes) extends past the end of the file"
        )));
    }
    let body = window.get(at + HEADER_BYTES as u64, body_len as usize)?;
    if crc32c::crc32c(body) != header.crc {
        return Ok(Step::Bad("CRC mismatch".into()));
    }
    let body_header = match decode_body_header(body) {
        Ok(body_header) => body_header,
        Err(reason) => return Ok(Step::Bad(reason)),
    };
    if body_header.first_position > expected {
        return Ok(Step::Ahead {
            first_position: body_header.first_position,
        });
    }
    if body_header.first_position < expected {
        return Ok(Step::Bad(format!(
            "frame starts at position {}, expected {expected}",
            body_header.first_position
        )));
    }
    let mut builder = EventBuilder::default();
    let mut events = Vec::with_capacity(body_header.event_count as usize);
    if let Err(reason) = decode_body(body, |view| {
        events.push(builder.build(view)?);
        Ok(())
    }) {
        return Ok(Step::Bad(reason));
    }
    out.append(&mut events);
    Ok(Step::Frame {
        end: frame_end(at, body_len),
        next: body_header.end_position(),
    })
}

/// The next intact frame from `from` on that starts at or after `expected`
/// (and before `limit`, the next segment's first position): its offset and
/// first position.
fn next_intact(
    window: &mut Window<'_>,
    from: u64,
    expected: Position,
    limit: Option<Position>,
) -> std::io::Result<Option<(u64, Position)>> {
    let mut from = from;
    loop {
        let found = match find_next_frame(window, from) {
            Ok(found) => found,
            Err(FrameError::Io(e)) => return Err(e),
            Err(FrameError::Corrupt(reason)) => return Err(std::io::Error::other(reason)),
            Err(FrameError::Index(e)) => return Err(std::io::Error::other(e.to_string())),
        };
        match found {
            None => return Ok(None),
            Some((offset, header))
                if header.first_position >= expected && limit.is_none_or(|l| header.first_position < l) =>
            {
                return Ok(Some((offset, header.first_position)));
            }
            Some((offset, _)) => from = offset + 8,
        }
    }
}
