//! PAX extended header records: the keys moor uses, parsed from a bounded buffer.
//!
//! A record is `<len> <key>=<value>\n`, `len` counting the whole record. An empty value
//! removes the key (the header field applies again). Unknown keys are ignored, as POSIX
//! says; `GNU.sparse.*` keys describe a sparse file (see [`super::sparse`]).

use super::sparse::MAX_SPARSE_REGIONS;

/// The PAX records moor uses.
#[derive(Debug, Default)]
pub(super) struct Pax {
    pub path: Option<Vec<u8>>,
    pub linkpath: Option<Vec<u8>>,
    pub size: Option<u64>,
    pub uid: Option<u64>,
    pub gid: Option<u64>,
    pub mtime: Option<(i64, u32)>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub sparse: PaxSparse,
}

/// GNU's sparse-file records (formats 0.0, 0.1 and 1.0).
#[derive(Debug, Default)]
pub(super) struct PaxSparse {
    /// Any `GNU.sparse.*` record at all.
    pub any: bool,
    pub major: Option<Vec<u8>>,
    pub minor: Option<Vec<u8>>,
    /// The file's real name (the header's is `GNUSparseFile.<pid>/<name>`).
    pub name: Option<Vec<u8>>,
    pub real_size: Option<u64>,
    /// Offsets and lengths, alternating (formats 0.0 and 0.1).
    pub map: Option<Vec<u64>>,
}

/// Where a PAX sparse file's map is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SparseFormat {
    NotSparse,
    /// In the records (0.0, 0.1).
    InRecords,
    /// At the start of the entry's data (1.0).
    InData,
}

impl PaxSparse {
    /// Which format the records describe, as Go's reader decides it.
    pub(super) fn format(&self) -> Result<SparseFormat, &'static str> {
        let version = (self.major.as_deref(), self.minor.as_deref());
        match version {
            (Some(b"0"), Some(b"0" | b"1")) => Ok(SparseFormat::InRecords),
            (Some(b"1"), Some(b"0")) => Ok(SparseFormat::InData),
            (Some(_), _) | (_, Some(_)) => Err("unknown pax sparse version"),
            (None, None) if self.map.is_some() => Ok(SparseFormat::InRecords),
            (None, None) if self.any => Err("incomplete pax sparse records"),
            (None, None) => Ok(SparseFormat::NotSparse),
        }
    }
}

impl Pax {
    pub(super) fn parse(mut data: &[u8]) -> Result<Pax, &'static str> {
        let mut pax = Pax::default();
        while !data.is_empty() {
            // Some writers pad the records with NULs.
            if data.iter().all(|&b| b == 0) {
                break;
            }
            let space = data
                .iter()
                .position(|&b| b == b' ')
                .ok_or("pax record without a length")?;
            let len: usize = std::str::from_utf8(&data[..space])
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|&n| n > space + 1 && n <= data.len())
                .ok_or("bad pax record length")?;
            let record = &data[space + 1..len];
            data = &data[len..];
            let record = record
                .strip_suffix(b"\n")
                .ok_or("pax record without newline")?;
            let eq = record
                .iter()
                .position(|&b| b == b'=')
                .ok_or("pax record without '='")?;
            pax.record(&record[..eq], &record[eq + 1..])?;
        }
        Ok(pax)
    }

    fn record(&mut self, key: &[u8], value: &[u8]) -> Result<(), &'static str> {
        let set = !value.is_empty();
        let number = |v: &[u8]| if set { decimal(v).map(Some) } else { Ok(None) };
        match key {
            b"path" => self.path = set.then(|| value.to_vec()),
            b"linkpath" => self.linkpath = set.then(|| value.to_vec()),
            b"size" => self.size = number(value)?,
            b"uid" => self.uid = number(value)?,
            b"gid" => self.gid = number(value)?,
            b"mtime" => self.mtime = if set { Some(pax_time(value)?) } else { None },
            _ if key.starts_with(b"SCHILY.xattr.") => {
                let name = &key[b"SCHILY.xattr.".len()..];
                self.xattrs.retain(|(n, _)| n != name);
                self.xattrs.push((name.to_vec(), value.to_vec()));
            }
            _ if key.starts_with(b"GNU.sparse.") => self.sparse_record(key, value)?,
            _ => {}
        }
        Ok(())
    }

    fn sparse_record(&mut self, key: &[u8], value: &[u8]) -> Result<(), &'static str> {
        let sparse = &mut self.sparse;
        sparse.any = true;
        match &key[b"GNU.sparse.".len()..] {
            b"major" => sparse.major = Some(value.to_vec()),
            b"minor" => sparse.minor = Some(value.to_vec()),
            b"name" => sparse.name = Some(value.to_vec()),
            b"size" | b"realsize" => sparse.real_size = Some(decimal(value)?),
            b"numblocks" => {}
            // Format 0.0 repeats these two, in order.
            b"offset" | b"numbytes" => {
                let map = sparse.map.get_or_insert_default();
                if map.len() >= 2 * MAX_SPARSE_REGIONS {
                    return Err("sparse map has too many regions");
                }
                map.push(decimal(value)?);
            }
            b"map" => {
                let mut map = Vec::new();
                for n in value.split(|&b| b == b',').filter(|n| !n.is_empty()) {
                    if map.len() >= 2 * MAX_SPARSE_REGIONS {
                        return Err("sparse map has too many regions");
                    }
                    map.push(decimal(n)?);
                }
                sparse.map = Some(map);
            }
            _ => {}
        }
        Ok(())
    }
}

fn decimal(v: &[u8]) -> Result<u64, &'static str> {
    std::str::from_utf8(v)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or("bad pax number")
}

/// A PAX time: decimal seconds, optionally negative, optionally with a fraction.
fn pax_time(value: &[u8]) -> Result<(i64, u32), &'static str> {
    const BAD: &str = "bad pax time";
    let text = std::str::from_utf8(value).map_err(|_| BAD)?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(BAD);
    }
    let secs: i64 = secs.parse().map_err(|_| BAD)?;
    let mut nanos: u32 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
    }
    Ok(match (negative, nanos) {
        (false, _) => (secs, nanos),
        (true, 0) => (-secs, 0),
        (true, n) => (-secs - 1, 1_000_000_000 - n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_parsed_and_empty_values_unset() {
        let data = b"12 path=a/b\n12 uid=1000\n15 mtime=-1.25\n25 SCHILY.xattr.user.k=v\n8 path=\n";
        let pax = Pax::parse(data).expect("parse");
        assert_eq!(pax.path, None);
        assert_eq!(pax.uid, Some(1000));
        assert_eq!(pax.mtime, Some((-2, 750_000_000)));
        assert_eq!(pax.xattrs, vec![(b"user.k".to_vec(), b"v".to_vec())]);
    }

    #[test]
    fn malformed_records_are_refused() {
        for bad in [
            &b"5 a=b"[..],
            b"99 path=x\n",
            b"x path=x\n",
            b"9 pathx\n\n",
            b"10 uid=-1\n",
            b"13 mtime=1e9\n",
        ] {
            assert!(Pax::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sparse_formats_are_told_apart() {
        let v1 = Pax::parse(b"22 GNU.sparse.major=1\n22 GNU.sparse.minor=0\n").expect("1.0");
        assert_eq!(v1.sparse.format(), Ok(SparseFormat::InData));
        let v01 = Pax::parse(b"26 GNU.sparse.map=0,5,9,1\n").expect("0.1");
        assert_eq!(v01.sparse.format(), Ok(SparseFormat::InRecords));
        assert_eq!(v01.sparse.map, Some(vec![0, 5, 9, 1]));
        let v2 = Pax::parse(b"22 GNU.sparse.major=2\n").expect("2");
        assert!(v2.sparse.format().is_err());
        let plain = Pax::parse(b"10 path=a\n").expect("plain");
        assert_eq!(plain.sparse.format(), Ok(SparseFormat::NotSparse));
    }
}
