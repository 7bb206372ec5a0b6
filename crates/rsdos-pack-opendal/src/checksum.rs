//! MD5 of an uploaded pack, in the two spellings services report it: base64 (Content-MD5) and
//! hex (a single-part S3 ETag).

use md5::{Digest, Md5};

/// Streaming MD5.
#[derive(Default)]
pub(crate) struct Md5Sum(Md5);

impl Md5Sum {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn finish(self) -> [u8; 16] {
        self.0.finalize().into()
    }
}

pub(crate) fn to_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn to_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What the service says about the uploaded bytes, compared with our MD5: `Some(true)` if it
/// matches, `Some(false)` if it contradicts it, `None` if the service reports nothing
/// comparable (fs, memory, multipart ETags).
pub(crate) fn compare(
    digest: &[u8; 16],
    content_md5: Option<&str>,
    etag: Option<&str>,
) -> Option<bool> {
    if let Some(reported) = content_md5.filter(|m| !m.is_empty()) {
        return Some(reported.trim() == to_base64(digest));
    }
    let etag = etag?.trim().trim_start_matches("W/").trim_matches('"');
    if etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(etag.eq_ignore_ascii_case(&to_hex(digest)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_spellings() {
        let mut m = Md5Sum::default();
        m.update(b"hello ");
        m.update(b"world");
        let d = m.finish();
        assert_eq!(to_hex(&d), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(to_base64(&d), "XrY7u+Ae7tCTyyK7j1rNww==");
        assert_eq!(to_base64(b"ab"), "YWI=");
        assert_eq!(to_base64(b"abc"), "YWJj");
        assert_eq!(to_base64(b"a"), "YQ==");
        assert_eq!(
            compare(&d, Some("XrY7u+Ae7tCTyyK7j1rNww=="), None),
            Some(true)
        );
        assert_eq!(
            compare(&d, None, Some("\"5eb63bbbe01eeed093cb22bb8f5acdc3\"")),
            Some(true)
        );
        assert_eq!(
            compare(&d, None, Some("\"00b63bbbe01eeed093cb22bb8f5acdc3\"")),
            Some(false)
        );
        assert_eq!(compare(&d, None, Some("\"abc-2\"")), None);
        assert_eq!(compare(&d, None, None), None);
    }
}
