//! The classifier reads whatever arrives on the bounce address, so no input may panic it:
//! truncated corpus samples, samples with random bytes flipped, and plain garbage.

use std::path::PathBuf;

/// A few samples of different shapes: a DSN, an ARF complaint, a plain-text qmail bounce, an
/// Exim HTML notice, an auto-reply.
const SAMPLES: &[&str] = &[
    "lhost-postfix-31.eml",
    "arf-16.eml",
    "lhost-qmail-03.eml",
    "lhost-exim-33.eml",
    "rfc3834-01.eml",
    "lhost-amazonses-09.eml",
];

fn sample(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/bounces")
        .join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("the bounce corpus is missing ({}): {e}", path.display()))
}

/// A linear congruential generator: reproducible randomness without a dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn every_prefix_of_a_sample_is_read_without_panicking() {
    for name in SAMPLES {
        let raw = sample(name);
        let step = (raw.len() / 300).max(1);
        for end in (0..=raw.len()).step_by(step) {
            mailtrail_bounce::classify(&raw[..end]);
        }
    }
}

#[test]
fn samples_with_random_bytes_changed_are_read_without_panicking() {
    let mut rng = Lcg(0x6d61_696c_7472_6169);
    // Bytes that matter to the parsers, so flips hit structure rather than only text.
    let interesting = b"\r\n:;<>@.-=\"\t \x00\xff\xc3";
    for name in SAMPLES {
        let raw = sample(name);
        for _ in 0..200 {
            let mut bytes = raw.clone();
            for _ in 0..1 + rng.below(20) {
                let at = rng.below(bytes.len());
                bytes[at] = if rng.below(2) == 0 {
                    interesting[rng.below(interesting.len())]
                } else {
                    rng.next() as u8
                };
            }
            mailtrail_bounce::classify(&bytes);
        }
    }
}

#[test]
fn garbage_is_read_as_unknown_or_whatever_it_resembles_without_panicking() {
    let mut rng = Lcg(42);
    for len in [0, 1, 2, 10, 100, 1000, 10_000] {
        for _ in 0..20 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            mailtrail_bounce::classify(&bytes);
        }
    }
    let report = mailtrail_bounce::classify(b"");
    assert_eq!(report.kind, mailtrail_bounce::Kind::Unknown);
}

/// Inputs the fuzzer (`fuzz/`, target `bounce_classify`) once crashed on: replayed forever.
#[test]
fn inputs_that_once_crashed_the_fuzzer_are_read_without_panicking() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-crashes");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let report = mailtrail_bounce::classify(&std::fs::read(&path).unwrap());
        assert!(report.recipients.len() < 1000, "{}", path.display());
    }
}
