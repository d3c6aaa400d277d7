//! The checksum every chunk value carries from store format 3 on: the encoded chunk
//! followed by its FNV-1a 64-bit hash, little-endian. Any change of a single byte
//! changes the hash (each step of FNV-1a is a bijection of its state), and a random
//! change of more goes unnoticed once in 2^64: a chunk whose bytes changed after they
//! were written is reported, never decoded into other numbers.

/// Bytes the checksum adds to a chunk value.
pub const CHECKSUM_BYTES: usize = 8;

/// FNV-1a, 64 bits.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Appends the checksum of `bytes` to them.
pub fn with_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
    let h = fnv1a64(&bytes);
    bytes.extend_from_slice(&h.to_le_bytes());
    bytes
}

/// The encoded chunk inside a stored value, when its checksum matches.
pub fn checked(value: &[u8]) -> Result<&[u8], &'static str> {
    let Some(split) = value.len().checked_sub(CHECKSUM_BYTES) else {
        return Err("shorter than its checksum");
    };
    let (chunk, sum) = value.split_at(split);
    let sum = u64::from_le_bytes(sum.try_into().expect("eight bytes"));
    if fnv1a64(chunk) != sum {
        return Err("checksum mismatch: its bytes changed after they were written");
    }
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_single_bit_flip_is_caught() {
        let chunk: Vec<u8> = (0..300u32).map(|i| (i * 37 % 251) as u8).collect();
        let stored = with_checksum(chunk.clone());
        assert_eq!(stored.len(), chunk.len() + CHECKSUM_BYTES);
        assert_eq!(checked(&stored), Ok(chunk.as_slice()));
        for i in 0..stored.len() {
            for bit in 0..8 {
                let mut bad = stored.clone();
                bad[i] ^= 1 << bit;
                assert!(checked(&bad).is_err(), "byte {i} bit {bit}");
            }
        }
        assert!(checked(&stored[..5]).is_err());
        assert!(checked(&stored[..stored.len() - 1]).is_err());
        assert_eq!(checked(&with_checksum(Vec::new())), Ok(&[][..]));
    }
}
