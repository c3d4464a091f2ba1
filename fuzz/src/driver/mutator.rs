//! The mutation engine: byte-level edits, dictionary tokens, splices with other inputs and long
//! runs, stacked a few at a time, all drawn from one seeded [`Rng`].

use super::rng::Rng;

/// Tokens every target gets: RouterOS syntax, line structure, path traversal, numbers at the
/// edges of their types, escapes and Unicode look-alikes.
pub const COMMON_TOKENS: &[&[u8]] = &[
    b";",
    b";;;",
    b";;; ",
    b"[",
    b"]",
    b"[find",
    b"[find slot=",
    b"[find name=\"",
    b"\"",
    b"\\",
    b"\\\"",
    b"\\n",
    b"\\00",
    b"$",
    b"$x",
    b"{",
    b"}",
    b":put ",
    b":serialize to=json ",
    b"/system reboot",
    b"=",
    b"~",
    b"^",
    b" ",
    b"\t",
    b"\n",
    b"\r\n",
    b"\r",
    b"\0",
    b"\x1b[31m",
    b"\x7f",
    b"\xc2\x85",
    b"\xe2\x80\xa8",
    b"\xef\xbb\xbf",
    b"\xe2\x80\x8b",
    b"\xef\xbc\x8f",
    b"\xef\xbc\xbb",
    b"\xef\xbc\x82",
    b"\xd0\xb0",
    b"\xf0\x9f\x92\xa9",
    b"\xff",
    b"/",
    b"//",
    b"..",
    b"/../",
    b"../",
    b"/.",
    b"%2e%2e",
    b",",
    b":",
    b"-",
    b".",
    b"0",
    b"-1",
    b"00",
    b"255",
    b"256",
    b"65535",
    b"65536",
    b"2147483647",
    b"2147483648",
    b"-2147483648",
    b"4294967295",
    b"4294967296",
    b"9007199254740993",
    b"9223372036854775807",
    b"9223372036854775808",
    b"-9223372036854775808",
    b"18446744073709551615",
    b"18446744073709551616",
    b"340282366920938463463374607431768211456",
    b"1e308",
    b"1e-308",
    b"NaN",
    b"inf",
    b".000000",
    b" 000",
    b"KiB",
    b"MiB",
    b"GiB",
    b"TiB",
    b"yes",
    b"no",
    b"true",
    b"false",
    b"null",
    b"pvc-",
    b"snap-",
    b"nqn.2000-02.com.mikrotik:",
    b"pvc-0d5f7a9e-1c1b-4c53-9c7e-1f4f0a8f3b1d",
];

/// Run lengths for the "long run" edit; the largest ones make 64-100 KiB values.
const RUN_LENGTHS: &[usize] = &[
    2, 3, 8, 63, 64, 80, 128, 200, 223, 224, 256, 4096, 65_536, 102_400,
];

/// Bytes that are worth writing over another.
const INTERESTING_BYTES: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'\n', b'\r', b'\t', b' ', b'"', b'\\', b'=', b';', b'[', b']', b'/',
    b'.', b'-', b':', b',', b'0', b'9', b'a', b'z', b'A', b'Z', b'$',
];

/// Mutates inputs for one target.
#[derive(Debug, Clone)]
pub struct Mutator {
    rng: Rng,
    tokens: Vec<Vec<u8>>,
    max_len: usize,
}

impl Mutator {
    /// A mutator seeded with `seed`, using [`COMMON_TOKENS`] plus the target's `dictionary`,
    /// never producing more than `max_len` bytes.
    pub fn new(seed: u64, dictionary: &[&[u8]], max_len: usize) -> Mutator {
        let tokens = COMMON_TOKENS
            .iter()
            .chain(dictionary)
            .map(|t| t.to_vec())
            .collect();
        Mutator {
            rng: Rng::new(seed),
            tokens,
            max_len,
        }
    }

    /// The mutator's random source (to pick inputs with the same sequence).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Applies one to eight edits to `input`; `others` are inputs to splice from.
    pub fn mutate(&mut self, input: &mut Vec<u8>, others: &[Vec<u8>]) {
        let edits = 1 + self.rng.below(8);
        for _ in 0..edits {
            self.edit(input, others);
        }
        input.truncate(self.max_len);
    }

    fn position(&mut self, input: &[u8]) -> usize {
        // Favour positions next to a line or field boundary, where parsers decide things.
        if !input.is_empty() && self.rng.one_in(3) {
            let start = self.rng.below(input.len());
            if let Some(off) = input[start..]
                .iter()
                .position(|&b| matches!(b, b'\n' | b' ' | b'=' | b'"' | 0xff | b',' | b'/'))
            {
                return start + off + usize::from(self.rng.one_in(2));
            }
        }
        self.rng.below(input.len() + 1)
    }

    fn token(&mut self) -> Vec<u8> {
        self.rng.pick(&self.tokens).cloned().unwrap_or_default()
    }

    fn edit(&mut self, input: &mut Vec<u8>, others: &[Vec<u8>]) {
        match self.rng.below(14) {
            0 => {
                if !input.is_empty() {
                    let at = self.rng.below(input.len());
                    input[at] ^= 1 << self.rng.below(8);
                }
            }
            1 => {
                if !input.is_empty() {
                    let at = self.rng.below(input.len());
                    input[at] = if self.rng.one_in(2) {
                        self.rng.byte()
                    } else {
                        INTERESTING_BYTES[self.rng.below(INTERESTING_BYTES.len())]
                    };
                }
            }
            2 => {
                let at = self.position(input);
                let b = self.rng.byte();
                input.insert(at.min(input.len()), b);
            }
            3 => {
                if !input.is_empty() {
                    let at = self.rng.below(input.len());
                    let len = 1 + self.rng.below(16.min(input.len() - at));
                    input.drain(at..at + len);
                }
            }
            4..=6 => {
                let at = self.position(input).min(input.len());
                let token = self.token();
                input.splice(at..at, token);
            }
            7 => {
                if !input.is_empty() {
                    let at = self.rng.below(input.len());
                    let token = self.token();
                    let end = (at + token.len()).min(input.len());
                    input.splice(at..end, token);
                }
            }
            8 => {
                // Splice: our head with another input's tail.
                if let Some(other) = self.rng.pick(others).cloned() {
                    let cut = self.rng.below(input.len() + 1);
                    let from = self.rng.below(other.len() + 1);
                    input.truncate(cut);
                    input.extend_from_slice(&other[from..]);
                }
            }
            9 => {
                // Insert a chunk of another input.
                if let Some(other) = self.rng.pick(others).cloned()
                    && !other.is_empty()
                {
                    let from = self.rng.below(other.len());
                    let len = 1 + self.rng.below((other.len() - from).min(256));
                    let at = self.position(input).min(input.len());
                    input.splice(at..at, other[from..from + len].iter().copied());
                }
            }
            10 => {
                // Duplicate a range of the input (repeated lines, items, fields).
                if !input.is_empty() {
                    let from = self.rng.below(input.len());
                    let len = 1 + self.rng.below((input.len() - from).min(512));
                    let chunk = input[from..from + len].to_vec();
                    let copies = 1 + self.rng.below(4);
                    let at = self.position(input).min(input.len());
                    for _ in 0..copies {
                        input.splice(at..at, chunk.iter().copied());
                    }
                }
            }
            11 => {
                // A long run of one byte or token.
                let len = if self.rng.one_in(8) {
                    RUN_LENGTHS[self.rng.below(RUN_LENGTHS.len())]
                } else {
                    RUN_LENGTHS[self.rng.below(8)]
                };
                let unit = if self.rng.one_in(2) {
                    vec![INTERESTING_BYTES[self.rng.below(INTERESTING_BYTES.len())]]
                } else {
                    self.token()
                };
                if !unit.is_empty() {
                    let budget = self.max_len.saturating_sub(input.len());
                    let run: Vec<u8> = unit
                        .iter()
                        .copied()
                        .cycle()
                        .take((len * unit.len()).min(budget).min(102_400))
                        .collect();
                    let at = self.position(input).min(input.len());
                    input.splice(at..at, run);
                }
            }
            12 => {
                // Change a run of digits into an edge number.
                if let Some(start) = input.iter().position(u8::is_ascii_digit) {
                    let start = start
                        + input[start..]
                            .iter()
                            .skip(self.rng.below(4))
                            .position(u8::is_ascii_digit)
                            .unwrap_or(0);
                    let end = start
                        + input[start..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit())
                            .count();
                    let number = self.token();
                    input.splice(start..end, number);
                }
            }
            _ => {
                // Toggle ASCII case, or truncate.
                if !input.is_empty() {
                    if self.rng.one_in(2) {
                        let at = self.rng.below(input.len());
                        input[at] ^= if input[at].is_ascii_alphabetic() {
                            0x20
                        } else {
                            0
                        };
                    } else {
                        let keep = self.rng.below(input.len());
                        input.truncate(keep);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_the_length_limit_and_changes_inputs() {
        let mut m = Mutator::new(1, &[b"slot="], 300);
        let others = vec![b"name=storage-pool type=directory".to_vec()];
        let mut changed = 0;
        for _ in 0..5000 {
            let mut input = b"type=file slot=\"pvc-1\" size=1 024".to_vec();
            m.mutate(&mut input, &others);
            assert!(input.len() <= 300);
            if input != b"type=file slot=\"pvc-1\" size=1 024" {
                changed += 1;
            }
        }
        assert!(changed > 4500, "{changed}");
    }

    #[test]
    fn same_seed_same_mutations() {
        let run = |seed| {
            let mut m = Mutator::new(seed, &[], 1000);
            let mut input = b"abc def".to_vec();
            for _ in 0..50 {
                m.mutate(&mut input, &[b"xyz".to_vec()]);
            }
            input
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn can_reach_the_large_inputs_the_limits_are_for() {
        let mut m = Mutator::new(9, &[], 256 * 1024);
        let longest = (0..20_000)
            .map(|_| {
                let mut input = b"x".to_vec();
                m.mutate(&mut input, &[]);
                input.len()
            })
            .max()
            .unwrap_or(0);
        assert!(longest >= 64 * 1024, "{longest}");
    }
}
