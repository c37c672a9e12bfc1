//! What the cache holds for a job: the reply a compile made (its status, stdout,
//! stderr and object), as bytes. Pure encoding; the store around it checks each
//! entry's integrity, and decoding still refuses anything that is not whole.

/// The first bytes of an entry, with its layout's version.
pub(super) const MAGIC: &[u8; 8] = b"SWCE0001";

/// A compile's result as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// The compiler's wait status (always 0: only successes are stored).
    pub status: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The object (or assembly), unpacked.
    pub object: Vec<u8>,
}

/// Appends one length-prefixed part (a big-endian u64 length, then the bytes): the
/// layout of every part of an entry, a rustc job's too.
pub(super) fn put(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u64).to_be_bytes());
    out.extend_from_slice(part);
}

/// Reads one length-prefixed part off the front of `rest`.
pub(super) fn take<'a>(rest: &mut &'a [u8], what: &str) -> Result<&'a [u8], String> {
    let (len, after) = rest
        .split_first_chunk::<8>()
        .ok_or(format!("truncated before its {what}"))?;
    let len = usize::try_from(u64::from_be_bytes(*len)).unwrap_or(usize::MAX);
    if len > after.len() {
        return Err(format!("truncated in its {what}"));
    }
    let (part, after) = after.split_at(len);
    *rest = after;
    Ok(part)
}

impl Entry {
    pub fn encode(&self) -> Vec<u8> {
        let len = 8 + 4 + 24 + self.stdout.len() + self.stderr.len() + self.object.len();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.status.to_be_bytes());
        for part in [&self.stdout, &self.stderr, &self.object] {
            put(&mut out, part);
        }
        out
    }

    /// Decodes a whole entry; an error says what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Entry, String> {
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or("not a cache entry of this version")?;
        let (status, mut rest) = rest
            .split_first_chunk::<4>()
            .ok_or("truncated before its status")?;
        let stdout = take(&mut rest, "stdout")?.to_vec();
        let stderr = take(&mut rest, "stderr")?.to_vec();
        let object = take(&mut rest, "object")?.to_vec();
        if !rest.is_empty() {
            return Err(format!("{} bytes after its object", rest.len()));
        }
        Ok(Entry {
            status: u32::from_be_bytes(*status),
            stdout,
            stderr,
            object,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_refuse_anything_not_whole() {
        let e = Entry {
            status: 0,
            stdout: b"out".to_vec(),
            stderr: b"a.c:1: warning: x\n".to_vec(),
            object: vec![0x7f, b'E', b'L', b'F', 0, 1],
        };
        let bytes = e.encode();
        assert_eq!(Entry::decode(&bytes).unwrap(), e);
        for cut in 0..bytes.len() {
            assert!(Entry::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Entry::decode(&longer).is_err());
        let mut huge = bytes[..12].to_vec();
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(Entry::decode(&huge).is_err());
    }
}
