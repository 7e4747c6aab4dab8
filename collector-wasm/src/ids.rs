//! Identifiers: random UUIDs (version 4) from bytes the platform draws
//! (`crypto.getRandomValues` in browsers, which unlike `randomUUID` also
//! works on plain-HTTP pages).

pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0x0f) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::both! {
        fn a_uuid_has_the_version_and_variant_bits() {
            let id = uuid_v4([0xff; 16]);
            assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
            assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
        }
    }
}
