//! Where a container keeps its packs when they live in remote storage: the setting
//! (`rsdos-packs.json` in the container folder) and the store built from it.
//!
//! `config.json` stays exactly disk-objectstore's; the remote setting lives in a file of its
//! own that disk-objectstore ignores:
//!
//! ```json
//! {"version": 1, "url": "s3://bucket/prefix?region=eu-west-1", "options": {"endpoint": "http://127.0.0.1:9000"}}
//! ```
//!
//! Options holding secrets (see [`rsdos_pack_opendal::is_secret_option`]: keys, tokens,
//! passwords), in the URL's query or in `options`, are left out of the file unless the
//! container was created with [`InitOptions::with_store_credentials`](crate::InitOptions::with_store_credentials)
//! (then the file is made readable by its owner only). Without them the service's usual
//! environment variables and provider chains supply the credentials, or
//! [`OpenOptions::with_packs_option`](crate::OpenOptions::with_packs_option) at open time.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rsdos_core::{Error, PackStore, RemoteMirror, Result, durable};

/// Name of the file, in the container folder, that says where the packs are.
pub const PACKS_SETTING_FILE: &str = "rsdos-packs.json";

/// Service options of a remote pack store (`endpoint`, `region`, credentials, ...). Its
/// `Debug` output hides the values of secret options.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RemoteOptions(BTreeMap<String, String>);

impl RemoteOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `key` (lowercased) to `value`.
    pub fn set(&mut self, key: &str, value: &str) {
        self.0.insert(key.to_ascii_lowercase(), value.to_string());
    }
    /// The options, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// These options without the secret ones.
    pub fn without_secrets(&self) -> RemoteOptions {
        RemoteOptions(
            self.0
                .iter()
                .filter(|(k, _)| !is_secret(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
    fn merged(&self, over: &RemoteOptions) -> RemoteOptions {
        let mut all = self.0.clone();
        all.extend(over.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        RemoteOptions(all)
    }
}

impl fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|(k, v)| (k, if is_secret(k) { "***" } else { v.as_str() })),
            )
            .finish()
    }
}

/// Where a container's packs are: a URL (`s3://bucket/prefix?region=...`, `gs://`,
/// `azblob://`, `fs:///folder`, `memory://`; see `rsdos_pack_opendal`) and service options.
/// Its `Debug` output shows the URL without its query and hides secret options.
#[derive(Clone, PartialEq, Eq)]
pub struct PacksLocation {
    url: String,
    options: RemoteOptions,
}

impl fmt::Debug for PacksLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacksLocation")
            .field("url", &self.display_url())
            .field("options", &self.options)
            .finish()
    }
}

impl PacksLocation {
    /// Packs at `url`, with no extra options.
    pub fn new(url: impl Into<String>) -> Self {
        PacksLocation {
            url: url.into(),
            options: RemoteOptions::new(),
        }
    }

    /// Adds a service option (it wins over the same option in the URL's query).
    pub fn with_option(mut self, key: &str, value: &str) -> Self {
        self.options.set(key, value);
        self
    }

    /// The URL as given (its query may hold secrets: show [`display_url`](Self::display_url)).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL without its query: `scheme://bucket/prefix`, safe to show.
    pub fn display_url(&self) -> String {
        self.url.split('?').next().unwrap_or_default().to_string()
    }

    /// The service options.
    pub fn options(&self) -> &RemoteOptions {
        &self.options
    }

    /// The URL with the secret options of its query removed.
    fn url_without_secrets(&self) -> String {
        let Some((base, query)) = self.url.split_once('?') else {
            return self.url.clone();
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| !is_secret(p.split('=').next().unwrap_or_default()))
            .collect();
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    }

    /// Reads `rsdos-packs.json` of the container in `root`; `None` if absent (packs local).
    pub fn read(root: &Path) -> Result<Option<PacksLocation>> {
        let path = root.join(PACKS_SETTING_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let bad = |detail: &str| Error::Config {
            path: Some(path.clone()),
            detail: detail.to_string(),
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| bad("not valid JSON"))?;
        if value.get("version").and_then(|v| v.as_u64()) != Some(1) {
            return Err(bad("unsupported version (expected 1)"));
        }
        let url = value
            .get("url")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("\"url\" is missing or not a string"))?;
        let mut location = PacksLocation::new(url);
        if let Some(options) = value.get("options") {
            let options = options
                .as_object()
                .ok_or_else(|| bad("\"options\" is not an object"))?;
            for (k, v) in options {
                let v = v
                    .as_str()
                    .ok_or_else(|| bad("option values must be strings"))?;
                location.options.set(k, v);
            }
        }
        Ok(Some(location))
    }

    /// Writes `rsdos-packs.json` into `root` atomically, without secrets unless
    /// `with_credentials` (then readable by its owner only).
    pub(crate) fn write(&self, root: &Path, with_credentials: bool) -> Result<()> {
        let (url, options) = if with_credentials {
            (self.url.clone(), self.options.clone())
        } else {
            (self.url_without_secrets(), self.options.without_secrets())
        };
        let mut map = serde_json::Map::new();
        for (k, v) in options.iter() {
            map.insert(k.to_string(), serde_json::Value::String(v.to_string()));
        }
        let json = serde_json::json!({"version": 1, "url": url, "options": map});
        let path = root.join(PACKS_SETTING_FILE);
        if with_credentials {
            // Created owner-only: the secrets are never readable by others, not for a moment.
            durable::write_atomic_private(&path, json.to_string().as_bytes())?;
        } else {
            durable::write_atomic(&path, json.to_string().as_bytes())?;
        }
        Ok(())
    }

    /// The pack store and its remote capability, staging packs in `staging`, with `extra`
    /// options (credentials given at open time) over the stored ones.
    pub(crate) fn open_store(&self, staging: &Path, extra: &RemoteOptions) -> Result<RemoteStore> {
        open_store(&self.url, &self.options.merged(extra), staging)
    }
}

/// A remote pack store seen through its two interfaces (usually one object).
pub(crate) struct RemoteStore {
    pub(crate) packs: Arc<dyn PackStore>,
    pub(crate) mirror: Arc<dyn RemoteMirror>,
}

fn is_secret(key: &str) -> bool {
    #[cfg(feature = "remote")]
    {
        rsdos_pack_opendal::is_secret_option(key)
    }
    #[cfg(not(feature = "remote"))]
    {
        // Without the remote crate: the same words it treats as secrets.
        let key = key.to_ascii_lowercase();
        ["secret", "key", "token", "credential", "password", "sas"]
            .iter()
            .any(|s| key.contains(s))
    }
}

#[cfg(feature = "remote")]
fn open_store(url: &str, options: &RemoteOptions, staging: &Path) -> Result<RemoteStore> {
    let store = Arc::new(rsdos_pack_opendal::OpendalPackStore::open_with(
        url,
        staging,
        options.iter(),
    )?);
    Ok(RemoteStore {
        packs: Arc::clone(&store) as Arc<dyn PackStore>,
        mirror: store,
    })
}

#[cfg(not(feature = "remote"))]
fn open_store(url: &str, _options: &RemoteOptions, _staging: &Path) -> Result<RemoteStore> {
    Err(Error::Config {
        path: None,
        detail: format!(
            "the packs of this container are in remote storage ({}), but this build of rsdos \
             has no remote pack storage: rebuild it with the cargo feature `remote`",
            url.split('?').next().unwrap_or_default()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_the_file_or_debug() {
        let dir = tempfile::tempdir().expect("tempdir");
        let loc = PacksLocation::new("s3://b/p?region=r&secret_access_key=S3CR3T&x=1")
            .with_option("endpoint", "http://h:1")
            .with_option("access_key_id", "AKIDSECRET");
        let shown = format!("{loc:?}");
        assert!(
            !shown.contains("S3CR3T") && !shown.contains("AKIDSECRET"),
            "{shown}"
        );
        loc.write(dir.path(), false).expect("write");
        let text = std::fs::read_to_string(dir.path().join(PACKS_SETTING_FILE)).expect("read");
        assert!(
            !text.contains("S3CR3T") && !text.contains("AKIDSECRET"),
            "{text}"
        );
        let back = PacksLocation::read(dir.path())
            .expect("read")
            .expect("present");
        assert_eq!(back.url(), "s3://b/p?region=r&x=1");
        assert_eq!(
            back.options().iter().collect::<Vec<_>>(),
            vec![("endpoint", "http://h:1")]
        );
        loc.write(dir.path(), true).expect("write");
        let back = PacksLocation::read(dir.path())
            .expect("read")
            .expect("present");
        assert_eq!(back, loc);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(PACKS_SETTING_FILE))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "credentials readable by others: {mode:o}");
        }
    }
}
