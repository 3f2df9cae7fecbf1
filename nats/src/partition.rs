/// The partition a key belongs to: FNV-1a over the key's parts, modulo the
/// partition count. Stable across processes, builds and Rust versions (unlike
/// `std`'s hasher), which is what lets any replica compute the same answer.
pub fn partition_of(parts: &[&str], partitions: u16) -> u16 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(PRIME);
    }
    (hash % u64::from(partitions.max(1))) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_partition_and_parts_are_separated() {
        let a = partition_of(&["r1", "whatsapp:+1555"], 64);
        assert_eq!(a, partition_of(&["r1", "whatsapp:+1555"], 64));
        assert!(a < 64);
        let joined: Vec<u16> = (0..50)
            .map(|i| partition_of(&[&format!("ab{i}"), "c"], 1024))
            .collect();
        let split: Vec<u16> = (0..50)
            .map(|i| partition_of(&[&format!("a{i}"), "bc"], 1024))
            .collect();
        assert_ne!(joined, split);
    }

    #[test]
    fn keys_spread_over_partitions() {
        let mut seen = [0u32; 16];
        for i in 0..1600 {
            seen[partition_of(&["restaurant", &format!("whatsapp:+9665{i:08}")], 16) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "uneven spread: {seen:?}");
    }
}
