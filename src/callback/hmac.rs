//! HMAC-SHA256 (RFC 2104 over the `sha2` crate) and the `X-Fetchflow-Signature` header:
//! `sha256=<64 lower-case hex digits>`, computed over the exact body bytes and verified in
//! constant time.

use sha2::{Digest, Sha256};

/// SHA-256's block size in bytes (the `B` of RFC 2104).
const BLOCK_SIZE: usize = 64;

/// The only accepted signature prefix (case-sensitive).
pub const SIGNATURE_PREFIX: &str = "sha256=";

/// The length of a signature header value: the prefix and 64 hex digits.
const SIGNATURE_LEN: usize = SIGNATURE_PREFIX.len() + 64;

/// HMAC-SHA256 of `message` under `key` (RFC 2104): keys longer than a block are hashed first,
/// shorter ones are zero-padded; `H((K ^ opad) || H((K ^ ipad) || message))`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; BLOCK_SIZE];
    if key.len() > BLOCK_SIZE {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_pad = block.map(|byte| byte ^ 0x36);
    let outer_pad = block.map(|byte| byte ^ 0x5c);
    let inner = Sha256::new()
        .chain_update(inner_pad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// The `X-Fetchflow-Signature` value of `body` under `key`: `sha256=<lower-case hex>`.
pub fn signature_header(key: &[u8], body: &[u8]) -> String {
    let mut header = String::with_capacity(SIGNATURE_LEN);
    header.push_str(SIGNATURE_PREFIX);
    push_hex(&mut header, &hmac_sha256(key, body));
    header
}

/// Whether `header` is exactly the signature of `body` under `key`.
///
/// Only the form [`signature_header`] produces is accepted: the `sha256=` prefix as written and
/// 64 lower-case hex digits, nothing around them. The comparison looks at every byte whatever
/// differs, so its time does not depend on where a forged signature goes wrong; only the length,
/// which is public, is checked first.
pub fn verify_signature(key: &[u8], body: &[u8], header: &str) -> bool {
    let expected = signature_header(key, body);
    let given = header.as_bytes();
    if given.len() != expected.len() {
        return false;
    }
    let difference = expected
        .bytes()
        .zip(given)
        .fold(0u8, |acc, (want, got)| acc | (want ^ got));
    std::hint::black_box(difference) == 0
}

/// Appends the lower-case hex digits of `bytes` to `out`.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        let mut out = String::new();
        push_hex(&mut out, bytes);
        out
    }

    /// RFC 4231 section 4, HMAC-SHA-256 results (test case 5, a truncated output, does not apply).
    #[test]
    fn rfc4231_test_vectors() {
        let large_key = [0xaa; 131];
        let cases: [(&[u8], &[u8], &str); 6] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 20],
                &[0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                &[
                    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
                    0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
                ],
                &[0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                &large_key,
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                &large_key,
                b"This is a test using a larger than block-size key and a larger than \
                  block-size data. The key needs to be hashed before being used by the HMAC \
                  algorithm.",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (number, (key, data, expected)) in [1, 2, 3, 4, 6, 7].into_iter().zip(cases) {
            assert_eq!(hex(&hmac_sha256(key, data)), expected, "test case {number}");
        }
    }

    #[test]
    fn keys_of_exactly_one_block_are_not_hashed() {
        // A 64-byte key is used as is; hashing it would give a different MAC.
        let key = [0x42; 64];
        let hashed: [u8; 32] = Sha256::digest(key).into();
        assert_ne!(hmac_sha256(&key, b"m"), hmac_sha256(&hashed, b"m"));
        // A 65-byte key is hashed first, so it equals the MAC under its digest.
        let long = [0x42; 65];
        let digest: [u8; 32] = Sha256::digest(long).into();
        assert_eq!(hmac_sha256(&long, b"m"), hmac_sha256(&digest, b"m"));
    }

    #[test]
    fn header_is_prefixed_lower_case_hex() {
        let header = signature_header(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            header,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(header.len(), SIGNATURE_LEN);
    }

    #[test]
    fn verification_accepts_only_the_exact_signature() {
        let key = b"callback-key";
        let body = br#"{"status":"succeeded"}"#;
        let good = signature_header(key, body);
        assert!(verify_signature(key, body, &good));

        let digits = &good[SIGNATURE_PREFIX.len()..];
        let rejected = [
            String::new(),
            digits.to_string(),
            format!("SHA256={digits}"),
            format!("Sha256={digits}"),
            format!("sha-256={digits}"),
            format!("sha1={digits}"),
            format!("sha256:{digits}"),
            format!(" {good}"),
            format!("{good} "),
            format!("{good}0"),
            good[..good.len() - 1].to_string(),
            format!("sha256={}", digits.to_ascii_uppercase()),
        ];
        for header in &rejected {
            assert!(!verify_signature(key, body, header), "accepted {header:?}");
        }
        // Every single-bit change of the MAC is rejected.
        let mac = hmac_sha256(key, body);
        for bit in 0..256 {
            let mut flipped = mac;
            flipped[bit / 8] ^= 1 << (bit % 8);
            let header = format!("{SIGNATURE_PREFIX}{}", hex(&flipped));
            assert!(!verify_signature(key, body, &header), "bit {bit}");
        }
        // Another key or one more byte of body does not verify.
        assert!(!verify_signature(b"callback-kez", body, &good));
        assert!(!verify_signature(key, br#"{"status":"succeeded"} "#, &good));
    }
}
