//! Sparse files: the map of data regions, however the archive gives it.
//!
//! ```text
//! old GNU 'S'    4 regions in the header, 21 per extension block after it
//! PAX 0.0 / 0.1  GNU.sparse.offset/numbytes records, or GNU.sparse.map=o,n,o,n
//! PAX 1.0        decimal lines at the start of the entry's data: count, then
//!                offset and length per region, padded to a 512-byte block
//! ```
//!
//! Whatever the format, the regions must be ascending, must not overlap, must end
//! within the file's real size, and their lengths must add up to the data the archive
//! holds. The number of regions is bounded (memory), and so is the real size (by the
//! caller, against the byte limit).

use std::io::BufRead;

use super::tar::TarReader;

/// The most regions a sparse map may list.
pub(super) const MAX_SPARSE_REGIONS: usize = 1 << 16;

/// The longest decimal number a PAX 1.0 map line may hold (u64::MAX has 20 digits).
const MAX_DIGITS: usize = 20;

/// A sparse file: the data in the archive is the listed regions, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sparse {
    pub real_size: u64,
    /// `(offset, length)`, ascending, not overlapping, within `real_size`.
    pub regions: Vec<(u64, u64)>,
}

impl Sparse {
    /// Checks the map against the file's real size and the bytes stored.
    pub(super) fn new(
        real_size: u64,
        regions: Vec<(u64, u64)>,
        stored: u64,
    ) -> Result<Sparse, &'static str> {
        let mut end = 0u64;
        let mut total = 0u64;
        for &(offset, length) in &regions {
            let region_end = offset
                .checked_add(length)
                .ok_or("sparse region exceeds the file")?;
            if offset < end || region_end > real_size {
                return Err("sparse regions overlap or exceed the file");
            }
            end = region_end;
            total = total.saturating_add(length);
        }
        if total != stored {
            return Err("sparse regions disagree with the entry size");
        }
        Ok(Sparse { real_size, regions })
    }
}

/// `[o, n, o, n, ...]` as `(o, n)` pairs.
pub(super) fn pairs(flat: &[u64]) -> Result<Vec<(u64, u64)>, &'static str> {
    if !flat.len().is_multiple_of(2) {
        return Err("sparse map with an odd number of values");
    }
    Ok(flat.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}

/// Reads a PAX 1.0 sparse map from the start of the current entry's data, leaving the
/// reader at the first data region.
pub(super) fn read_map_1_0<R: BufRead>(
    tar: &mut TarReader<R>,
) -> Result<Vec<(u64, u64)>, &'static str> {
    let mut consumed: u64 = 0;
    let mut next = |tar: &mut TarReader<R>| -> Result<u64, &'static str> {
        let mut digits = 0usize;
        let mut n: u64 = 0;
        loop {
            let buf = tar
                .data()
                .map_err(|_| "stream ends inside the sparse map")?;
            let Some(&b) = buf.first() else {
                return Err("sparse map longer than the entry");
            };
            tar.consume(1);
            consumed += 1;
            match b {
                b'\n' if digits > 0 => return Ok(n),
                b'0'..=b'9' if digits < MAX_DIGITS => {
                    n = n
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(b - b'0')))
                        .ok_or("sparse map number out of range")?;
                    digits += 1;
                }
                _ => return Err("bad sparse map line"),
            }
        }
    };
    let count = next(tar)?;
    if count > MAX_SPARSE_REGIONS as u64 {
        return Err("sparse map has too many regions");
    }
    let mut regions = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let offset = next(tar)?;
        let length = next(tar)?;
        regions.push((offset, length));
    }
    // The map fills whole blocks; the regions' data starts at the next one.
    let mut padding = (512 - consumed % 512) % 512;
    while padding > 0 {
        let buf = tar
            .data()
            .map_err(|_| "stream ends inside the sparse map")?;
        if buf.is_empty() {
            return Err("sparse map longer than the entry");
        }
        let n = buf.len().min(padding as usize);
        tar.consume(n);
        padding -= n as u64;
    }
    Ok(regions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_checked() {
        assert!(Sparse::new(100, vec![(0, 10), (50, 10), (100, 0)], 20).is_ok());
        assert!(Sparse::new(100, vec![(50, 10), (0, 10)], 20).is_err());
        assert!(Sparse::new(100, vec![(0, 10), (5, 10)], 20).is_err());
        assert!(Sparse::new(100, vec![(95, 10)], 10).is_err());
        assert!(Sparse::new(100, vec![(0, 10)], 11).is_err());
        assert!(Sparse::new(u64::MAX, vec![(u64::MAX, 1)], 1).is_err());
        assert_eq!(pairs(&[1, 2, 3, 4]), Ok(vec![(1, 2), (3, 4)]));
        assert!(pairs(&[1, 2, 3]).is_err());
    }
}
