//! The bodies of `GET /api/tasks/{id}/logs/index` other than plain seqs, built as
//! storage hands over the runs: `runs`, `(first, last)` pairs of little-endian `u32`s,
//! and `bits`, the first seq as a little-endian `u32` then one bit per seq from it
//! (bit `i` of byte `j` is seq `first + 8j + i`), up to the last. Runs suit a sparse
//! or clustered index, bits a dense and scattered one (two lines in three: 8 bytes a
//! run against under 2 bits a seq); `auto` builds both and sends the smaller.

/// Most runs a `runs` answer lists (8 bytes each: 32 MiB).
pub const MAX_INDEX_RUNS: usize = 4_000_000;
/// Most bytes of bits a `bits` answer holds (32 MiB: 268,435,456 seqs from the first).
pub const MAX_INDEX_BITS_BYTES: usize = 32 << 20;

/// What a body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Runs,
    Bits,
}

impl Shape {
    /// Its name in `format=` and `X-Index-Format`.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Runs => "runs",
            Shape::Bits => "bits",
        }
    }
}

/// Runs as they come, in whichever shapes are still within their bounds.
#[derive(Debug)]
pub struct IndexBody {
    runs: Option<Vec<u8>>,
    bits: Option<Vec<u8>>,
    first: Option<u64>,
    /// Seqs so far.
    pub count: u64,
    /// A seq past `u32::MAX`, which neither shape can carry.
    pub too_far: bool,
}

impl IndexBody {
    /// A body to be sent in `shapes` (one, or both for `auto`).
    pub fn new(shapes: &[Shape]) -> IndexBody {
        IndexBody {
            runs: shapes.contains(&Shape::Runs).then(Vec::new),
            // The first seq's four bytes come first, filled in at the end, so the
            // bits are never copied behind them.
            bits: shapes.contains(&Shape::Bits).then(|| vec![0; 4]),
            first: None,
            count: 0,
            too_far: false,
        }
    }

    /// Adds `first..=last`, above every seq so far and not touching the last run;
    /// false once no shape can take more (the caller stops reading then).
    pub fn push_run(&mut self, first: u64, last: u64) -> bool {
        let (Ok(f), Ok(l)) = (u32::try_from(first), u32::try_from(last)) else {
            self.too_far = true;
            return false;
        };
        self.count += last - first + 1;
        if let Some(runs) = &mut self.runs {
            if runs.len() < MAX_INDEX_RUNS * 8 {
                runs.extend_from_slice(&f.to_le_bytes());
                runs.extend_from_slice(&l.to_le_bytes());
            } else {
                self.runs = None;
            }
        }
        let start = *self.first.get_or_insert(first);
        if let Some(bits) = &mut self.bits {
            let (from, to) = ((first - start) as usize, (last - start) as usize);
            if to / 8 < MAX_INDEX_BITS_BYTES {
                set_bits(bits, 32 + from, 32 + to);
            } else {
                self.bits = None;
            }
        }
        self.runs.is_some() || self.bits.is_some()
    }

    /// The smaller of the shapes still within bounds (runs on a tie), and its bytes;
    /// `None` when none is.
    pub fn finish(self) -> Option<(Shape, Vec<u8>)> {
        let bits = self.bits.map(|mut bits| match self.first {
            Some(first) => {
                bits[..4].copy_from_slice(&(first as u32).to_le_bytes());
                bits
            }
            None => Vec::new(),
        });
        match (self.runs, bits) {
            (Some(runs), Some(bits)) if bits.len() < runs.len() => Some((Shape::Bits, bits)),
            (Some(runs), _) => Some((Shape::Runs, runs)),
            (None, Some(bits)) => Some((Shape::Bits, bits)),
            (None, None) => None,
        }
    }
}

/// Sets bits `from..=to` of `bits`, growing it as needed.
fn set_bits(bits: &mut Vec<u8>, from: usize, to: usize) {
    if bits.len() <= to / 8 {
        bits.resize(to / 8 + 1, 0);
    }
    let (first_byte, last_byte) = (from / 8, to / 8);
    let low = 0xFFu8 << (from % 8);
    let high = 0xFFu8 >> (7 - to % 8);
    if first_byte == last_byte {
        bits[first_byte] |= low & high;
        return;
    }
    bits[first_byte] |= low;
    bits[first_byte + 1..last_byte].fill(0xFF);
    bits[last_byte] |= high;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(shapes: &[Shape], runs: &[(u64, u64)]) -> Option<(Shape, Vec<u8>)> {
        let mut body = IndexBody::new(shapes);
        for (first, last) in runs {
            assert!(body.push_run(*first, *last));
        }
        body.finish()
    }

    #[test]
    fn bits_start_at_the_first_seq_and_cover_each_run() {
        let (shape, bytes) = body(&[Shape::Bits], &[(3, 3), (5, 13), (15, 15)]).unwrap();
        assert_eq!(shape, Shape::Bits);
        // From seq 3: 3 | 5..=13 | 15 → offsets 0, 2..=10, 12.
        assert_eq!(bytes, [3, 0, 0, 0, 0b1111_1101, 0b0001_0111]);
        assert_eq!(body(&[Shape::Bits], &[]).unwrap().1, Vec::<u8>::new());
        let mut one_byte = Vec::new();
        set_bits(&mut one_byte, 1, 2);
        assert_eq!(one_byte, [0b110]);
    }

    #[test]
    fn auto_sends_the_smaller_shape() {
        let both = [Shape::Runs, Shape::Bits];
        // One long run: 8 bytes of runs against 4 + 1,250 of bits.
        assert_eq!(body(&both, &[(1, 10_000)]).unwrap().0, Shape::Runs);
        // Every other seq: 8 bytes a seq against a quarter of a byte.
        let scattered: Vec<(u64, u64)> = (0..1000).map(|i| (2 * i + 1, 2 * i + 1)).collect();
        assert_eq!(body(&both, &scattered).unwrap().0, Shape::Bits);
        let (shape, runs) = body(&[Shape::Runs], &scattered[..2]).unwrap();
        assert_eq!(shape, Shape::Runs);
        assert_eq!(runs, [1, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0]);
    }

    #[test]
    fn a_shape_past_its_bound_drops_out_and_seqs_past_u32_are_refused() {
        let both = [Shape::Runs, Shape::Bits];
        let far = MAX_INDEX_BITS_BYTES as u64 * 8 + 1;
        assert_eq!(body(&both, &[(1, 1), (far, far)]).unwrap().0, Shape::Runs);
        let mut bits_only = IndexBody::new(&[Shape::Bits]);
        assert!(bits_only.push_run(1, 1));
        assert!(!bits_only.push_run(far, far));
        assert!(bits_only.finish().is_none());
        let mut body = IndexBody::new(&both);
        assert!(!body.push_run(u64::from(u32::MAX) + 1, u64::from(u32::MAX) + 1));
        assert!(body.too_far);
    }
}
