//! When a certificate is valid: `notBefore` and `notAfter` read from its DER.
//!
//! webpki checks validity but does not expose it, and an X.509 parser crate would be a
//! second parser in the binary for two fields; the walk below reads only the path to
//! `validity` (RFC 5280 §4.1) and refuses anything else it meets.
//!
//! ```text
//! Certificate SEQ { tbs SEQ { [0] version?, serial INT, sigAlg SEQ, issuer SEQ,
//!                             validity SEQ { notBefore Time, notAfter Time }, … } … }
//! Time = UTCTime YYMMDDHHMMSSZ (years 1950–2049) | GeneralizedTime YYYYMMDDHHMMSSZ
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// A certificate's validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// Whether less than a third of the period is left at `now` (or it is over): the
    /// moment to renew, long before expiry.
    pub fn due_for_renewal(&self, now: SystemTime) -> bool {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        match self.not_after.duration_since(now) {
            Ok(left) => left < lifetime / 3,
            Err(_) => true,
        }
    }
}

/// Why the validity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate validity: {0}")]
pub struct ValidityError(&'static str);

/// Reads the validity of a DER certificate.
pub fn validity(der: &[u8]) -> Result<Validity, ValidityError> {
    let (cert, _) = expect(der, SEQUENCE, "not a certificate")?;
    let (mut tbs, _) = expect(cert, SEQUENCE, "no tbsCertificate")?;
    if tbs.first() == Some(&VERSION) {
        tbs = tlv(tbs)?.2;
    }
    let (_, rest) = expect(tbs, INTEGER, "no serial number")?;
    let (_, rest) = expect(rest, SEQUENCE, "no signature algorithm")?;
    let (_, rest) = expect(rest, SEQUENCE, "no issuer")?;
    let (validity, _) = expect(rest, SEQUENCE, "no validity")?;
    let (tag, not_before, rest) = tlv(validity)?;
    let not_before = time(tag, not_before)?;
    let (tag, not_after, _) = tlv(rest)?;
    let not_after = time(tag, not_after)?;
    Ok(Validity {
        not_before,
        not_after,
    })
}

fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), ValidityError> {
    let (found, content, rest) = tlv(input)?;
    if found != tag {
        return Err(ValidityError(what));
    }
    Ok((content, rest))
}

/// One tag-length-value: (tag, content, what follows). Definite lengths only (DER).
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), ValidityError> {
    let truncated = ValidityError("truncated DER");
    let (&tag, rest) = input.split_first().ok_or(truncated.clone())?;
    let (&first, mut rest) = rest.split_first().ok_or(truncated.clone())?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(ValidityError("bad DER length"));
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
    };
    if rest.len() < len {
        return Err(truncated);
    }
    let (content, rest) = rest.split_at(len);
    Ok((tag, content, rest))
}

fn time(tag: u8, text: &[u8]) -> Result<SystemTime, ValidityError> {
    let bad = ValidityError("bad time");
    let digits = |s: &[u8]| -> Result<u32, ValidityError> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return Err(ValidityError("bad time"));
        }
        Ok(s.iter().fold(0, |n, &d| n * 10 + u32::from(d - b'0')))
    };
    let (year, rest) = match (tag, text.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(&text[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        (GENERALIZED_TIME, 15) => (digits(&text[..4])?, &text[4..]),
        _ => {
            return Err(ValidityError(
                "time is not UTCTime or GeneralizedTime in Z form",
            ));
        }
    };
    if rest[10] != b'Z' {
        return Err(bad);
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let (hour, minute, second) = (
        digits(&rest[4..6])?,
        digits(&rest[6..8])?,
        digits(&rest[8..10])?,
    );
    let month = time::Month::try_from(month as u8).map_err(|_| bad.clone())?;
    let date =
        time::Date::from_calendar_date(year as i32, month, day as u8).map_err(|_| bad.clone())?;
    let at =
        time::Time::from_hms(hour as u8, minute as u8, second as u8).map_err(|_| bad.clone())?;
    let unix = time::PrimitiveDateTime::new(date, at)
        .assume_utc()
        .unix_timestamp();
    let secs = u64::try_from(unix).map_err(|_| ValidityError("time before 1970"))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{BACKDATE, ClusterCa, Role};

    #[test]
    fn reads_what_the_ca_wrote() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ca = ClusterCa::create(now, Duration::from_secs(86400 * 30)).unwrap();
        let node = ca
            .issue(Role::Agent, "edge-1", now, Duration::from_secs(86400 * 9))
            .unwrap();
        let v = validity(node.chain[0].as_ref()).unwrap();
        assert_eq!(v.not_before, now - BACKDATE);
        assert_eq!(v.not_after, now + Duration::from_secs(86400 * 9));
        let ca_v = validity(ca.cert().as_ref()).unwrap();
        assert_eq!(ca_v.not_after, now + Duration::from_secs(86400 * 30));
        // Renewal is due once less than a third of the lifetime is left.
        assert!(!v.due_for_renewal(now));
        assert!(!v.due_for_renewal(now + Duration::from_secs(86400 * 5)));
        assert!(v.due_for_renewal(now + Duration::from_secs(86400 * 7)));
        assert!(v.due_for_renewal(now + Duration::from_secs(86400 * 10)));
    }

    #[test]
    fn hostile_der_is_an_error() {
        let now = SystemTime::now();
        let ca = ClusterCa::create(now, Duration::from_secs(86400)).unwrap();
        let der = ca.cert().as_ref().to_vec();
        for cut in 0..der.len() {
            let _ = validity(&der[..cut]);
        }
        for i in 0..der.len().min(200) {
            let mut bent = der.clone();
            bent[i] ^= 0xff;
            let _ = validity(&bent);
        }
        assert!(validity(&[]).is_err());
        assert!(validity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(validity(&[0x30, 0x80, 0, 0]).is_err());
        assert!(validity(b"not der at all").is_err());
    }

    #[test]
    fn times_in_both_forms_and_bad_ones() {
        let t = time(UTC_TIME, b"491231235959Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(2_524_607_999));
        assert_eq!(time(UTC_TIME, b"700101000000Z").unwrap(), UNIX_EPOCH);
        assert_eq!(
            time(GENERALIZED_TIME, b"20491231235959Z").unwrap(),
            UNIX_EPOCH + Duration::from_secs(2_524_607_999)
        );
        for bad in [
            &b"491231235959"[..],
            b"4912312359590",
            b"491331235959Z",
            b"491232235959Z",
            b"49123123595aZ",
            b"491231246060Z",
            b"+91231235959Z",
        ] {
            assert!(
                time(UTC_TIME, bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(time(GENERALIZED_TIME, b"19600101000000Z").is_err());
        assert!(time(0x05, b"491231235959Z").is_err());
    }
}
