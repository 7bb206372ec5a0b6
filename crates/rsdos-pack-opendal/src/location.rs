//! Where the packs live: a URL such as `s3://bucket/prefix?region=...`, turned into an OpenDAL
//! operator, and the store's tuning options.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rsdos_core::{Error, Result};

/// Options of the URL query that configure the store itself rather than the service; they are
/// removed before the remaining options go to OpenDAL.
const STORE_KEYS: &[&str] = &[
    "retries",
    "timeout_secs",
    "io_timeout_secs",
    "chunk_size",
    "single_put_max",
    "verify_checksum",
    "delete_grace_secs",
];

/// Options that hold secrets: accepted in the URL or as extra options, never shown.
const SECRET_KEYS: &[&str] = &[
    "secret_access_key",
    "access_key_id",
    "session_token",
    "account_key",
    "sas_token",
    "credential",
    "token",
    "password",
    "customer_key",
    "server_side_encryption_customer_key",
];

/// True for an option name that holds a secret (keys, tokens, passwords): such options are
/// accepted in the URL or as extra options but never shown, and callers that persist a store's
/// settings leave them out unless asked to keep them.
pub fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// The remote service, bucket (or container) and prefix of an [`OpendalPackStore`]: what
/// messages name. It holds no credentials.
///
/// [`OpendalPackStore`]: crate::OpendalPackStore
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLocation {
    /// The URL scheme as the user wrote it (`s3`, `gs`, `azblob`, `fs`, `memory`).
    pub scheme: String,
    /// The bucket or container; empty for `fs` and `memory`.
    pub bucket: String,
    /// The prefix inside the bucket (or the folder for `fs`), without leading or trailing `/`
    /// except for an absolute `fs` folder.
    pub prefix: String,
}

impl RemoteLocation {
    /// `scheme://bucket/prefix/key`: the full name of one object, for messages.
    pub fn key_url(&self, key: &str) -> String {
        let base = self.to_string();
        if base.ends_with('/') {
            format!("{base}{key}")
        } else {
            format!("{base}/{key}")
        }
    }
}

impl fmt::Display for RemoteLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.bucket.is_empty(), self.prefix.is_empty()) {
            (true, true) => write!(f, "{}://", self.scheme),
            (true, false) => write!(f, "{}://{}", self.scheme, self.prefix),
            (false, true) => write!(f, "{}://{}", self.scheme, self.bucket),
            (false, false) => write!(f, "{}://{}/{}", self.scheme, self.bucket, self.prefix),
        }
    }
}

/// How the store talks to the remote: retries, timeouts, upload chunking and verification.
///
/// Each field can also be set in the URL query (`?retries=5&timeout_secs=30`); the defaults
/// suit S3-like services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Retries of a failed request on a transient error (with exponential backoff and jitter).
    pub retries: usize,
    /// Time limit of one operation that transfers no data (stat, delete, list page).
    pub timeout: Duration,
    /// Time limit of one read or write of data without progress.
    pub io_timeout: Duration,
    /// Part size of multipart uploads.
    pub chunk_size: usize,
    /// Packs up to this size are uploaded in one request; larger ones in parts of
    /// `chunk_size` (GCS always gets one request, as its emulator has no multipart API).
    pub single_put_max: u64,
    /// Compare the MD5 of the uploaded pack with the checksum the service reports (its
    /// Content-MD5, or a plain single-part ETag), when it reports one. Turn off for S3 buckets
    /// with SSE-KMS, whose ETags are not MD5s.
    pub verify_checksum: bool,
    /// Bound on open handles of staged (local) packs.
    pub max_open_staged: usize,
    /// How long the bytes of a deleted pack stay in the remote storage after
    /// [`delete`](rsdos_core::PackStore::delete) hid it, so that streams opened before (in this
    /// or another process) can finish; removed by a later `delete` or
    /// [`purge_deleted`](rsdos_core::PackStore::purge_deleted). Zero removes them at once.
    pub delete_grace: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            retries: 4,
            timeout: Duration::from_secs(60),
            io_timeout: Duration::from_secs(30),
            chunk_size: 8 << 20,
            single_put_max: 16 << 20,
            verify_checksum: true,
            max_open_staged: rsdos_pack_local::DEFAULT_MAX_OPEN_PACKS,
            // As `clean`'s grace period for sandbox files: far longer than any stream of one
            // object takes, short enough that a repack's space comes back the same day.
            delete_grace: Duration::from_secs(3600),
        }
    }
}

impl StoreOptions {
    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = |what: &str| Error::Config {
            path: None,
            detail: format!("pack storage option {key}={value:?}: {what}"),
        };
        let int = || value.parse::<u64>().map_err(|_| bad("not a whole number"));
        match key {
            "retries" => self.retries = usize::try_from(int()?).map_err(|_| bad("too large"))?,
            "timeout_secs" => self.timeout = Duration::from_secs(int()?),
            "io_timeout_secs" => self.io_timeout = Duration::from_secs(int()?),
            "chunk_size" => {
                let n = usize::try_from(int()?).map_err(|_| bad("too large"))?;
                if n < 5 << 20 {
                    return Err(bad("parts must be at least 5 MiB (S3's minimum)"));
                }
                self.chunk_size = n;
            }
            "single_put_max" => self.single_put_max = int()?,
            "delete_grace_secs" => self.delete_grace = Duration::from_secs(int()?),
            "verify_checksum" => {
                self.verify_checksum = match value {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(bad("expected true or false")),
                }
            }
            _ => return Err(bad("unknown option")),
        }
        Ok(())
    }
}

/// A parsed pack-storage URL: the OpenDAL scheme and configuration, the location for messages
/// and the store options. Its `Debug` output hides secrets.
pub(crate) struct ParsedUrl {
    pub(crate) opendal_scheme: &'static str,
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) location: RemoteLocation,
    pub(crate) options: StoreOptions,
}

impl fmt::Debug for ParsedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .config
            .iter()
            .map(|(k, v)| {
                let hidden = SECRET_KEYS.iter().any(|s| k.contains(s));
                (k.as_str(), if hidden { "***" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("ParsedUrl")
            .field("opendal_scheme", &self.opendal_scheme)
            .field("config", &shown)
            .field("location", &self.location)
            .field("options", &self.options)
            .finish()
    }
}

fn config_error(url_shown: &str, detail: impl fmt::Display) -> Error {
    Error::Config {
        path: None,
        detail: format!("pack storage URL {url_shown}: {detail}"),
    }
}

/// Decodes `%XX` escapes (and `+` as a space) of a query component.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `scheme://bucket/prefix?key=value&...` plus `extra` options (which win over the
/// query). Secrets may be given either way but are never part of an error message: messages
/// show the URL without its query.
pub(crate) fn parse_url<'a>(
    url: &str,
    extra: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<ParsedUrl> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let Some((scheme, rest)) = base.split_once("://") else {
        return Err(config_error(
            base,
            "expected scheme://bucket/prefix (schemes: s3, gs, azblob, fs, memory)",
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((percent_decode(k).to_ascii_lowercase(), percent_decode(v)));
    }
    pairs.extend(
        extra
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())),
    );
    let mut options = StoreOptions::default();
    let mut config = BTreeMap::new();
    for (k, v) in pairs {
        if STORE_KEYS.contains(&k.as_str()) {
            options.set(&k, &v)?;
        } else {
            config.insert(k, v);
        }
    }
    let (bucket, prefix) = match rest.split_once('/') {
        Some((b, p)) => (b.to_string(), p.trim_matches('/').to_string()),
        None => (rest.to_string(), String::new()),
    };
    let opendal_scheme = match scheme.as_str() {
        "s3" => "s3",
        "gs" | "gcs" => "gcs",
        "azblob" => "azblob",
        "fs" | "file" => "fs",
        "memory" => "memory",
        other => {
            return Err(config_error(
                base,
                format!("unknown scheme {other:?} (use s3, gs, azblob, fs or memory)"),
            ));
        }
    };
    let location = match opendal_scheme {
        "fs" => {
            // fs:///abs/path or fs://relative/path: the whole rest is the folder.
            if rest.is_empty() {
                return Err(config_error(base, "fs needs a folder: fs:///path/to/packs"));
            }
            config.insert("root".into(), rest.to_string());
            RemoteLocation {
                scheme: scheme.clone(),
                bucket: String::new(),
                prefix: rest.to_string(),
            }
        }
        "memory" => {
            let root = rest.trim_matches('/').to_string();
            if !root.is_empty() {
                config.insert("root".into(), root.clone());
            }
            RemoteLocation {
                scheme: scheme.clone(),
                bucket: String::new(),
                prefix: root,
            }
        }
        _ => {
            if bucket.is_empty() {
                return Err(config_error(base, "the bucket (or container) is missing"));
            }
            let key = if opendal_scheme == "azblob" {
                "container"
            } else {
                "bucket"
            };
            config.insert(key.into(), bucket.clone());
            if !prefix.is_empty() {
                config.insert("root".into(), format!("/{prefix}"));
            }
            if opendal_scheme == "s3" && !config.contains_key("checksum_algorithm") {
                // Every PUT and part carries its CRC32C, which the server checks (S3 accepts
                // no MD5 for multipart uploads).
                config.insert("checksum_algorithm".into(), "crc32c".into());
            }
            if opendal_scheme == "azblob"
                && !config.contains_key("account_name")
                && let Ok(name) = std::env::var("AZURE_STORAGE_ACCOUNT_NAME")
            {
                config.insert("account_name".into(), name);
            }
            if opendal_scheme == "azblob"
                && !config.contains_key("endpoint")
                && let Some(name) = config.get("account_name").cloned()
            {
                config.insert(
                    "endpoint".into(),
                    format!("https://{name}.blob.core.windows.net"),
                );
            }
            RemoteLocation {
                scheme: scheme.clone(),
                bucket,
                prefix,
            }
        }
    };
    Ok(ParsedUrl {
        opendal_scheme,
        config,
        location,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_url_with_query() {
        let p = parse_url(
            "s3://bkt/some/prefix/?endpoint=http%3A%2F%2F127.0.0.1%3A5055&region=us-east-1&retries=2",
            [("secret_access_key", "hunter2")],
        )
        .expect("parse");
        assert_eq!(p.opendal_scheme, "s3");
        assert_eq!(p.config["bucket"], "bkt");
        assert_eq!(p.config["root"], "/some/prefix");
        assert_eq!(p.config["endpoint"], "http://127.0.0.1:5055");
        assert_eq!(p.config["region"], "us-east-1");
        assert_eq!(p.options.retries, 2);
        assert!(!p.config.contains_key("retries"));
        assert_eq!(p.location.to_string(), "s3://bkt/some/prefix");
        assert_eq!(p.location.key_url("3.toc"), "s3://bkt/some/prefix/3.toc");
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn other_schemes() {
        let p = parse_url("gs://b", []).expect("gs");
        assert_eq!(p.opendal_scheme, "gcs");
        assert_eq!(p.location.to_string(), "gs://b");
        let p = parse_url("azblob://cont/x", [("account_name", "acct")]).expect("az");
        assert_eq!(p.config["container"], "cont");
        assert_eq!(p.config["endpoint"], "https://acct.blob.core.windows.net");
        let p = parse_url("fs:///tmp/packs", []).expect("fs");
        assert_eq!(p.config["root"], "/tmp/packs");
        assert_eq!(p.location.to_string(), "fs:///tmp/packs");
        let p = parse_url("memory://", []).expect("memory");
        assert_eq!(p.location.to_string(), "memory://");
    }

    #[test]
    fn bad_urls_are_config_errors() {
        for url in [
            "bucket/prefix",
            "ftp://x",
            "s3://",
            "fs://",
            "s3://b?retries=x",
            "s3://b?chunk_size=10",
        ] {
            let err = parse_url(url, []).expect_err(url);
            assert_eq!(
                err.kind(),
                rsdos_core::ErrorKind::InvalidConfig,
                "{url}: {err}"
            );
        }
        let err = parse_url("s3://b?secret_access_key=hunter2&retries=x", []).expect_err("bad");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb+c%zz%4"), "a/b c%zz%4");
    }
}
