//! The state of a random generator held by a module ([`Entry::Rng`](crate::Entry::Rng)), as a
//! checkpoint saves it.
//!
//! tapegrad's [`Rng`] is ChaCha12: a 256-bit key (the seed), a 64-bit stream number and a
//! position in its output, counted in 32-bit words. These three determine every number it
//! will draw, so restoring them continues the sequence exactly where it stood.
//!
//! PyTorch's `state_dict` holds no generator state, so the states are kept out of the tensors:
//! each goes into the file's `__metadata__` as text under `tapegrad.rng.<name>`, for example
//! `tapegrad.rng.classifier.2.rng_state = "chacha12 <64 hex digits> 0 1536"`. PyTorch ignores
//! the metadata, so such a file still loads there strictly.

use rand::SeedableRng;
use std::fmt;
use std::str::FromStr;
use tapegrad_autograd::{Error, Rng};

/// The metadata prefix of generator states.
pub const RNG_PREFIX: &str = "tapegrad.rng.";

/// The tag of the algorithm, first in the text form: a state of another generator (from a
/// future version that changed it) is refused rather than silently misread.
const ALGORITHM: &str = "chacha12";

/// Where a generator stands: its key, stream and position (in 32-bit words drawn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RngState {
    pub seed: [u8; 32],
    pub stream: u64,
    pub word_pos: u128,
}

impl RngState {
    /// The state of `rng`, read without changing it.
    pub fn of(rng: &Rng) -> RngState {
        RngState {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos(),
        }
    }

    /// A generator in this state: it draws what the saved one would have drawn next.
    pub fn to_rng(&self) -> Rng {
        let mut rng = Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}

/// `chacha12 <seed as 64 hex digits> <stream> <word position>`.
impl fmt::Display for RngState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ALGORITHM} ")?;
        for b in self.seed {
            write!(f, "{b:02x}")?;
        }
        write!(f, " {} {}", self.stream, self.word_pos)
    }
}

impl FromStr for RngState {
    type Err = Error;

    /// Parses the text written by `Display`; anything else is an `Error::Format` saying what
    /// was expected.
    fn from_str(s: &str) -> Result<RngState, Error> {
        let bad = |why: &str| Error::Format {
            what: "generator state".into(),
            msg: format!(
                "{s:?}: {why} (expected \"{ALGORITHM} <64 hex digits> <stream> <word position>\")"
            ),
        };
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [algorithm, seed, stream, word_pos] = parts[..] else {
            return Err(bad("not four fields"));
        };
        if algorithm != ALGORITHM {
            return Err(bad(&format!("unknown generator {algorithm:?}")));
        }
        if seed.len() != 64 || !seed.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the seed is not 64 hex digits"));
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            // Two ASCII hex digits (checked above) always parse.
            *byte = u8::from_str_radix(&seed[2 * i..2 * i + 2], 16)
                .map_err(|_| bad("the seed is not 64 hex digits"))?;
        }
        Ok(RngState {
            seed: key,
            stream: stream
                .parse()
                .map_err(|_| bad("the stream is not a 64-bit unsigned integer"))?,
            word_pos: word_pos
                .parse()
                .map_err(|_| bad("the position is not an unsigned integer"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;
    use tapegrad_autograd::rng;

    #[test]
    fn a_restored_generator_continues_the_sequence() {
        // 13 words drawn: the position falls inside the generator's buffered block, and a
        // following u64 straddles the word boundary, the case a naive restore would get wrong.
        let mut a = rng(42);
        a.set_stream(7);
        for _ in 0..13 {
            a.next_u32();
        }
        let state = RngState::of(&a);
        assert_eq!(state.word_pos, 13);
        let text = state.to_string();
        let back: RngState = text.parse().unwrap();
        assert_eq!(back, state);
        let mut b = back.to_rng();
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        // Reading the state did not disturb the original's sequence: a fresh generator with
        // the same seed, 13 words and 100 u64 later, draws the same next word.
        let mut c = rng(42);
        c.set_stream(7);
        for _ in 0..13 + 200 {
            c.next_u32();
        }
        assert_eq!(a.next_u32(), c.next_u32());
    }

    #[test]
    fn malformed_states_are_refused_with_the_reason() {
        let good = RngState::of(&rng(1)).to_string();
        let seed = good.split(' ').nth(1).unwrap().to_string();
        for (text, why) in [
            ("", "not four fields"),
            (&format!("pcg64 {seed} 0 0"), "unknown generator"),
            (&format!("chacha12 {} 0 0", &seed[1..]), "64 hex digits"),
            (&format!("chacha12 {}g 0 0", &seed[1..]), "64 hex digits"),
            (&format!("chacha12 {seed} -1 0"), "stream"),
            (&format!("chacha12 {seed} 0 x"), "position"),
        ] {
            let err = text.parse::<RngState>().unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
