//! A small seeded mutator and the runner of the property-based sessions
//! (`make test` runs each target briefly; `paycore-fuzz run` runs them as
//! long as asked). Coverage-guided runs use cargo-fuzz (`fuzz/`) instead;
//! both call the same harnesses.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, RngCore, SeedableRng};

use crate::Target;

/// The mutator's randomness: `rand`'s standard generator, seeded, so a
/// failing run replays from its seed.
#[derive(Clone, Debug)]
pub struct Rng(StdRng);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.0.random_range(0..n) }
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Values that tend to sit on boundaries of length and count checks.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    7,
    8,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as u64,
    u64::MAX,
];

/// One random edit of `data`, with `other` (another corpus entry) for
/// splicing. Keeps the input under `max_len` bytes.
pub fn mutate(data: &mut Vec<u8>, other: &[u8], rng: &mut Rng, max_len: usize) {
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        match rng.below(11) {
            0 | 1 if !data.is_empty() => {
                let at = rng.below(data.len());
                data[at] ^= 1 << rng.below(8);
            }
            2 if !data.is_empty() => {
                let at = rng.below(data.len());
                data[at] = rng.byte();
            }
            3 if !data.is_empty() => {
                // Delete a run.
                let at = rng.below(data.len());
                let len = 1 + rng.below((data.len() - at).min(16));
                data.drain(at..at + len);
            }
            4 if data.len() < max_len => {
                // Insert random bytes.
                let at = rng.below(data.len() + 1);
                let len = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
                data.splice(at..at, bytes);
            }
            5 if !data.is_empty() => {
                // Overwrite with an interesting integer, 1, 2, 4 or 8 bytes LE.
                let value = INTERESTING[rng.below(INTERESTING.len())];
                let width = [1, 2, 4, 8][rng.below(4)];
                let at = rng.below(data.len());
                for (i, byte) in value.to_le_bytes().iter().take(width).enumerate() {
                    if let Some(place) = data.get_mut(at + i) {
                        *place = *byte;
                    }
                }
            }
            6 if !other.is_empty() => {
                // Splice: our head, their tail.
                let cut = rng.below(data.len() + 1);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            7 if !data.is_empty() => {
                // Duplicate a run (repeats records, grows counts).
                let at = rng.below(data.len());
                let len = 1 + rng.below((data.len() - at).min(64));
                let run = data[at..at + len].to_vec();
                let to = rng.below(data.len() + 1);
                data.splice(to..to, run);
            }
            8 if !data.is_empty() => {
                data.truncate(rng.below(data.len()));
            }
            9 if !data.is_empty() => {
                // Add or subtract a little from a byte (lengths off by one).
                let at = rng.below(data.len());
                data[at] = data[at].wrapping_add([1, 0xff, 2, 0xfe][rng.below(4)]);
            }
            _ => {
                let len = rng.below(64);
                data.extend((0..len).map(|_| rng.byte()));
            }
        }
    }
    data.truncate(max_len);
}

/// What one session of a target did.
#[derive(Clone, Debug, Default)]
pub struct Session {
    pub executions: u64,
    pub elapsed: Duration,
    /// The input of the first panic, if any (hex in reports).
    pub panic: Option<(Vec<u8>, String)>,
}

/// Runs `target` on its seeds, then on mutations of them and on random
/// bytes, until `budget` runs out or `max_executions` ran, stopping at the
/// first panic. Deterministic in `seed` (up to the time budget).
pub fn run(target: &Target, budget: Duration, max_executions: u64, seed: u64) -> Session {
    let started = Instant::now();
    let mut rng = Rng::new(seed ^ fnv(target.name));
    let mut corpus = (target.seeds)();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let mut session = Session::default();
    let try_one = |input: &[u8], session: &mut Session| -> bool {
        session.executions += 1;
        match catch_unwind(AssertUnwindSafe(|| (target.run)(input))) {
            Ok(()) => true,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "a panic".into());
                session.panic = Some((input.to_vec(), message));
                false
            }
        }
    };
    for seed_input in &corpus {
        if !try_one(seed_input, &mut session) {
            session.elapsed = started.elapsed();
            return session;
        }
    }
    let mut input = Vec::new();
    while session.executions < max_executions && started.elapsed() < budget {
        if rng.chance(20) {
            let len = rng.below(256);
            input.clear();
            input.extend((0..len).map(|_| rng.byte()));
        } else {
            input.clear();
            input.extend_from_slice(&corpus[rng.below(corpus.len())]);
            let other = &corpus[rng.below(corpus.len())];
            mutate(&mut input, other, &mut rng, target.max_len);
        }
        if !try_one(&input, &mut session) {
            break;
        }
        // Keep a few mutants: deeper edits of inputs that already got past
        // the first checks find more than edits of the seeds alone.
        if rng.chance(64) && corpus.len() < 4_096 {
            corpus.push(input.clone());
        }
    }
    session.elapsed = started.elapsed();
    session
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
    })
}
