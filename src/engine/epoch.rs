//! Epochs: a short string that names one numbering of a topic's `seq`. A new
//! one is drawn whenever the numbering restarts (a server start, a cleared
//! topic), so a client that sees another epoch knows `seq` 1 is a restart,
//! not a gap.

use std::fmt;

/// Eight lowercase hex digits, kept inline: no allocation per topic.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch([u8; 8]);

impl Epoch {
    /// A fresh, random epoch.
    pub fn new() -> Epoch {
        Epoch::from_bits(rand::random::<u32>())
    }

    fn from_bits(bits: u32) -> Epoch {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 8];
        for (i, b) in text.iter_mut().enumerate() {
            *b = HEX[((bits >> (28 - 4 * i)) & 0xf) as usize];
        }
        Epoch(text)
    }

    /// An epoch as sent on the wire (eight lowercase hex digits), as read
    /// back from the cluster's store.
    pub fn parse(text: &str) -> Option<Epoch> {
        let b = text.as_bytes();
        let ok = b.len() == 8 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Epoch(b.try_into().unwrap_or([b'0'; 8])))
    }

    /// The epoch as sent on the wire.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("00000000")
    }
}

impl Default for Epoch {
    fn default() -> Self {
        Epoch::new()
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_parse_back_and_nothing_else_does() {
        let e = Epoch::new();
        assert_eq!(Epoch::parse(e.as_str()), Some(e));
        for bad in ["", "0123456", "0123456789", "0123456G", "ABCDEF01"] {
            assert_eq!(Epoch::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn epochs_are_eight_hex_digits_and_differ() {
        assert_eq!(Epoch::from_bits(0x9f3a_0001).as_str(), "9f3a0001");
        let a = Epoch::new();
        assert_eq!(a.as_str().len(), 8);
        // Two draws colliding has a chance of 2^-32 per pair; 16 draws all
        // equal would mean the generator is broken.
        let draws: std::collections::HashSet<Epoch> = (0..16).map(|_| Epoch::new()).collect();
        assert!(draws.len() > 1);
    }
}
