//! Reads a time zone from the system's zoneinfo database (TZif files under
//! `/usr/share/zoneinfo`, as Go's `time.LoadLocation` does), for the `tz`
//! template function. Times after the file's last transition keep that
//! transition's offset (the database's files list transitions to 2037).

use std::path::{Component, Path};

/// Where Go (and the system) look for zoneinfo files first.
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// A zone: its transitions (Unix seconds, local-time type index) and
/// local-time types (UTC offset in seconds, abbreviation).
#[derive(Debug)]
pub struct Zone {
    transitions: Vec<(i64, usize)>,
    types: Vec<(i32, String)>,
}

impl Zone {
    /// The offset and abbreviation in effect at `unix` seconds.
    pub fn at(&self, unix: i64) -> (i32, String) {
        let idx = self.transitions.partition_point(|(t, _)| *t <= unix);
        let ty = if idx == 0 {
            0
        } else {
            self.transitions[idx - 1].1
        };
        self.types
            .get(ty)
            .cloned()
            .unwrap_or_else(|| (0, "UTC".into()))
    }
}

/// Loads zone `name` (`Europe/Berlin`).
pub fn load(name: &str) -> Result<Zone, String> {
    let unknown = || format!("unknown time zone {name}");
    let rel = Path::new(name);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(unknown());
    }
    let bytes = std::fs::read(Path::new(ZONEINFO).join(rel)).map_err(|_| unknown())?;
    parse(&bytes).ok_or_else(unknown)
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn int(&mut self, wide: bool) -> Option<i64> {
        if wide {
            let s = self.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            Some(i64::from_be_bytes(a))
        } else {
            self.u32().map(|v| i64::from(v as i32))
        }
    }
}

/// Header counts: isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt.
fn header(r: &mut Reader<'_>) -> Option<(u8, [usize; 6])> {
    if r.take(4)? != b"TZif" {
        return None;
    }
    let version = r.take(1)?[0];
    r.take(15)?;
    let mut counts = [0usize; 6];
    for c in &mut counts {
        *c = r.u32()? as usize;
    }
    Some((version, counts))
}

fn parse(bytes: &[u8]) -> Option<Zone> {
    let mut r = Reader { b: bytes, i: 0 };
    let (version, mut counts) = header(&mut r)?;
    let mut wide = false;
    if version >= b'2' {
        // Skip the 32-bit block; the 64-bit block follows its own header.
        let [isut, isstd, leap, time, typ, chars] = counts;
        r.take(time * 5 + typ * 6 + chars + leap * 8 + isstd + isut)?;
        counts = header(&mut r)?.1;
        wide = true;
    }
    let [_, _, _, timecnt, typecnt, charcnt] = counts;
    let mut times = Vec::with_capacity(timecnt);
    for _ in 0..timecnt {
        times.push(r.int(wide)?);
    }
    let idx: Vec<usize> = r.take(timecnt)?.iter().map(|b| *b as usize).collect();
    let mut raw_types = Vec::with_capacity(typecnt);
    for _ in 0..typecnt {
        let off = r.u32()? as i32;
        let _isdst = r.take(1)?;
        let abbr_idx = r.take(1)?[0] as usize;
        raw_types.push((off, abbr_idx));
    }
    let chars = r.take(charcnt)?;
    let types = raw_types
        .into_iter()
        .map(|(off, i)| {
            let tail = chars.get(i..).unwrap_or_default();
            let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
            (off, String::from_utf8_lossy(&tail[..end]).into_owned())
        })
        .collect();
    Some(Zone {
        transitions: times.into_iter().zip(idx).collect(),
        types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berlin_has_summer_and_winter_time() {
        let Ok(zone) = load("Europe/Berlin") else {
            // No zoneinfo database on this host: nothing to check.
            return;
        };
        assert_eq!(zone.at(1_700_000_000), (3600, "CET".to_string()));
        assert_eq!(zone.at(1_690_000_000), (7200, "CEST".to_string()));
    }

    #[test]
    fn names_outside_the_database_are_unknown() {
        assert_eq!(
            load("../etc/passwd").map(|_| ()),
            Err("unknown time zone ../etc/passwd".to_string())
        );
        assert!(load("No/Such_Zone").is_err());
    }
}
